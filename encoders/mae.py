"""The face Masked Autoencoder (He et al., MAE) on timm ViT pieces.

Pure tensor functions (:func:`patchify`, :func:`unpatchify`, :func:`random_masking`,
:func:`masked_mse`) do the work; :class:`MAEEncoder`, :class:`MAEDecoder` and
:class:`MaskedAutoencoder` are thin modules over them. :class:`ExprClassifier` is the fine-tuning
model: the same encoder with the decoder removed and a fully connected head.
"""

from __future__ import annotations

import torch
from timm.layers import PatchEmbed
from timm.models.vision_transformer import Block
from torch import nn

from encoders.pos_embed import sincos_2d
from encoders.presets import MAEConfig


def patchify(imgs: torch.Tensor, p: int) -> torch.Tensor:
    """imgs: (N, C, H, W) -> (N, L, p*p*C), L = (H/p)*(W/p), row-major patches, (p, p, C) inside."""
    n, c, h, w = imgs.shape
    if h % p or w % p:
        raise ValueError(f"image size {h}x{w} is not a multiple of patch size {p}")
    x = imgs.reshape(n, c, h // p, p, w // p, p)  # (N, C, gh, p, gw, p)
    x = torch.einsum("nchpwq->nhwpqc", x)  # (N, gh, gw, p, p, C)
    return x.reshape(n, (h // p) * (w // p), p * p * c)  # (N, L, p*p*C)


def unpatchify(x: torch.Tensor, p: int, channels: int, grid_h: int | None = None) -> torch.Tensor:
    """x: (N, L, p*p*C) -> (N, C, H, W); the grid is square unless ``grid_h`` is given."""
    n, length, d = x.shape
    if d != p * p * channels:
        raise ValueError(f"patch width {d} != p*p*channels = {p * p * channels}")
    gh = grid_h if grid_h is not None else int(round(length**0.5))
    if length % gh:
        raise ValueError(f"{length} patches do not form a grid with {gh} rows")
    gw = length // gh
    x = x.reshape(n, gh, gw, p, p, channels)  # (N, gh, gw, p, p, C)
    x = torch.einsum("nhwpqc->nchpwq", x)  # (N, C, gh, p, gw, p)
    return x.reshape(n, channels, gh * p, gw * p)  # (N, C, H, W)


def random_masking(
    x: torch.Tensor, ratio: float, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep a random ``int(L * (1 - ratio))`` tokens per sample (argsort of uniform noise).

    x: (N, L, D) -> x_kept (N, K, D), mask (N, L) with 0 keep / 1 remove, ids_restore (N, L).
    """
    n, length, d = x.shape
    keep = int(length * (1 - ratio))
    noise = torch.rand(n, length, generator=generator, device=generator.device
                       if generator is not None else x.device).to(x.device)  # (N, L)
    ids_shuffle = torch.argsort(noise, dim=1)  # (N, L) ascending: the lowest noise is kept
    ids_restore = torch.argsort(ids_shuffle, dim=1)  # (N, L)
    ids_keep = ids_shuffle[:, :keep]  # (N, K)
    x_kept = torch.gather(x, 1, ids_keep.unsqueeze(-1).expand(-1, -1, d))  # (N, K, D)
    mask = torch.ones(n, length, device=x.device)  # (N, L)
    mask[:, :keep] = 0
    mask = torch.gather(mask, 1, ids_restore)  # (N, L) back in patch order
    return x_kept, mask, ids_restore


def masked_mse(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor,
               norm_pix: bool = False) -> torch.Tensor:
    """Mean squared pixel error over the removed patches only.

    pred, target: (N, L, P) patch pixels; mask: (N, L) 1 = removed. With ``norm_pix`` each target
    patch is normalised by its own mean and variance first.
    """
    if norm_pix:
        mean = target.mean(dim=-1, keepdim=True)  # (N, L, 1)
        var = target.var(dim=-1, keepdim=True)  # (N, L, 1)
        target = (target - mean) / (var + 1e-6) ** 0.5  # (N, L, P)
    per_patch = ((pred.float() - target.float()) ** 2).mean(dim=-1)  # (N, L)
    return (per_patch * mask).sum() / mask.sum().clamp(min=1)


def _blocks(dim: int, depth: int, heads: int, mlp_ratio: float) -> nn.Sequential:
    return nn.Sequential(*[Block(dim, heads, mlp_ratio=mlp_ratio, qkv_bias=True)
                           for _ in range(depth)])


class MAEEncoder(nn.Module):
    """ViT encoder: PatchEmbed + cls token + fixed sin-cos positions + Blocks + LayerNorm."""

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        self.cfg = cfg
        self.patch_embed = PatchEmbed(img_size=cfg.img_size, patch_size=cfg.patch_size,
                                      in_chans=cfg.in_chans, embed_dim=cfg.embed_dim)
        grid = cfg.img_size // cfg.patch_size
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.register_buffer("pos_embed", sincos_2d(cfg.embed_dim, grid, grid, cls_token=True)
                             .unsqueeze(0), persistent=False)  # (1, 1+L, D)
        self.blocks = _blocks(cfg.embed_dim, cfg.depth, cfg.num_heads, cfg.mlp_ratio)
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=1e-6)
        nn.init.normal_(self.cls_token, std=0.02)

    def forward(self, imgs: torch.Tensor, mask_ratio: float = 0.0,
                generator: torch.Generator | None = None):
        """imgs: (N, C, H, W) -> tokens (N, 1+K, D), mask (N, L), ids_restore (N, L).

        ``mask_ratio=0`` keeps every patch in its original order (K = L).
        """
        x = self.patch_embed(imgs) + self.pos_embed[:, 1:]  # (N, L, D)
        if mask_ratio > 0:
            x, mask, ids_restore = random_masking(x, mask_ratio, generator)  # (N, K, D)
        else:
            n, length = x.shape[:2]
            mask = torch.zeros(n, length, device=x.device)  # (N, L)
            ids_restore = torch.arange(length, device=x.device).expand(n, -1)  # (N, L)
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(x.shape[0], -1, -1)  # (N, 1, D)
        x = self.blocks(torch.cat([cls, x], dim=1))  # (N, 1+K, D)
        return self.norm(x), mask, ids_restore

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs: (N, C, H, W) -> (N, F), no masking: the normed patch tokens read out as
        ``cfg.readout`` says (F = ``cfg.feature_dim``: D for their mean, L*D for all of them)."""
        tokens, _, _ = self(imgs, 0.0)  # (N, 1+L, D)
        if self.cfg.readout == "tokens":
            return tokens[:, 1:].flatten(1)  # (N, L*D), patch order
        return tokens[:, 1:].mean(dim=1)  # (N, D)


class MAEDecoder(nn.Module):
    """Lightweight ViT decoder: tokens (N, 1+K, D) + ids_restore -> pixels (N, L, p*p*C)."""

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        grid = cfg.img_size // cfg.patch_size
        self.embed = nn.Linear(cfg.embed_dim, cfg.decoder_embed_dim)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.decoder_embed_dim))
        self.register_buffer("pos_embed", sincos_2d(cfg.decoder_embed_dim, grid, grid,
                                                    cls_token=True).unsqueeze(0),
                             persistent=False)  # (1, 1+L, Dd)
        self.blocks = _blocks(cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads,
                              cfg.mlp_ratio)
        self.norm = nn.LayerNorm(cfg.decoder_embed_dim, eps=1e-6)
        self.pred = nn.Linear(cfg.decoder_embed_dim, cfg.patch_size**2 * cfg.in_chans)
        nn.init.normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        x = self.embed(tokens)  # (N, 1+K, Dd)
        n, length = ids_restore.shape
        fill = self.mask_token.expand(n, length + 1 - x.shape[1], -1)  # (N, L-K, Dd)
        patches = torch.cat([x[:, 1:], fill], dim=1)  # (N, L, Dd) shuffled order
        patches = torch.gather(patches, 1, ids_restore.unsqueeze(-1)
                               .expand(-1, -1, x.shape[2]))  # (N, L, Dd) patch order
        x = torch.cat([x[:, :1], patches], dim=1) + self.pos_embed  # (N, 1+L, Dd)
        x = self.norm(self.blocks(x))  # (N, 1+L, Dd)
        return self.pred(x)[:, 1:]  # (N, L, p*p*C)


class MaskedAutoencoder(nn.Module):
    """MAE: encode the visible 25% of patches, decode all, L2 loss on the removed ones."""

    def __init__(self, cfg: MAEConfig):
        super().__init__()
        self.cfg = cfg
        self.encoder = MAEEncoder(cfg)
        self.decoder = MAEDecoder(cfg)
        self.apply(_init_weights)

    def forward_encoder(self, imgs: torch.Tensor, mask_ratio: float,
                        generator: torch.Generator | None = None):
        """imgs: (N, C, H, W) -> latent (N, 1+K, D), mask (N, L), ids_restore (N, L)."""
        return self.encoder(imgs, mask_ratio, generator)

    def forward_decoder(self, latent: torch.Tensor, ids_restore: torch.Tensor) -> torch.Tensor:
        """latent: (N, 1+K, D), ids_restore: (N, L) -> pred (N, L, p*p*C)."""
        return self.decoder(latent, ids_restore)

    def forward_loss(self, imgs: torch.Tensor, pred: torch.Tensor,
                     mask: torch.Tensor) -> torch.Tensor:
        """imgs: (N, C, H, W), pred: (N, L, p*p*C), mask: (N, L) -> scalar loss."""
        target = patchify(imgs, self.cfg.patch_size)  # (N, L, p*p*C)
        return masked_mse(pred, target, mask, self.cfg.norm_pix_loss)

    def forward(self, imgs: torch.Tensor, mask_ratio: float | None = None,
                generator: torch.Generator | None = None):
        """imgs: (N, C, H, W) -> (loss, pred (N, L, p*p*C), mask (N, L))."""
        ratio = self.cfg.mask_ratio if mask_ratio is None else mask_ratio
        latent, mask, ids_restore = self.forward_encoder(imgs, ratio, generator)
        pred = self.forward_decoder(latent, ids_restore)
        return self.forward_loss(imgs, pred, mask), pred, mask

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs: (N, C, H, W) -> (N, F) features of the unmasked image (F = cfg.feature_dim)."""
        return self.encoder.embed(imgs)


class ExprClassifier(nn.Module):
    """Fine-tuning model: MAE encoder (decoder removed) + dropout + fully connected head."""

    def __init__(self, cfg: MAEConfig, num_classes: int = 8, dropout: float = 0.0):
        super().__init__()
        self.cfg = cfg
        self.encoder = MAEEncoder(cfg)
        self.head = nn.Sequential(nn.Dropout(dropout) if dropout > 0 else nn.Identity(),
                                  nn.Linear(cfg.feature_dim, num_classes))
        self.apply(_init_weights)

    def embed(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs: (N, C, H, W) -> (N, F), F = ``cfg.feature_dim``."""
        return self.encoder.embed(imgs)

    def forward(self, imgs: torch.Tensor) -> torch.Tensor:
        """imgs: (N, C, H, W) -> logits (N, num_classes)."""
        return self.head(self.embed(imgs))


def _init_weights(m: nn.Module) -> None:
    if isinstance(m, nn.Linear):
        nn.init.xavier_uniform_(m.weight)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.LayerNorm):
        nn.init.ones_(m.weight)
        nn.init.zeros_(m.bias)
