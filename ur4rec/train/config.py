"""Typed settings of the one training loop (params `train:`, and the loop part of `retriever.pretrain:`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from ur4rec.config import ParamsError


BACKENDS = ("auto", "gloo", "nccl")


@dataclass(frozen=True)
class DistributedConfig:
    """Data-parallel training (params `train.distributed:`, docs/scaling.md). The global batch stays
    `batch_size`: each process takes its slice of every batch, so N processes follow the run of one."""

    nproc: int = 1            # processes on this machine; > 1 runs the training command again under torchrun
    backend: str = "auto"     # auto (nccl for a model on a GPU, else gloo) | gloo | nccl

    def __post_init__(self) -> None:
        if self.nproc < 1:
            raise ParamsError(f"train.distributed.nproc must be >= 1, got {self.nproc}")
        if self.backend not in BACKENDS:
            raise ParamsError(f"train.distributed.backend must be one of {list(BACKENDS)}, got {self.backend!r}")


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained. The learning rate of a backbone comes from its block (`backbone.<name>.lr`),
    since the paper uses 1e-4 for the rerankers and 1e-3 for the sequential models; `lr` here overrides it
    for all backbones when set. The seed is the run's (top-level `seeds`), never a `train:` key."""

    seed: int = 0
    batch_size: int = 32
    eval_batch_size: int = 256
    epochs: int = 30
    patience: int = 5                 # epochs without a validation improvement before stopping
    select_metric: str = "ndcg@10"    # validation metric for early stopping and model selection
    weight_decay: float = 0.01        # AdamW
    grad_clip: float = 5.0            # max gradient norm; 0 disables clipping
    threads: int = 0                  # torch CPU threads; 0 keeps torch's default (the machine's cores)
    lr: float | None = None
    progress: bool = True             # tqdm bars
    validate_start: bool = False      # score the starting weights first; they compete in model selection
    deterministic: bool = True        # torch deterministic algorithms: same code, params and seed, same result
    distributed: DistributedConfig = field(default_factory=DistributedConfig)

    def __post_init__(self) -> None:
        for name in ("batch_size", "eval_batch_size", "epochs"):
            if getattr(self, name) < 1:
                raise ParamsError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if self.patience < 1:
            raise ParamsError(f"train.patience must be >= 1, got {self.patience}")
        if self.threads < 0:
            raise ParamsError(f"train.threads must be >= 0 (0: torch's default), got {self.threads}")
        if self.lr is not None and self.lr <= 0:
            raise ParamsError(f"train.lr must be > 0, got {self.lr}")
