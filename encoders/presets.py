"""Named MAE presets: the paper's ViT-Base and a tiny one that trains on 2 CPU cores.

A preset is a frozen :class:`MAEConfig`; derive variants with :func:`get_preset` overrides
(``get_preset("tiny", img_size=48)``) instead of mutating the table.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

READOUTS = ("mean", "tokens")


@dataclass(frozen=True)
class MAEConfig:
    """Architecture of a face Masked Autoencoder (encoder + lightweight decoder)."""

    name: str = "custom"
    img_size: int = 112  # Aff-Wild2 crops are 112x112
    patch_size: int = 16
    in_chans: int = 3
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    decoder_embed_dim: int = 512
    decoder_depth: int = 8
    decoder_num_heads: int = 16
    mlp_ratio: float = 4.0
    mask_ratio: float = 0.75
    norm_pix_loss: bool = False
    # How a frame's feature vector is read out of the encoder's normed patch tokens:
    # "mean": their mean, embed_dim wide (the paper's ViT-Base features);
    # "tokens": all of them side by side in patch order, num_patches * embed_dim wide (keeps
    # where on the face a change is; see the `tiny_tok` preset).
    readout: str = "mean"

    def __post_init__(self) -> None:
        positive = ("img_size", "patch_size", "in_chans", "embed_dim", "depth", "num_heads",
                    "decoder_embed_dim", "decoder_depth", "decoder_num_heads")
        for field in positive:
            value = getattr(self, field)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"MAEConfig.{field} must be a positive int, got {value!r}")
        if self.img_size % self.patch_size:
            raise ValueError(f"MAEConfig.img_size={self.img_size} is not a multiple of "
                             f"patch_size={self.patch_size}")
        for dim, heads in (("embed_dim", "num_heads"), ("decoder_embed_dim", "decoder_num_heads")):
            if getattr(self, dim) % getattr(self, heads):
                raise ValueError(f"MAEConfig.{dim}={getattr(self, dim)} is not divisible by "
                                 f"{heads}={getattr(self, heads)}")
            if getattr(self, dim) % 4:  # 2-D sin-cos position embeddings need dim % 4 == 0
                raise ValueError(f"MAEConfig.{dim}={getattr(self, dim)} must be a multiple of 4")
        if not 0.0 < self.mask_ratio < 1.0:
            raise ValueError(f"MAEConfig.mask_ratio must be in (0, 1), got {self.mask_ratio!r}")
        if self.mlp_ratio <= 0:
            raise ValueError(f"MAEConfig.mlp_ratio must be > 0, got {self.mlp_ratio!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"MAEConfig.readout must be one of {list(READOUTS)}, "
                             f"got {self.readout!r}")

    @property
    def num_patches(self) -> int:
        return (self.img_size // self.patch_size) ** 2

    @property
    def feature_dim(self) -> int:
        """Width of one frame's feature vector (see ``readout``)."""
        return self.embed_dim * (self.num_patches if self.readout == "tokens" else 1)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MAEConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"MAEConfig: unknown field(s) {unknown}")
        return cls(**data)


PRESETS: dict[str, MAEConfig] = {
    # The paper: ViT-Base/16 encoder, 512-wide 8-block decoder, 75% masking.
    "vit_base": MAEConfig(name="vit_base", embed_dim=768, depth=12, num_heads=12,
                          decoder_embed_dim=512, decoder_depth=8, decoder_num_heads=16),
    # Demo and tests: a few minutes of pretraining on 2 CPU cores.
    "tiny": MAEConfig(name="tiny", embed_dim=128, depth=4, num_heads=4,
                      decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=4),
    # `tiny` with 8-pixel patches (issue 12 item 9; not the demo's): at the demo's 64 px input
    # that is 64 patches, 16 visible at 75% masking, where 16-pixel patches leave 4 of 16 visible
    # and the MAE can only learn the coarse layout (reconstructions nearly flat grey). Measured on
    # the demo's data, 15 epochs: pretraining loss 0.364 (tiny) -> 0.231 (tiny_p8; pasting the
    # visible pixels' colour everywhere scores 0.75 / 0.66), faces visible in the reconstructions;
    # but its frozen features are no better (linear probe on fold 0, VA / Expr / AU: tiny 0.005 /
    # 0.122 / 0.274, tiny_p8 -0.071 / 0.096 / 0.293, a never-trained tiny 0.011 / 0.135 / 0.296),
    # it fine-tunes worse (Expr macro F1 0.119 vs 0.151), and a training step costs ~2.3x, a
    # forward ~3.4x that of `tiny` (README, "Pretraining without fine-tuning").
    "tiny_p8": MAEConfig(name="tiny_p8", patch_size=8, embed_dim=128, depth=4, num_heads=4,
                         decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=4),
    # `tiny` read out as all 16 patch tokens side by side (2048 features at 64 px) instead of
    # their mean (issue 12 item 9). A tiny MAE trained for minutes keeps its tokens local (what
    # a patch shows, not the whole face), so their mean adds the mouth's patch to the brow's and
    # the background's: on the demo's fold 0 a linear probe reads Expr / AU 0.118 / 0.282 from
    # the mean of the pretrained tokens and 0.205 / 0.369 from all of them. Not the demo's: the
    # chain with it loses VA on every fold and fit-all costs 2.7x (README, "Pretraining without
    # fine-tuning"; bench/measure_readouts.py).
    "tiny_tok": MAEConfig(name="tiny_tok", embed_dim=128, depth=4, num_heads=4,
                          decoder_embed_dim=96, decoder_depth=2, decoder_num_heads=4,
                          readout="tokens"),
}


# Presets trained with the quick CPU schedules (TINY_PRETRAIN_DEFAULTS, TINY_FINETUNE_DEFAULTS)
# rather than the paper's (batch 1024, 40 warm-up epochs: a 15-epoch tiny run never leaves warm-up).
TINY_PRESETS = frozenset({"tiny", "tiny_p8", "tiny_tok"})


def get_preset(name: str, **overrides: Any) -> MAEConfig:
    """The preset ``name`` with ``overrides`` applied (e.g. ``img_size=48``)."""
    if name not in PRESETS:
        raise ValueError(f"preset={name!r} is unknown; choose one of {sorted(PRESETS)}")
    return dataclasses.replace(PRESETS[name], **overrides)
