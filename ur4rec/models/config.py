"""The backbones' settings and where each model lives, importable without any model implementation.

A stage that only reads params (or builds one backbone) imports this module, not the seven models: the code
fingerprint of a stage (`ur4rec.runs.stages`) then holds the implementation of its own backbone alone, so
editing `sasrec.py` reruns SASRec's stages and nothing else. `MODELS` maps each registered name (as written in
params.yaml's `model:`) to its config class and its implementation module; `ur4rec.models.lookup` imports the
implementation on first use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ITEM_BIAS = ("none", "learned", "popularity")  # backbone.<name>.item_bias (ur4rec/models/item_bias.py)

# Attribute names the catalogue writes for the built-in datasets (MovieLens, Steam, Amazon 2018): Recformer's
# default `attribute_keys`.
DEFAULT_KEYS = ("title", "categories", "brand", "date", "description", "developer", "imdb url", "main cat", "price",
                "publisher", "release date", "specs", "tags", "video release date", "year")


@dataclass
class BackboneConfig:
    """Settings every backbone has; each backbone extends it with its own (layers, heads, ...)."""

    lr: float = 1e-3           # read by the training loop: the paper tunes it per backbone family
    epochs: int | None = None  # the Base run's epoch bound (None: train.epochs); a slow model's CPU budget
    history_len: int = 10      # most recent history items the model reads (10 rerankers, 150 sequential)
    dim: int = 64              # model width d = item representation size
    dropout: float = 0.1
    item_bias: str = "none"    # none | learned | popularity: a per-item score offset (ur4rec/models/item_bias.py)

    def __post_init__(self) -> None:
        if self.item_bias not in ITEM_BIAS:
            raise ValueError(f"item_bias must be one of {list(ITEM_BIAS)}, got {self.item_bias!r}")



@dataclass
class RerankerConfig(BackboneConfig):
    user_history: bool = False   # true: each candidate also reads the user's history summary (not the paper's)


@dataclass
class DLCMConfig(RerankerConfig):
    layers: int = 1


@dataclass
class PRMConfig(RerankerConfig):
    layers: int = 1
    heads: int = 2
    max_candidates: int = 100    # size of the position table; must be >= prepare.n_candidates


@dataclass
class SetRankConfig(RerankerConfig):
    layers: int = 2
    heads: int = 2
    inducing_points: int = 8     # 0: MSAB (full self-attention) instead of IMSAB


@dataclass
class GRU4RecConfig(BackboneConfig):
    history_len: int = 150
    layers: int = 1


@dataclass
class SASRecConfig(BackboneConfig):
    history_len: int = 150
    layers: int = 2
    heads: int = 2


@dataclass
class LRURecConfig(BackboneConfig):
    history_len: int = 150     # paper: 200 on ML-1M, 50 on the sparser sets
    dim: int = 64              # paper: 64
    dropout: float = 0.2       # paper: 0.2 (embedding, LRU output and feed-forward)
    blocks: int = 2            # paper: 2 LRU blocks
    state_factor: int = 2      # complex state size = state_factor * dim (paper: 2)
    r_min: float = 0.8         # ring init of |lambda| (paper: 0.8 .. 0.99)
    r_max: float = 0.99
    max_phase: float = 2 * math.pi


@dataclass
class RecformerConfig(BackboneConfig):
    lr: float = 5e-5                # paper: 5e-5 (fine-tuning)
    history_len: int = 20           # history window read from the data
    dim: int = 0                    # 0: the encoder's width, no projection (the paper's setting)
    dropout: float = 0.1            # the encoder's hidden dropout (paper: 0.1)
    attention_dropout: float = 0.0  # paper: 0.1; off as in this project's own attention layers (15% of a CPU step)
    text_model: str = "packaged:minilm"  # or a local folder (paper: Longformer-base)
    max_tokens: int = 128           # per user sequence, [CLS]/[SEP] included (paper: 1024)
    max_item_tokens: int = 32       # per item (paper: 32 per attribute, 3 attributes)
    history_items: int = 20         # most recent items in the user text (paper: 50)
    temperature: float = 0.05       # paper: 0.05
    pooling: str = "mean"           # "cls" (paper) or "mean" (how all-MiniLM-L6-v2 was trained)
    freeze_layers: int = 0          # freeze the embeddings and the lowest N encoder layers
    freeze_word_embeddings: bool = True  # paper's fine-tuning option; also spares AdamW a 30k x d table
    attribute_keys: list[str] = field(default_factory=lambda: list(DEFAULT_KEYS))
    item_batch_tokens: int = 8192   # padded tokens per batch when encoding the item table
    # Recformer's pre-training (MLM + item-item contrastive) before fine-tuning, on the one loop with the
    # run's seed and train: settings, selected on the validation lists' loss; see recformer_pretrain.
    pretrain: bool = False
    pretrain_epochs: int = 1
    pretrain_lr: float = 5e-5
    pretrain_batch_size: int = 16
    pretrain_patience: int = 2      # epochs without a lower validation loss before pre-training stops
    mlm_probability: float = 0.15
    mlm_weight: float = 0.1         # paper: 0.1


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its typed settings, and the module and class implementing it."""

    config: type[BackboneConfig]
    module: str
    cls: str
    needs_item_texts: bool = False  # built over a catalogue with `texts` (text-based models)
    pretraining: str | None = None  # module with `pretraining(model, train, valid, seed)`: the model's own
                                    # pre-training, run on the one loop before its Base run when its config asks


MODELS: dict[str, ModelEntry] = {
    "dlcm": ModelEntry(DLCMConfig, "ur4rec.models.dlcm", "DLCM"),
    "prm": ModelEntry(PRMConfig, "ur4rec.models.prm", "PRM"),
    "setrank": ModelEntry(SetRankConfig, "ur4rec.models.setrank", "SetRank"),
    "gru4rec": ModelEntry(GRU4RecConfig, "ur4rec.models.gru4rec", "GRU4Rec"),
    "sasrec": ModelEntry(SASRecConfig, "ur4rec.models.sasrec", "SASRec"),
    # Table 5 baselines
    "lrurec": ModelEntry(LRURecConfig, "ur4rec.models.lrurec", "LRURec"),
    "recformer": ModelEntry(RecformerConfig, "ur4rec.models.recformer", "Recformer", needs_item_texts=True,
                            pretraining="ur4rec.models.recformer_pretrain"),
}
