"""Data parallelism for the one loop: N processes (torchrun) train one model on the same global batches.

Every process builds the same model from the same seed and draws the same global batches in the same order;
each computes the gradient of its contiguous slice of every batch, and one all-reduce per step sums the slice
gradients weighted by slice size. Every process then holds the gradient of the global batch's mean loss and
takes the same optimizer step, so N processes follow the run of one process up to float summation order
(docs/scaling.md gives the measured difference). Validation, model selection and every file write happen on
rank 0; its validation record is broadcast, so all processes stop at the same epoch.

Gradients are reduced here rather than by `DistributedDataParallel`: tasks call model methods other than
`forward` (the retriever's `preference`, `items`, `match`), which DDP's forward hooks never see.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.distributed as dist

from ur4rec.config import ParamsError
from ur4rec.io import atomic_dir
from ur4rec.train.config import DistributedConfig


@dataclass(frozen=True)
class World:
    """This process's place among the training processes (torchrun's environment; one process without it)."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the process that validates and writes."""
        return self.rank == 0

    def bounds(self, n: int) -> slice:
        """This rank's contiguous share of `n` rows (the shares differ by at most one row)."""
        return slice(n * self.rank // self.size, n * (self.rank + 1) // self.size)


def world() -> World:
    env = os.environ
    return World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))


@contextlib.contextmanager
def output_dir(path: Path) -> Iterator[Path]:
    """On rank 0, a folder that replaces `path` whole on success; elsewhere a scratch folder thrown away, so
    the ranks run the same code and only rank 0's files land."""
    if world().main:
        with atomic_dir(path) as out:
            yield out
    else:
        with tempfile.TemporaryDirectory(prefix=f".{Path(path).name}.rank{world().rank}.") as scratch:
            yield Path(scratch)


def say(line: str) -> None:
    """Print once, from rank 0."""
    if world().main:
        print(line)


def setup(cfg: DistributedConfig, device: torch.device) -> World:
    """Join the process group when launched with several processes; returns this process's `World`."""
    here = world()
    if here.size > 1 and not dist.is_initialized():
        dist.init_process_group(backend_for(cfg.backend, device))
        atexit.register(dist.destroy_process_group)
    return here


def backend_for(backend: str, device: torch.device) -> str:
    """`auto`: nccl for a model on a GPU, gloo on the CPU. nccl cannot reduce CPU tensors, so asking for it
    with a CPU model is refused before any process group exists."""
    if backend == "auto":
        return "nccl" if device.type == "cuda" else "gloo"
    if backend == "nccl" and device.type != "cuda":
        raise ParamsError(f"train.distributed.backend nccl needs the model on a GPU; it is on {device}: use gloo or auto")
    return backend


def shard(batch: Any, here: World) -> Any:
    """This rank's rows of a global batch (the batch itself with one process)."""
    return batch if here.size == 1 else batch.rows(here.bounds(len(batch)))


def reduce_step(params: list[torch.nn.Parameter], losses: dict[str, torch.Tensor], keys: list[str], n: int,
                here: World) -> tuple[dict[str, float], int]:
    """After each rank's backward on its `n` rows: leave the global batch's mean-loss gradient in every
    `p.grad`, and return the global sums of the named losses (mean x rows) and the global row count.

    A parameter no rank used keeps `grad None` (AdamW then skips it, as with one process); one that some
    rank used gets the others' zeros. `keys` names the losses in a fixed order, so a rank whose slice is
    empty (a short last batch) still joins every collective.
    """
    sums = [losses[k].item() * n if k in losses else 0.0 for k in keys]
    if here.size == 1:
        return dict(zip(keys, sums)), n
    device = params[0].device
    head = torch.tensor([float(p.grad is not None) for p in params] + sums + [float(n)], dtype=torch.float64,
                        device=device)
    dist.all_reduce(head)
    total = int(head[-1].item())
    used = [p for p, seen in zip(params, head[: len(params)].tolist()) if seen > 0]
    for dtype in sorted({p.dtype for p in used}, key=str):  # one all-reduce per dtype of the used parameters
        group = [p for p in used if p.dtype == dtype]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in group])
        flat.mul_(n / total)
        dist.all_reduce(flat)
        offset = 0
        for p in group:
            reduced = flat[offset: offset + p.numel()].view_as(p)
            if p.grad is None:
                p.grad = reduced.clone()
            else:
                p.grad.copy_(reduced)
            offset += p.numel()
    return dict(zip(keys, head[len(params): len(params) + len(keys)].tolist())), total


def broadcast(obj: Any, here: World) -> Any:
    """Rank 0's `obj` on every rank (a validation record, an early-stopping decision)."""
    if here.size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def gather(obj: Any, here: World) -> list[Any]:
    """Every rank's `obj`, in rank order, on every rank (to check that the ranks agree)."""
    if here.size == 1:
        return [obj]
    out: list[Any] = [None] * here.size
    dist.all_gather_object(out, obj)
    return out


def sync_module(model: torch.nn.Module, here: World) -> None:
    """Give every rank rank 0's parameters and buffers (the same seed makes them equal already; this makes
    sure of it, whatever a model does while it is built)."""
    if here.size == 1:
        return
    with torch.no_grad():
        for tensor in model.state_dict().values():
            dist.broadcast(tensor, src=0)
