"""Fixed 2-D sine-cosine position embeddings (as in MAE), written from the formula.

Half of the channels encode the row, half the column; each half is ``[sin(pos * w), cos(pos * w)]``
with frequencies ``w_k = 1 / 10000 ** (k / (dim / 4))``, k = 0 .. dim/4 - 1.
"""

from __future__ import annotations

import torch


def sincos_1d(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """positions: (M,) -> (M, dim) embedding; dim must be even."""
    if dim % 2:
        raise ValueError(f"dim={dim} must be even")
    k = torch.arange(dim // 2, dtype=torch.float64)  # (dim/2,)
    omega = 1.0 / 10000.0 ** (k / (dim / 2))  # (dim/2,)
    angles = positions.to(torch.float64)[:, None] * omega[None, :]  # (M, dim/2)
    return torch.cat([angles.sin(), angles.cos()], dim=1).float()  # (M, dim)


def sincos_2d(dim: int, grid_h: int, grid_w: int, *, cls_token: bool = False) -> torch.Tensor:
    """(grid_h * grid_w [+1], dim) embedding, row-major over the patch grid.

    With ``cls_token`` a zero row is prepended for the class token.
    """
    if dim % 4:
        raise ValueError(f"dim={dim} must be a multiple of 4")
    rows, cols = torch.meshgrid(torch.arange(grid_h), torch.arange(grid_w), indexing="ij")
    emb = torch.cat([sincos_1d(dim // 2, rows.flatten()),  # (H*W, dim/2)
                     sincos_1d(dim // 2, cols.flatten())], dim=1)  # (H*W, dim)
    if cls_token:
        emb = torch.cat([torch.zeros(1, dim), emb], dim=0)  # (1+H*W, dim)
    return emb
