"""Typed views of the `retriever:` and `variant.<name>:` params sections."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping

from ur4rec.config import ParamsError, section
from ur4rec.models.fusion import FUSIONS

# Eq. 9 Agg: `item` the item's own output, `proxies` the mean of the proxy outputs, `concat` both (all three on
# the one-pass fast path, mask (c)); `item_proxies` the mean of the proxy outputs of a [P; h_i] pass per item
# (mask (b), the route PIM pre-trains; about K times the fast path's cost, see docs/retriever.md).
AGGREGATIONS = ("item", "proxies", "concat", "item_proxies")


@dataclass
class ArchConfig:
    """Shape of the retriever. Width, heads and FFN size come from the checkpoint when there is one."""

    init_checkpoint: str = "packaged:minilm"  # BERT folder (HF layout, safetensors), packaged:minilm, or none
    n_layers: int = 2  # first n BERT layers copied (paper: all 12 of bert-base)
    width: int = 384  # used only with init_checkpoint: none
    n_heads: int = 12
    ffn_dim: int = 1536
    dropout: float = 0.1
    aggregate: str = "concat"  # eq. 9 Agg (see AGGREGATIONS)
    proxies_see_items: bool = False  # Figure 3(c) as drawn; False keeps fast path == per-item path
    bf16: bool | str = "auto"  # bf16 autocast for the retriever (weights stay fp32): auto = where bf16 is native

    def __post_init__(self) -> None:
        if self.aggregate not in AGGREGATIONS:
            raise ParamsError(f"retriever.arch.aggregate: {self.aggregate!r} is not one of {AGGREGATIONS}")
        if self.bf16 not in (True, False, "auto"):
            raise ParamsError(f"retriever.arch.bf16: {self.bf16!r} is not true, false or auto")
        if self.n_layers < 1:
            raise ParamsError(f"retriever.arch.n_layers must be >= 1, got {self.n_layers}")


@dataclass
class BackboneRetrieverConfig:
    """Per-backbone settings: the paper uses K = 8 with the rerankers, 16 with the sequential models."""

    n_proxies: int = 8
    z_history: int = 10  # history items whose knowledge joins e_u in Z (eq. 5); the backbone's history length
    # `retriever.joint` keys this backbone sets otherwise (its training regime: e.g. from scratch on Base's
    # schedule for the history-blind rerankers); every arm of the backbone, the control included, reads them
    joint: dict[str, Any] = field(default_factory=dict)


NEGATIVE_SAMPLING = ("uniform", "popularity")


@dataclass
class PretrainConfig:
    """Algorithm 1 lines 9–18, on the shared training loop (selection on validation loss)."""

    epochs: int = 5
    patience: int = 2
    lr: float = 1e-4
    batch_size: int = 32
    eval_batch_size: int = 256
    weight_decay: float = 0.01
    grad_clip: float = 5.0
    tau: float = 0.1  # InfoNCE temperature
    alpha: float = 1.0  # weight of the PIM loss
    n_negatives: int = 10  # M, negatives per positive for InfoNCE
    pim_negatives: int = 1  # negatives per positive for PIM (taken from the M)
    negative_sampling: str = "uniform"  # uniform | popularity (items drawn by training frequency)
    in_batch_negatives: bool = False  # the other samples' targets in the batch join the InfoNCE negatives
    select_metric: str = "loss"  # validation value to minimise: loss | cl | pim

    def __post_init__(self) -> None:
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            raise ParamsError(f"retriever.pretrain.negative_sampling: {self.negative_sampling!r} is not one of {NEGATIVE_SAMPLING}")
        if self.select_metric not in ("loss", "cl", "pim"):
            raise ParamsError(f"retriever.pretrain.select_metric: {self.select_metric!r} is not one of loss, cl, pim")
        if not 0 <= self.pim_negatives <= self.n_negatives:
            raise ParamsError("retriever.pretrain.pim_negatives must be between 0 and n_negatives")


@dataclass
class JointConfig:
    """Joint training of an augmented variant (Algorithm 1 lines 19–23), on the shared training loop."""

    warm_start: bool = True  # start the backbone from its Base checkpoint, the aug fusion as identity on h_i
    validate_start: bool = False  # the starting weights compete in model selection (warm start: Base itself)
    threads: int | None = None  # torch CPU threads for the augmented runs (0 = torch's default); None: train's
    backbone_lr: float | None = None  # lr of the backbone's weights; None: backbone.<name>.lr (or train.lr)
    augmenter_lr: float | None = None  # lr of the fresh parts (aug fusion, KAR adaptor); None: the backbone's lr
    retriever_lr: float | None = None  # lr of the UR4Rec retriever (BERT-initialised, pre-trained); None: the backbone's
    epochs: int | None = None  # overrides train.epochs for augmented variants (warm-started: few suffice)
    patience: int | None = None  # overrides train.patience likewise
    fusion: str = "identity_linear"  # how aug enters a candidate (ur4rec.models.fusion): identity_linear | gated | gated_l1
    standardise: bool = False  # z-score every encoder vector an augmenter or the retriever reads (tables.py)
    query_grad: bool = True  # UR4Rec: the retriever's gradient reaches the candidates' h_i (its queries), as in Algorithm 1

    def __post_init__(self) -> None:
        if self.fusion not in FUSIONS:
            raise ParamsError(f"retriever.joint.fusion: {self.fusion!r} is not one of {list(FUSIONS)}")

    def train_overrides(self) -> dict[str, object]:
        """The `train:` keys this section overrides for the augmented runs."""
        overrides = {"epochs": self.epochs, "patience": self.patience, "lr": self.backbone_lr, "threads": self.threads}
        return {"validate_start": self.validate_start, **{k: v for k, v in overrides.items() if v is not None}}


@dataclass
class RetrieverConfig:
    arch: ArchConfig = field(default_factory=ArchConfig)
    per_backbone: dict[str, BackboneRetrieverConfig] = field(default_factory=dict)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    joint: JointConfig = field(default_factory=JointConfig)

    def entry(self, backbone: str, model: str | None = None) -> BackboneRetrieverConfig | None:
        """The entry of `backbone` (a name in `backbones:`), else that of its model family (`dlcm`, ...), or None."""
        return next((self.per_backbone[k] for k in (backbone, model) if k in self.per_backbone), None)

    def joint_for(self, backbone: str, model: str | None = None) -> JointConfig:
        """`retriever.joint` with the backbone's (else its model family's) `per_backbone.<name>.joint` keys over it."""
        entry = self.entry(backbone, model)
        if entry is None or not entry.joint:
            return self.joint
        return section(JointConfig, {**dataclasses.asdict(self.joint), **entry.joint},
                       f"retriever.per_backbone.{backbone if backbone in self.per_backbone else model}.joint")

    def for_backbone(self, backbone: str, model: str | None = None) -> BackboneRetrieverConfig:
        """`entry`, required: an error naming the known entries when there is none."""
        entry = self.entry(backbone, model)
        if entry is None:
            raise ParamsError(
                f"retriever.per_backbone has no entry for backbone {backbone!r} (model {model!r}); known: {sorted(self.per_backbone)}"
            )
        return entry


def parse_retriever(block: Mapping[str, Any] | None) -> RetrieverConfig:
    """The typed `retriever:` section (per-backbone entries are typed one by one)."""
    raw = dict(block or {})
    per_backbone = {
        name: section(BackboneRetrieverConfig, value, f"retriever.per_backbone.{name}")
        for name, value in (raw.pop("per_backbone", None) or {}).items()
    }
    cfg = section(RetrieverConfig, raw, "retriever")
    cfg.per_backbone = per_backbone
    for name in per_backbone:
        cfg.joint_for(name)  # an unknown or mistyped key is an error now, naming its backbone
    return cfg
