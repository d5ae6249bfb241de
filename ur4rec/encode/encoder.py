"""A frozen BERT-family encoder (paper eq. 5) that turns texts into one vector each, fast on a CPU.

Speed comes from four things: `torch.inference_mode` (no autograd bookkeeping), batches of texts of similar
token length (sorted, padded per batch, so little compute is spent on padding, and sized by a token budget so
short texts go in large batches), reduced precision (bf16 by
default; checked against fp32 in the tests) and the content-keyed cache in `cache.py` that skips texts this
exact encoder has seen before. Tokenisation happens in windows so a million texts never sit in RAM as
Python token lists at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from tqdm import tqdm

from ur4rec.batching import length_batches
from ur4rec.encode.config import EncoderConfig
from ur4rec.errors import UserError
from ur4rec.packaged import minilm_dir

PACKAGED_PREFIX = "packaged:"
# Files that decide what vectors come out; READMEs and sentence-transformers extras do not.
FINGERPRINT_FILES = (
    "config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json", "*.model",
    "*.safetensors",
)
# Texts tokenised and length-sorted together; large enough that sorting inside it leaves almost no padding.
SORT_WINDOW = 8192


class EncoderError(UserError, RuntimeError):
    """The encoder model cannot be found or loaded; the message names the model reference."""


def resolve_model_dir(ref: str) -> Path:
    """A local folder for `packaged:minilm`, a local path, or an HF id (safetensors weights only, never pickle)."""
    if ref.startswith(PACKAGED_PREFIX):
        name = ref[len(PACKAGED_PREFIX):]
        if name != "minilm":
            raise EncoderError(f"encoder.model {ref!r}: unknown packaged encoder (known: packaged:minilm)")
        return minilm_dir()
    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(ref, allow_patterns=["*.json", "*.txt", "*.model", "*.safetensors"]))
    except Exception as exc:  # noqa: BLE001 - any hub failure means the same thing to the user
        raise EncoderError(
            f"encoder.model {ref!r}: not a local folder and not obtainable from the HF hub ({exc}); "
            "download it once (huggingface-cli download) or point encoder.model at a local path"
        ) from exc


def model_fingerprint(cfg: EncoderConfig, model_dir: Path) -> str:
    """sha256 over the weights, tokenizer and every setting that changes the vectors."""
    files = sorted({p for pattern in FINGERPRINT_FILES for p in model_dir.glob(pattern) if p.is_file()})
    if not any(p.suffix == ".safetensors" for p in files):
        raise EncoderError(f"{model_dir}: no *.safetensors weights (pickled checkpoints are refused)")
    settings = {"pooling": cfg.pooling, "max_length": cfg.max_length, "dtype": cfg.resolved_dtype, "normalize": cfg.normalize}
    parts = [json.dumps(settings, sort_keys=True)] + [f"{p.name}:{_file_sha256(p)}" for p in files]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


_FILE_HASHES: dict[tuple[str, int, int], str] = {}


def _file_sha256(path: Path) -> str:
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_HASHES:
        with open(path, "rb") as fh:
            _FILE_HASHES[key] = hashlib.file_digest(fh, "sha256").hexdigest()
    return _FILE_HASHES[key]


def pad_batch(token_lists: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence in this batch only: `(input_ids, attention_mask)`."""
    width = max(len(t) for t in token_lists)
    ids = np.full((len(token_lists), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(token_lists), width), dtype=np.int64)
    for row, tokens in enumerate(token_lists):
        ids[row, : len(tokens)] = tokens
        mask[row, : len(tokens)] = 1
    return torch.from_numpy(ids), torch.from_numpy(mask)


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalize: bool = False) -> torch.Tensor:
    """Sentence vectors in fp32 from token states: masked mean, or the [CLS] token."""
    hidden = hidden.float()
    if pooling == "cls":
        out = hidden[:, 0]
    else:
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        out = (hidden * weights).sum(1) / weights.sum(1).clamp_min(1.0)
    return torch.nn.functional.normalize(out, dim=-1) if normalize else out


@lru_cache(maxsize=2)
def load_frozen_model(model_dir: Path, fingerprint: str, dtype: torch.dtype, device: torch.device) -> torch.nn.Module:
    """Load once per process (the fingerprint keys the weights' content), so encoding several datasets in
    one process through the Python API reuses the frozen model instead of reloading it."""
    from transformers import AutoModel

    model = AutoModel.from_pretrained(model_dir, dtype=dtype, use_safetensors=True)
    return model.to(device).eval().requires_grad_(False)


@contextlib.contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Use `n` intra-op threads for a while (0: leave torch's choice), then restore the previous count.

    On a machine other jobs keep busy, OpenMP threads that spin-wait for each other make two threads several
    times slower than one, hence a knob; scoped so a caller's own setting survives the call.
    """
    before = torch.get_num_threads()
    if n > 0:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if n > 0:
            torch.set_num_threads(before)


def pick_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class FrozenEncoder:
    """Texts in, `[n, dim]` fp32 vectors out, in input order. The model loads only when a text needs it,
    so a run served entirely from the cache never pays for loading."""

    def __init__(self, cfg: EncoderConfig):
        self.cfg = cfg
        self.model_dir = resolve_model_dir(cfg.model)
        self.fingerprint = model_fingerprint(cfg, self.model_dir)
        config = json.loads((self.model_dir / "config.json").read_text(encoding="utf-8"))
        self.dim = int(config["hidden_size"])
        max_positions = int(config.get("max_position_embeddings", cfg.max_length))
        if cfg.max_length > max_positions:
            raise EncoderError(f"encoder.max_length {cfg.max_length} exceeds {cfg.model}'s {max_positions} positions")

    @cached_property
    def tokenizer(self):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(self.model_dir)

    @cached_property
    def device(self) -> torch.device:
        return pick_device(self.cfg.device)

    @cached_property
    def model(self) -> torch.nn.Module:
        try:
            return load_frozen_model(self.model_dir, self.fingerprint, self.cfg.torch_dtype, self.device)
        except (OSError, ValueError) as exc:
            raise EncoderError(f"encoder.model {self.cfg.model!r} ({self.model_dir}): cannot load: {exc}") from exc

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        out = self.tokenizer(
            list(texts), truncation=True, max_length=self.cfg.max_length,
            return_attention_mask=False, return_token_type_ids=False,
        )
        return out["input_ids"]

    def encode(self, texts: Sequence[str], progress: bool = True) -> torch.Tensor:
        """Encode `texts`; row k of the result belongs to `texts[k]`."""
        out = torch.empty(len(texts), self.dim, dtype=torch.float32)
        for start, vectors in self.encode_windows(texts, progress):
            out[start : start + len(vectors)] = vectors
        return out

    def encode_windows(self, texts: Sequence[str], progress: bool = True) -> Iterator[tuple[int, torch.Tensor]]:
        """`(start, vectors of texts[start : start + len(vectors)])`, one window of texts at a time, so a caller
        can persist finished work before the next window starts (a killed run loses one window at most)."""
        desc = f"encode ({self.cfg.resolved_dtype})"
        bar = tqdm(total=len(texts), desc=desc, unit="text", disable=not progress or not texts, mininterval=1.0)
        with bar, torch_threads(self.cfg.threads):
            for start in range(0, len(texts), SORT_WINDOW):
                window = texts[start : start + SORT_WINDOW]
                out = torch.empty(len(window), self.dim, dtype=torch.float32)
                for rows, vectors in self._encode_window(window):
                    out[rows] = vectors
                    bar.update(len(rows))
                yield start, out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """One padded batch through the model, pooled to fp32 vectors on the CPU."""
        with torch.inference_mode():
            mask = attention_mask.to(self.device)
            hidden = self.model(input_ids=input_ids.to(self.device), attention_mask=mask).last_hidden_state
            return pool(hidden, mask, self.cfg.pooling, self.cfg.normalize).cpu()

    def _encode_window(self, texts: Sequence[str]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        tokens = self.tokenize(texts)
        pad_id = self.tokenizer.pad_token_id or 0
        for batch in length_batches([len(t) for t in tokens], self.cfg.batch_size, self.cfg.batch_tokens):
            input_ids, mask = pad_batch([tokens[i] for i in batch], pad_id)
            yield torch.from_numpy(batch), self.forward(input_ids, mask)
