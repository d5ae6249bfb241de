"""LLM generation (paper §3.1): user preferences s_u and item knowledge s_i from prompt templates f_u, f_i.

`generate.generate_dataset` is the stage function; `prompts` renders templates, `backends` run an engine
(vLLM, transformers or an OpenAI-compatible server), `cache` remembers every output by content so nothing
is generated twice, `quality` flags outputs that are empty, truncated or stuck in a repetition loop.
"""
