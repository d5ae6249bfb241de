"""LRURec (Yue et al., WSDM 2024): stacked Linear Recurrent Units over the history; the output at the most
recent position, dotted with a candidate's representation, is its score.

An LRU is a diagonal complex linear recurrence h_t = lambda * h_{t-1} + gamma * (B x_t), read out as
y_t = Re(C h_t). lambda = exp(-exp(nu_log) + i exp(theta_log)) keeps |lambda| < 1 whatever the weights;
gamma = exp(gamma_log) starts at sqrt(1 - |lambda|^2) so a state's scale does not depend on how slowly it
decays. |lambda| starts uniformly on a ring [r_min, r_max] (uniform in area), its phase in [0, max_phase].

Training runs the recurrence in parallel, never step by step. The paper's recursive scheme (`linear_scan`):
split the sequence into halves recursively, solve each half on its own, then give the second half
lambda^(1..n) times the first half's last state: log2(L) tensor steps instead of L. On a CPU its elementwise
complex passes over the whole sequence dominate, so `chunked_scan` applies it to block-end states only: within
blocks of `CHUNK` steps the states are one lower-triangular (Toeplitz) product with the powers of lambda, and
the block-end states form the same recurrence with lambda^CHUNK, solved by `linear_scan` (about 2x faster
than `linear_scan` over all 150 steps, same result). The last block only needs the final state, a single
weighted sum (`last_state`).

Padding: a padded step's input is zeroed, so the state stays exactly 0 until the first real item and a
left-padded history scores as its unpadded self. Trained with the listwise loss over the candidate list, as
every backbone here (the paper trains next-item cross-entropy over the whole catalogue).
"""

from __future__ import annotations


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ur4rec.models.base import Backbone
from ur4rec.models.config import LRURecConfig
from ur4rec.models.catalog import ItemCatalog

INIT_STD = 0.02  # the paper's truncated-normal init of the projections, cut at 2 std
CHUNK = 16       # steps solved in closed form per block by `chunked_scan` (fastest of 8, 16, 32 on a CPU)



def ring_init(n: int, r_min: float, r_max: float, max_phase: float) -> tuple[Tensor, Tensor, Tensor]:
    """(nu_log, theta_log, gamma_log) of n eigenvalues drawn uniformly on the ring r_min <= |lambda| <= r_max."""
    if not 0 < r_min < r_max < 1:
        raise ValueError(f"need 0 < r_min < r_max < 1, got r_min={r_min}, r_max={r_max}")
    radius_sq = torch.rand(n) * (r_max**2 - r_min**2) + r_min**2
    nu_log = torch.log(-0.5 * torch.log(radius_sq))         # |lambda| = exp(-exp(nu_log))
    theta_log = torch.log(torch.rand(n).clamp_min(1e-4) * max_phase)
    gamma_log = 0.5 * torch.log(1 - radius_sq)               # gamma = sqrt(1 - |lambda|^2)
    return nu_log, theta_log, gamma_log


def power_table(log_lambda: Tensor, n: int) -> Tensor:
    """lambda^1 .. lambda^n as `[n, N]`, from log(lambda) directly (no repeated products to lose precision)."""
    k = torch.arange(1, n + 1, device=log_lambda.device, dtype=log_lambda.real.dtype)
    return torch.exp(k.unsqueeze(1) * log_lambda)


def linear_scan(u: Tensor, log_lambda: Tensor) -> Tensor:
    """All states of h_t = lambda * h_{t-1} + u_t (h_{-1} = 0) for complex `u [B, L, N]`, by recursive halving.

    Working bottom-up over blocks of 2, 4, 8, ... steps: within a block both halves are already solved on
    their own, so the second half only misses lambda^(j+1) times the first half's last state at its j-th step.
    The sequence is left-padded with zeros to a power of two, which leaves the states of the real steps as they
    are.
    """
    b, steps, n = u.shape
    size = 1 << max(0, (steps - 1).bit_length())
    h = torch.cat([u.new_zeros(b, size - steps, n), u], dim=1) if size > steps else u
    powers = power_table(log_lambda, size // 2)
    half = 1
    while half < size:
        blocks = h.view(b, size // (2 * half), 2 * half, n)
        first, second = blocks[:, :, :half], blocks[:, :, half:]
        second = second + powers[:half] * first[:, :, half - 1:half]
        h = torch.cat([first, second], dim=2).view(b, size, n)
        half *= 2
    return h[:, size - steps:]


def chunked_scan(u: Tensor, log_lambda: Tensor, chunk: int = CHUNK) -> Tensor:
    """The same states as `linear_scan`: closed form within blocks of `chunk` steps, `linear_scan` across them."""
    b, steps, n = u.shape
    size = -(-steps // chunk) * chunk
    u = torch.cat([u.new_zeros(b, size - steps, n), u], dim=1) if size > steps else u
    powers = torch.cat([torch.ones_like(log_lambda).unsqueeze(0), power_table(log_lambda, chunk)])  # lambda^0..c
    lag = torch.arange(chunk, device=u.device)
    lag = lag.unsqueeze(1) - lag.unsqueeze(0)                                   # t - s within a block
    toeplitz = powers[lag.clamp(min=0)] * (lag >= 0).unsqueeze(-1)             # [t, s, N]: lambda^(t-s), t >= s
    inner = torch.einsum("tsn,bcsn->bctn", toeplitz, u.view(b, size // chunk, chunk, n))
    ends = linear_scan(inner[:, :, -1], chunk * log_lambda)                    # true state at each block's end
    entering = torch.cat([torch.zeros_like(ends[:, :1]), ends[:, :-1]], dim=1)  # state before each block
    states = inner + powers[1:].view(1, 1, chunk, n) * entering.unsqueeze(2)
    return states.view(b, size, n)[:, size - steps:]


def last_state(u: Tensor, log_lambda: Tensor) -> Tensor:
    """The final state only, `[B, N]`: sum_s lambda^(L-1-s) u_s."""
    steps = u.shape[1]
    weights = torch.cat([power_table(log_lambda, steps - 1).flip(0), torch.ones_like(log_lambda).unsqueeze(0)])
    return (u * weights).sum(1)


class LRULayer(nn.Module):
    """x -> LayerNorm(x + Dropout(Re(C h))), h the LRU states of B x (x at padded steps contributes nothing)."""

    def __init__(self, dim: int, state: int, r_min: float, r_max: float, max_phase: float, dropout: float):
        super().__init__()
        self.state = state
        nu_log, theta_log, gamma_log = ring_init(state, r_min, r_max, max_phase)
        self.nu_log, self.theta_log, self.gamma_log = (nn.Parameter(p) for p in (nu_log, theta_log, gamma_log))
        self.B = nn.Linear(dim, 2 * state)    # real and imaginary parts of B x (x is real)
        self.C = nn.Linear(2 * state, dim)    # Re(C h) is linear in [Re h ; Im h]
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def log_lambda(self) -> Tensor:
        return torch.complex(-torch.exp(self.nu_log), torch.exp(self.theta_log))

    def inputs(self, x: Tensor, present: Tensor) -> Tensor:
        """gamma * B x as complex `[B, L, N]`, zero at padded steps; float32 whatever the autocast dtype."""
        bx = (self.B(x) * present.unsqueeze(-1)).float()
        return torch.complex(bx[..., : self.state], bx[..., self.state:]) * torch.exp(self.gamma_log)

    def forward(self, x: Tensor, present: Tensor, last_only: bool = False) -> Tensor:
        """`x [B, L, d]`, `present [B, L]` bool -> `[B, L, d]`, or `[B, 1, d]` (last step) with `last_only`."""
        u = self.inputs(x, present)
        h = last_state(u, self.log_lambda()).unsqueeze(1) if last_only else chunked_scan(u, self.log_lambda())
        y = self.C(torch.cat([h.real, h.imag], dim=-1).to(x.dtype))
        residual = x[:, -1:] if last_only else x
        return self.norm(residual + self.dropout(y))


class FeedForward(nn.Module):
    """Position-wise: LayerNorm(x + Dropout(W2 Dropout(GELU(W1 x)))), inner width 4d as in the paper."""

    def __init__(self, dim: int, dropout: float):
        super().__init__()
        self.w1 = nn.Linear(dim, 4 * dim)
        self.w2 = nn.Linear(4 * dim, dim)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x + self.dropout(self.w2(self.dropout(F.gelu(self.w1(x))))))


class LRUBlock(nn.Module):
    def __init__(self, cfg: LRURecConfig):
        super().__init__()
        self.lru = LRULayer(cfg.dim, cfg.state_factor * cfg.dim, cfg.r_min, cfg.r_max, cfg.max_phase, cfg.dropout)
        self.ffn = FeedForward(cfg.dim, cfg.dropout)

    def forward(self, x: Tensor, present: Tensor, last_only: bool = False) -> Tensor:
        return self.ffn(self.lru(x, present, last_only))


class LRURec(Backbone):

    def __init__(self, cfg: LRURecConfig, catalog: ItemCatalog, aug_dim: int = 0):
        if cfg.blocks < 1 or cfg.state_factor < 1:
            raise ValueError(f"lrurec: blocks and state_factor must be >= 1, got {cfg.blocks}, {cfg.state_factor}")
        super().__init__(cfg, catalog, aug_dim)
        self.embed_norm = nn.LayerNorm(cfg.dim)
        self.blocks = nn.ModuleList(LRUBlock(cfg) for _ in range(cfg.blocks))
        self.reset_projections()

    @torch.no_grad()
    def reset_projections(self) -> None:
        """Truncated-normal weights and zero biases for the LRU and feed-forward projections (the paper's init);
        item features, layer norms and the eigenvalue parameters keep their own."""
        for block in self.blocks:
            for layer in (block.lru.B, block.lru.C, block.ffn.w1, block.ffn.w2):
                nn.init.trunc_normal_(layer.weight, std=INIT_STD, a=-2 * INIT_STD, b=2 * INIT_STD)
                nn.init.zeros_(layer.bias)

    def user_state(self, history: Tensor) -> Tensor:
        """`[B, L]` left-padded item ids -> `[B, dim]`, the last block's output at the most recent step."""
        history = drop_empty_columns(history)
        present = history > 0
        x = self.dropout(self.embed_norm(self.item_repr(history)))
        for i, block in enumerate(self.blocks):
            x = block(x, present, last_only=i == len(self.blocks) - 1)
        return x[:, -1]

    def score(self, history: Tensor, candidates: Tensor) -> Tensor:
        return (candidates * self.user_state(history).unsqueeze(1)).sum(-1)


def drop_empty_columns(history: Tensor) -> Tensor:
    """Cut the leading steps that are padding in every row (exact: padded steps leave the state at 0), so a
    batch of short histories costs what its longest history costs, not `history_len`."""
    filled = (history > 0).any(0).nonzero()
    start = int(filled[0]) if len(filled) else history.shape[1] - 1
    return history[:, start:]
