"""LLM generation (paper §3.1): user preferences s_u and item knowledge s_i from prompt templates f_u, f_i.

`generate.generate_dataset` is the stage function. `prompts` renders templates, `jobs` turns a dataset into
keyed prompts, `structured` holds the JSON schemas of `llm.structured`, `backends` run an engine (vLLM,
transformers or an OpenAI-compatible server), `answer` generates what `cache` does not hold yet (nothing is
generated twice), `quality` flags outputs that are empty, truncated or stuck in a loop, `echo` measures how
much of an output is its prompt copied back. `parallel` starts data-parallel `worker` processes.
"""
