"""Typed settings of the shared training loop (params `train:`) and of evaluation (params `evaluate:`)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class TrainConfig:
    """How every model is trained. The learning rate comes from the backbone's block (`backbone.<name>.lr`),
    since the paper uses 1e-4 for the rerankers and 1e-3 for the sequential models; `lr` here overrides it
    for all backbones when set."""

    seed: int = 42
    batch_size: int = 32
    eval_batch_size: int = 256
    epochs: int = 30
    patience: int = 5                 # epochs without a validation improvement before stopping
    select_metric: str = "ndcg@10"    # validation metric for early stopping and model selection
    weight_decay: float = 0.01        # AdamW
    grad_clip: float = 5.0            # max gradient norm; 0 disables clipping
    threads: int = 0                  # torch CPU threads; 0 keeps torch's default
    lr: float | None = None
    progress: bool = True             # tqdm bars
    validate_start: bool = False      # score the starting weights first; they compete in model selection


@dataclass
class EvalConfig:
    """What evaluation reports: MAP@k and NDCG@k for each k, on the test split."""

    ks: list[int] = field(default_factory=lambda: [1, 5, 10, 20])
    batch_size: int = 256
    progress: bool = True
