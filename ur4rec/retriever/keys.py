"""Z = e_u^aggr (eq. 5): the user's preference vector followed by the knowledge vectors of history items.

Shared by pre-training and joint training so both build the cross-attention keys the same way. Only the
sample's own history enters Z, and the data contract guarantees it ends before the target: no leakage.
"""

from __future__ import annotations

import torch


def preference_keys(
    user_table: torch.Tensor, item_table: torch.Tensor, user_ids: torch.Tensor, history: torch.Tensor, z_history: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(z [B, 1 + m, D], z_mask [B, 1 + m])` from the last `m = z_history` items of a left-padded history.

    `z_mask` is True where a key is real; padding ids (0) are masked, the user vector never is, so every
    query always has at least one key.
    """
    hist = history[:, -z_history:] if z_history > 0 else history[:, :0]
    z = torch.cat([user_table[user_ids].unsqueeze(1), item_table[hist]], dim=1)
    present = torch.ones(hist.shape[0], 1, dtype=torch.bool, device=hist.device)
    return z, torch.cat([present, hist > 0], dim=1)
