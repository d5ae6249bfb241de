"""The user preference retriever (eq. 4): p blocks of self-attention → cross-attention → FFN.

Each sub-layer is residual with a BERT-style post LayerNorm. Self-attention and FFN weights come from the first
`n_layers` layers of a BERT checkpoint; cross-attention (keys/values Z = [e_u; e_{i_1..i_m}], eq. 5) starts
random. Inputs are K learnable proxies and/or the backbone's item representations h_i, projected to the
retriever width. The module sees tensors only.

Modes (all batch-first):
- `preference(z)`          eq. 6, mask (a): the K proxy outputs e^pref `[B, K, W]`.
- `items(h)`               eq. 7: an item alone, no cross-attention: e_i `[..., W]`.
- `match(h, z)`            eq. 8, mask (b): Linear(avg of the K proxy outputs) per item, logits `[B, n]`.
- `augment(h, z)`          eq. 9 fast path, mask (c): all l items in one pass, `[B, l, A]`.
- `augment_per_item(h, z)` eq. 9 one item per pass; the reference the fast path is tested against.

Agg of eq. 9 (`arch.aggregate`): `item` takes the item's own output, `proxies` the mean of the K proxy outputs,
`concat` (default) both side by side, all on the one-pass fast path. With item-blind proxies the proxy mean is
the user's filtered preference (shared by all candidates) and the item output is what that candidate
retrieved from Z as a query. `item_proxies` is eq. 9 as written: the mean of the K proxy outputs of a
separate [P; h_i] pass per item under mask (b), the very route PIM pre-trains; the proxies then differ per
item, at about K + 1 positions per item instead of 1 + K / l on the fast path.
"""

from __future__ import annotations

import contextlib
import math
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ur4rec.retriever import attention_masks, bert_init
from ur4rec.retriever.config import ArchConfig

# A self-attention mask: a boolean [n, n] tensor, or mask (c) with item-blind proxies kept as structure.
Mask = torch.Tensor | attention_masks.ItemsSeeProxies


class Attention(nn.Module):
    """Multi-head attention sub-layer with residual and post LayerNorm (BERT's attention block)."""

    def __init__(self, width: int, n_heads: int, dropout: float, eps: float):
        super().__init__()
        if width % n_heads:
            raise ValueError(f"width {width} is not divisible by {n_heads} heads")
        self.n_heads = n_heads
        self.query = nn.Linear(width, width)
        self.key = nn.Linear(width, width)
        self.value = nn.Linear(width, width)
        self.dense = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width, eps=eps)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, kv: torch.Tensor, mask: Mask | None, repeat: int = 1) -> torch.Tensor:
        """`repeat` > 1: `x` holds `repeat` consecutive rows per row of `kv` (one per item of a user), so the
        keys and values are projected once per user rather than once per item."""
        q = self._heads(self.query(x))
        k, v = (self._repeat(self._heads(proj(kv)), repeat) for proj in (self.key, self.value))
        p = self.dropout if self.training else 0.0
        if isinstance(mask, attention_masks.ItemsSeeProxies):
            att = _items_see_proxies(q, k, v, mask.n_proxies, p)
        else:
            att = _attend(q, k, v, mask, p)
        att = att.transpose(1, 2).reshape(x.shape)
        return self.norm(x + dropout(self.dense(att), self.dropout, self.training))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, w = t.shape
        return t.view(b, n, self.n_heads, w // self.n_heads).transpose(1, 2)

    @staticmethod
    def _repeat(t: torch.Tensor, repeat: int) -> torch.Tensor:
        return t if repeat == 1 else t.repeat_interleave(repeat, dim=0)


class FeedForward(nn.Module):
    def __init__(self, width: int, ffn_dim: int, dropout: float, eps: float, act: str):
        super().__init__()
        self.intermediate = nn.Linear(width, ffn_dim)
        self.output = nn.Linear(ffn_dim, width)
        self.norm = nn.LayerNorm(width, eps=eps)
        self.dropout = dropout
        self.act = _activation(act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.output(self.act(self.intermediate(x)))
        return self.norm(x + dropout(y, self.dropout, self.training))


class Block(nn.Module):
    """One retriever block; `z=None` skips the cross-attention (eq. 7 uses formulas 1 and 3 only)."""

    # BERT layer key (relative to encoder.layer.<i>.) -> our key
    BERT_KEYS = {
        "attention.self.query": "self_attn.query",
        "attention.self.key": "self_attn.key",
        "attention.self.value": "self_attn.value",
        "attention.output.dense": "self_attn.dense",
        "attention.output.LayerNorm": "self_attn.norm",
        "intermediate.dense": "ffn.intermediate",
        "output.dense": "ffn.output",
        "output.LayerNorm": "ffn.norm",
    }

    def __init__(self, width: int, n_heads: int, ffn_dim: int, dropout: float, eps: float, act: str):
        super().__init__()
        self.self_attn = Attention(width, n_heads, dropout, eps)
        self.cross_attn = Attention(width, n_heads, dropout, eps)
        self.ffn = FeedForward(width, ffn_dim, dropout, eps, act)

    def forward(
        self, x: torch.Tensor, mask: Mask, z: torch.Tensor | None, z_mask: torch.Tensor | None, repeat: int = 1
    ) -> torch.Tensor:
        x = self.self_attn(x, x, mask)
        if z is not None:
            x = self.cross_attn(x, z, z_mask, repeat)
        return self.ffn(x)

    def load_bert_layer(self, tensors: dict[str, torch.Tensor]) -> None:
        """Copy one BERT layer's self-attention and FFN weights; shapes must match exactly."""
        ours = self.state_dict()
        for bert_prefix, our_prefix in self.BERT_KEYS.items():
            for leaf in ("weight", "bias"):
                src = tensors.get(f"{bert_prefix}.{leaf}")
                if src is None:  # older checkpoints name LayerNorm params gamma/beta
                    src = tensors[f"{bert_prefix}.{'gamma' if leaf == 'weight' else 'beta'}"]
                if src.shape != ours[f"{our_prefix}.{leaf}"].shape:
                    raise ValueError(f"BERT {bert_prefix}.{leaf}: shape {tuple(src.shape)} != {tuple(ours[f'{our_prefix}.{leaf}'].shape)}")
                ours[f"{our_prefix}.{leaf}"] = src
        self.load_state_dict(ours)


class Retriever(nn.Module):
    """The UR4Rec retriever; see the module docstring for its five modes."""

    def __init__(self, arch: ArchConfig, n_proxies: int, h_dim: int, z_dim: int, load_weights: bool = True):
        super().__init__()
        folder = None if arch.init_checkpoint == "none" else bert_init.resolve_checkpoint(arch.init_checkpoint)
        shape = bert_init.read_shape(folder) if folder else bert_init.BertShape(
            arch.width, arch.n_heads, arch.ffn_dim, arch.n_layers, 1e-12, "gelu"
        )
        if arch.n_layers > shape.n_layers:
            raise ValueError(f"retriever.arch.n_layers={arch.n_layers} but the checkpoint has {shape.n_layers} layers")
        self.width = shape.width
        self.n_proxies = n_proxies
        self.aggregate = arch.aggregate if n_proxies > 0 else "item"
        self.proxies_see_items = arch.proxies_see_items
        # Unit scale, like the LayerNorm-ed item inputs they sit beside.
        self.proxies = nn.Parameter(torch.randn(n_proxies, shape.width))
        self.h_proj = nn.Sequential(nn.Linear(h_dim, shape.width), nn.LayerNorm(shape.width, eps=shape.layer_norm_eps))
        # Encoder vectors are unit-scale sentence embeddings; the norm puts them on the hidden states' scale.
        z_in = nn.Identity() if z_dim == shape.width else nn.Linear(z_dim, shape.width)
        self.z_proj = nn.Sequential(z_in, nn.LayerNorm(shape.width, eps=shape.layer_norm_eps))
        self.blocks = nn.ModuleList(
            Block(shape.width, shape.n_heads, shape.ffn_dim, arch.dropout, shape.layer_norm_eps, shape.hidden_act)
            for _ in range(arch.n_layers)
        )
        self.pim_head = nn.Linear(shape.width, 1)
        self.apply(_init_random)
        if folder is not None and load_weights:
            for block, tensors in zip(self.blocks, bert_init.load_layers(folder, arch.n_layers)):
                block.load_bert_layer(tensors)

    @property
    def out_dim(self) -> int:
        """A, the width of one augmented vector."""
        return 2 * self.width if self.aggregate == "concat" else self.width

    @property
    def per_item(self) -> bool:
        """True when eq. 9 runs one [P; h_i] pass per item (`item_proxies`) instead of the fast path."""
        return self.aggregate == "item_proxies"

    # ---------------------------------------------------------------- modes

    def preference(self, z: torch.Tensor, z_mask: torch.Tensor | None = None) -> torch.Tensor:
        """e^pref = Retriever(P, Z) under mask (a): `[B, K, W]`."""
        self._need_proxies("preference")
        x = self.proxies.unsqueeze(0).expand(z.shape[0], -1, -1)
        mask = attention_masks.proxies_only(self.n_proxies).to(z.device)
        return self._run(x, mask, z, z_mask)

    def items(self, h: torch.Tensor) -> torch.Tensor:
        """e_i = Retriever(h_i) without cross-attention: `[..., h_dim]` → `[..., W]`."""
        lead = h.shape[:-1]
        x = self.h_proj(h.reshape(-1, 1, h.shape[-1]))
        mask = torch.ones(1, 1, dtype=torch.bool, device=h.device)
        return self._run(x, mask, None, None).reshape(*lead, self.width)

    def match(self, h: torch.Tensor, z: torch.Tensor, z_mask: torch.Tensor | None = None) -> torch.Tensor:
        """PIM logits for items `h [B, n, h_dim]`, each in its own [P; h_i] pass under mask (b): `[B, n]`."""
        out = self._per_item(h, z, z_mask, attention_masks.proxies_and_item(self.n_proxies))
        pooled = out[:, :, : self.n_proxies].mean(2) if self.n_proxies else out[:, :, 0]
        return self.pim_head(pooled).squeeze(-1)

    def augment(self, h: torch.Tensor, z: torch.Tensor, z_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 9: `[B, l, h_dim]` → `[B, l, A]`; the fast path ([P; h_1..h_l] in one pass under mask (c)), or one
        [P; h_i] pass per item under mask (b) with `item_proxies`."""
        if self.per_item:
            out = self._per_item(h, z, z_mask, attention_masks.proxies_and_item(self.n_proxies))
            return out[:, :, : self.n_proxies].mean(2)
        b, n_items, _ = h.shape
        x = torch.cat([self.proxies.unsqueeze(0).expand(b, -1, -1), self.h_proj(h)], dim=1)
        if self.proxies_see_items:
            mask = attention_masks.proxies_and_items(self.n_proxies, n_items, True).to(h.device)
        else:
            mask = attention_masks.ItemsSeeProxies(self.n_proxies)
        out = self._run(x, mask, z, z_mask)
        k = self.n_proxies
        proxies, items = out.split([k, n_items], dim=1)
        proxy_mean = proxies.mean(1, keepdim=True).expand(-1, n_items, -1) if k else None
        return self._aggregate(items, proxy_mean)

    def augment_per_item(self, h: torch.Tensor, z: torch.Tensor, z_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Eq. 9 with one [P; h_i] pass per item (mask (c) with l = 1); the fast path's reference."""
        if self.per_item:
            return self.augment(h, z, z_mask)
        mask = attention_masks.proxies_and_items(self.n_proxies, 1, self.proxies_see_items)
        out = self._per_item(h, z, z_mask, mask)  # [B, l, K + 1, W]
        k = self.n_proxies
        return self._aggregate(out[:, :, k], out[:, :, :k].mean(2) if k else None)

    # ---------------------------------------------------------------- internals

    def _run(self, x: torch.Tensor, mask: Mask, z: torch.Tensor | None, z_mask: torch.Tensor | None,
             repeat: int = 1) -> torch.Tensor:
        zp = self.z_proj(z) if z is not None else None
        zm = z_mask[:, None, None, :] if z_mask is not None else None
        if zm is not None and repeat > 1:
            zm = zm.repeat_interleave(repeat, dim=0)
        for block in self.blocks:
            x = block(x, mask, zp, zm, repeat)
        return x

    def _per_item(self, h: torch.Tensor, z: torch.Tensor, z_mask: torch.Tensor | None, mask: torch.Tensor) -> torch.Tensor:
        """Run one [P; h_i] sequence per item, batched as B·n sequences: `[B, n, K + 1, W]`."""
        b, n, _ = h.shape
        flat_h = self.h_proj(h).reshape(b * n, 1, self.width)
        x = torch.cat([self.proxies.unsqueeze(0).expand(b * n, -1, -1), flat_h], dim=1)
        # Z's projections are computed once per user and shared by that user's n item passes.
        out = self._run(x, mask.to(h.device), z, z_mask, repeat=n)
        return out.reshape(b, n, self.n_proxies + 1, self.width)

    def _aggregate(self, item_out: torch.Tensor, proxy_mean: torch.Tensor | None) -> torch.Tensor:
        if self.aggregate == "item":
            return item_out
        if self.aggregate == "proxies":
            return proxy_mean
        return torch.cat([item_out, proxy_mean], dim=-1)

    def _need_proxies(self, mode: str) -> None:
        if self.n_proxies == 0:
            raise ValueError(f"Retriever.{mode} needs proxies, but this retriever was built with K = 0")


@contextlib.contextmanager
def recording_cross_attention(retriever: Retriever) -> Iterator[list[torch.Tensor]]:
    """Record every block's cross-attention probabilities over Z while the context is open: the list gets one
    `[B', n_heads, L, 1 + m]` tensor per block and forward call, in call order (rows: the block's queries; masked
    keys 0). Forward hooks recompute them from the block's own projections, so the forward pass is unchanged
    and training, which never opens the context, pays nothing. For the evaluation's drill-down only."""
    found: list[torch.Tensor] = []

    def record(module: Attention, args: tuple, output: torch.Tensor) -> None:
        x, kv, mask = args[:3]
        repeat = args[3] if len(args) > 3 else 1
        with torch.autocast(x.device.type, enabled=False):  # fp32 weights even where the pass ran in bf16
            q = module._heads(module.query(x.float()))
            k = module._repeat(module._heads(module.key(kv.float())), repeat)
            scores = (q @ k.transpose(-2, -1)) * q.shape[-1] ** -0.5
            if mask is not None:
                scores = scores.masked_fill(~mask, float("-inf"))
            found.append(torch.softmax(scores, dim=-1).detach())

    handles = [block.cross_attn.register_forward_hook(record) for block in retriever.blocks]
    try:
        yield found
    finally:
        for handle in handles:
            handle.remove()


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, its keep mask drawn from 16-bit random numbers (four per 64-bit draw).

    The same distribution as `F.dropout` (the drop rate rounded to a multiple of 2^-16, the kept values scaled
    by the exact inverse keep rate), at about a fifth of the random-number cost on CPU, where `F.dropout` draws a
    32-bit number per element and the attention-probability masks took a quarter of a retriever step."""
    if not training or p == 0.0:
        return x
    keep, scale = dropout_mask(x.shape, p, x.device)
    return x * keep * scale


def dropout_mask(shape: torch.Size, p: float, device: torch.device) -> tuple[torch.Tensor, float]:
    """`(keep, scale)`: a boolean keep mask of `shape` (each element kept with probability 1 - p, p rounded to a
    multiple of 2^-16) and the inverse of that keep rate (0 when nothing is kept)."""
    n = math.prod(shape)
    words = torch.randint(-(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, device=device)
    draws = words.view(torch.int16)[:n].view(shape)
    dropped = min(max(round(p * 65536), 0), 65536)
    keep = draws >= dropped - 32768 if dropped < 65536 else torch.zeros(shape, dtype=torch.bool, device=device)
    return keep, 65536 / (65536 - dropped) if dropped < 65536 else 0.0


def _attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None, p: float) -> torch.Tensor:
    """Softmax attention with dropout `p` on the attention probabilities. With dropout it is written out, so the
    mask comes from `dropout`; without, `scaled_dot_product_attention` computes the same."""
    if p == 0.0:
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    # Every pass over the [B, h, L, m] probabilities counts here: the scale goes on q, the mask is added as a
    # bias of its own (small) shape, and dropout's 1 / keep rate is applied after the product with v.
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-2, -1)
    if mask is not None:
        bias = torch.zeros(mask.shape, dtype=scores.dtype, device=mask.device).masked_fill(~mask, float("-inf"))
        scores = scores + bias
    probs = torch.softmax(scores, dim=-1, dtype=torch.float32).to(v.dtype)
    keep, scale = dropout_mask(probs.shape, p, probs.device)
    return ((probs * keep) @ v) * scale


def _items_see_proxies(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, n_proxies: int, p: float) -> torch.Tensor:
    """Self-attention under mask (c) with item-blind proxies, `[B, h, K + n, d]`: the proxies attend to each
    other; each item attends to the K proxies and to itself, its K + 1 scores computed directly rather than
    masked out of a K + n wide row. Equal to `_attend` with the `[K + n, K + n]` mask."""
    # split, not slicing: a slice's backward fills a zero tensor of the whole input, split's concatenates
    sizes = [n_proxies, q.shape[2] - n_proxies]
    (qp, qi), (kp, ki), (vp, vi) = (t.split(sizes, dim=2) for t in (q, k, v))
    own = (qi.float() * ki.float()).sum(-1, keepdim=True)
    scores = torch.cat([(qi @ kp.transpose(-2, -1)).float(), own], dim=-1) * (q.shape[-1] ** -0.5)
    probs = dropout(torch.softmax(scores, dim=-1), p, p > 0.0)
    items = (probs[..., :n_proxies].to(vp.dtype) @ vp).float() + probs[..., n_proxies:] * vi.float()
    if n_proxies == 0:
        return items
    proxies = _attend(qp, kp, vp, None, p)
    return torch.cat([proxies.float(), items], dim=2)


def _activation(name: str):
    acts = {"gelu": F.gelu, "relu": F.relu, "gelu_new": lambda t: F.gelu(t, approximate="tanh")}
    if name not in acts:
        raise ValueError(f"unsupported hidden_act {name!r}; known: {sorted(acts)}")
    return acts[name]


def _init_random(module: nn.Module) -> None:
    """BERT's initialisation, for everything not copied from the checkpoint."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, std=0.02)
        nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
