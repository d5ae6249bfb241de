"""Variant name → how to build it: the control, the augmentation baselines, UR4Rec and its ablations
(Tables 2, 3, Fig. 4).

Every variant is one `variant.<name>` block in params.yaml, typed here; nothing is read from the name. `kind`
picks the augmenter (registered in `ur4rec.retriever.augment`):

| kind     | aug per candidate                                                                 |
| ---      | ---                                                                               |
| `none`   | zeros: the matched control, trained exactly like the others without augmentation  |
| `bert`   | the encoder vector of the user's raw history text, broadcast (+BERT)              |
| `llm`    | the encoder vector of the LLM user preference, broadcast (+LLM)                   |
| `kar`    | KAR's hybrid-expert adaptor over the preference and the candidate's knowledge     |
| `pooled` | Z of eq. 5 without a retriever: [e_u ; mean of history e_i], broadcast (w/o Retr) |
| `ur4rec` | the retriever's eq. 9 fast path over the candidates                               |

For `ur4rec`, `objectives` lists the pre-training losses (`[]`: no pre-training), `proxies` says whether the
joint training starts from the pre-trained proxies, re-drawn random ones, or none at all, `z_source` whether Z
holds LLM (`llm`) or raw-text (`bert`) vectors, and `n_proxies` overrides the per-backbone K. `family`
says which report table a variant belongs to: `main` (Table 2), `ablation` (Table 3) or `proxy_sweep`
(Figure 4, plotted against its K), or `negative_control`.

Negative controls keep a variant's kind and change only what its vectors carry (`ur4rec.retriever.tables`):
`content` for the user vectors (UR4Rec: e_u of Z) — `real`, `shuffled` (each user gets another training
user's vector, by a fixed permutation) or `random` (random vectors with the real ones' per-dimension mean and
SD, fixed per id) — and `item_content` for the item vectors (KAR's knowledge, UR4Rec's history keys): `real`
or `random`. `content_seed` seeds both draws; the same seed gives the same table in every build.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from ur4rec.config import ParamsError, section
from ur4rec.retriever.losses import OBJECTIVES

KINDS = ("none", "bert", "llm", "kar", "pooled", "ur4rec")
FAMILIES = ("main", "ablation", "proxy_sweep", "negative_control")
USER_CONTENTS = ("real", "shuffled", "random")
ITEM_CONTENTS = ("real", "random")
PROXY_MODES = ("pretrained", "random", "none")
# Which store kinds hold the user vector and the item vectors for each Z source.
Z_SOURCES = {"llm": ("user_pref", "item_know"), "bert": ("user_text", "item_text")}


@dataclass
class KarConfig:
    """Hybrid-expert adaptor (Xi et al. 2023): shared experts plus experts dedicated to each knowledge type."""

    n_shared: int = 2
    n_dedicated: int = 2
    hidden: int = 256
    out_dim: int = 64  # per knowledge type; aug = [preference ; item knowledge] → 2·out_dim
    dropout: float = 0.1


@dataclass
class VariantConfig:
    kind: str
    z_source: str = "llm"
    objectives: list[str] = field(default_factory=lambda: list(OBJECTIVES))
    proxies: str = "pretrained"
    n_proxies: int | None = None
    kar: KarConfig = field(default_factory=KarConfig)
    family: str = "main"
    content: str = "real"
    item_content: str = "real"
    content_seed: int = 0

    def __post_init__(self) -> None:
        _one_of("kind", self.kind, KINDS)
        _one_of("content", self.content, USER_CONTENTS)
        _one_of("item_content", self.item_content, ITEM_CONTENTS)
        if self.kind == "none" and (self.content, self.item_content) != ("real", "real"):
            raise ParamsError("variant.content: the control (kind none) carries no vectors to shuffle or randomise")
        if self.item_content != "real" and not self.reads_items:
            raise ParamsError(f"variant.item_content: kind {self.kind} reads no item vectors; leave it real")
        _one_of("family", self.family, FAMILIES)
        _one_of("z_source", self.z_source, tuple(Z_SOURCES))
        _one_of("proxies", self.proxies, PROXY_MODES)
        for objective in self.objectives:
            _one_of("objectives[]", objective, OBJECTIVES)
        if self.proxies == "none" and "cl" in self.objectives:
            raise ParamsError("variant: contrastive learning compares proxy outputs, so proxies: none needs objectives without cl")
        if self.proxies == "random" and not self.objectives:
            raise ParamsError("variant: proxies: random re-draws pre-trained proxies, so it needs pre-training objectives")
        if self.n_proxies is not None and self.n_proxies < 1:
            raise ParamsError(f"variant.n_proxies must be >= 1 (use proxies: none for no proxies), got {self.n_proxies}")

    @property
    def reads_items(self) -> bool:
        """Whether the augmenter reads item vectors besides the user's (KAR's knowledge, Z's history keys)."""
        return self.kind in ("kar", "pooled", "ur4rec")

    @property
    def is_control(self) -> bool:
        return self.kind == "none"

    @property
    def needs_pretraining(self) -> bool:
        return self.kind == "ur4rec" and bool(self.objectives)

    @property
    def uses_retriever(self) -> bool:
        return self.kind == "ur4rec"

    @property
    def reads_z(self) -> bool:
        """Reads Z of eq. 5 (the user vector and the history items' vectors): the retriever, or Z pooled."""
        return self.kind in ("pooled", "ur4rec")

    @property
    def is_kar(self) -> bool:
        """KAR, the augmentation baseline the report tests every arm against (†)."""
        return self.kind == "kar"

    def proxy_count(self, default: int) -> int:
        """K for this variant: 0 without proxies, else the override or the per-backbone default."""
        if self.proxies == "none":
            return 0
        return self.n_proxies if self.n_proxies is not None else default

    @property
    def store_kinds(self) -> tuple[str, str]:
        """(user kind, item kind) read from the embedding store."""
        if self.kind in ("bert", "none"):
            return ("user_text", "item_text")
        return Z_SOURCES[self.z_source]


def parse_variants(block: Mapping[str, Any] | None) -> dict[str, VariantConfig]:
    """The typed `variant:` section, one `VariantConfig` per name."""
    return {name: section(VariantConfig, value, f"variant.{name}") for name, value in (block or {}).items()}


def _one_of(key: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ParamsError(f"variant.{key}: {value!r} is not one of {list(allowed)}")
