"""TCN -> Transformer encoder -> MLP, giving one output vector per frame.

Reads like the paper's figure: ``g = TCN(f)`` (``f`` standardised per dimension with the
training frames' statistics, ``FeatureNorm``), ``h = TransformerEncoder(g)``, ``y = MLP(h)``.
A switched-off stage (``--no-tcn`` / ``--no-transformer``) is replaced by an identity (plus a
linear projection when the widths differ), so ``forward`` has no flags and every other parameter
keeps its name and shape.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from seqtrain.config import ModelConfig

__all__ = ["FeatureNorm", "TemporalBlock", "TCN", "TransformerStage", "IdentityStage", "SeqModel",
           "sinusoidal_positions"]


class FeatureNorm(nn.Module):
    """Per-dimension standardisation of the input features with the TRAINING frames' statistics.

    Frame encoders give features of any offset and scale (a weakly trained MAE gives dimensions
    that sit near a constant with a variance of 1e-4 around it); unscaled, the signal drowns
    under the offset and the network's first layers never see it, while a linear probe on
    standardised features reads it at once. ``fit`` sets the buffers (saved with the weights, so a
    checkpoint standardises exactly as in training); x: (..., D) -> (..., D).
    """

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    @torch.no_grad()
    def fit(self, arrays) -> None:
        """Set mean and std from an iterable of (n_i, D) arrays (streamed in float64)."""
        count, total, squares = 0, 0.0, 0.0
        for a in arrays:
            a = torch.as_tensor(a, dtype=torch.float64)  # (n_i, D)
            count += a.shape[0]
            total = total + a.sum(0)
            squares = squares + (a * a).sum(0)
        if count == 0:
            raise ValueError("FeatureNorm.fit needs at least one frame")
        mean = total / count
        std = (squares / count - mean * mean).clamp(min=0.0).sqrt()
        std = torch.where(std > 1e-8, std, torch.ones_like(std))  # constant dims pass unscaled
        self.mean.copy_(mean.float())
        self.std.copy_(std.float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class TemporalBlock(nn.Module):
    """Dilated residual block of two non-causal 'same'-padded 1-D convolutions.

    ``padding="same"`` keeps the length for any kernel size, 1 included (no pad-then-chomp).
    x: (B, C_in, T) -> (B, C_out, T).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int, dilation: int, dropout: float):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(c_in, c_out, kernel, dilation=dilation, padding="same"),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Conv1d(c_out, c_out, kernel, dilation=dilation, padding="same"),
            nn.ReLU(),
            nn.Dropout(dropout),
        )
        self.skip = nn.Conv1d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        self.act = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.net(x) + self.skip(x))  # (B, C_out, T)


class TCN(nn.Module):
    """Stack of TemporalBlocks. x: (B, T, D) -> (B, T, channels[-1])."""

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        widths = (in_dim, *cfg.tcn_channels)
        self.blocks = nn.Sequential(*(
            TemporalBlock(widths[i], widths[i + 1], k, d, cfg.dropout)
            for i, (k, d) in enumerate(zip(cfg.kernel_sizes, cfg.dilations, strict=True))
        ))

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.blocks(x.transpose(1, 2)).transpose(1, 2)  # (B, T, C)


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """Fixed sine/cosine position table. Returns (length, dim)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]  # (L, 1)
    freq = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(pos * freq)  # (L, ceil(dim/2))
    table[:, 1::2] = torch.cos(pos * freq[: dim // 2])  # (L, dim//2)
    return table


class TransformerStage(nn.Module):
    """Projection to d_model, positions, ``nn.TransformerEncoder`` with a key padding mask.
    x: (B, T, C_in), pad: (B, T) bool (True = padded frame) -> (B, T, d_model)."""

    def __init__(self, in_dim: int, cfg: ModelConfig):
        super().__init__()
        d = cfg.d_model
        self.proj = nn.Linear(in_dim, d) if in_dim != d else nn.Identity()
        if cfg.positions == "learned":
            self.pos = nn.Parameter(torch.zeros(cfg.max_len, d))
            nn.init.trunc_normal_(self.pos, std=0.02)
        else:
            self.register_buffer("pos", sinusoidal_positions(cfg.max_len, d), persistent=False)
        layer = nn.TransformerEncoderLayer(d, cfg.heads, cfg.ff_dim, cfg.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        x = self.proj(x) + self.pos[: x.shape[1]]  # (B, T, d)
        return self.encoder(x, src_key_padding_mask=pad)  # (B, T, d)


class IdentityStage(nn.Module):
    """A switched-off stage: identity, or a linear projection when the widths differ."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.proj = nn.Linear(in_dim, out_dim) if in_dim != out_dim else nn.Identity()

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        return self.proj(x)  # (B, T, out_dim)


class SeqModel(nn.Module):
    """TCN -> Transformer -> MLP. feats: (B, T, in_dim), pad: (B, T) bool -> (B, T, out_dim)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.input_norm = FeatureNorm(cfg.in_dim)
        tcn_out = cfg.tcn_channels[-1]
        self.tcn = TCN(cfg.in_dim, cfg) if cfg.use_tcn else IdentityStage(cfg.in_dim, tcn_out)
        self.transformer = (TransformerStage(tcn_out, cfg) if cfg.use_transformer
                            else IdentityStage(tcn_out, cfg.d_model))
        self.head = nn.Sequential(
            nn.LayerNorm(cfg.d_model),
            nn.Linear(cfg.d_model, cfg.head_hidden),
            nn.GELU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_hidden, cfg.out_dim),
        )

    def forward(self, feats: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        g = self.tcn(self.input_norm(feats), pad)  # (B, T, C)
        h = self.transformer(g, pad)  # (B, T, d_model)
        return self.head(h)  # (B, T, out_dim)
