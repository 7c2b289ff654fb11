"""Frozen, validated configs of the sequence model and of one training run, plus presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from featurestore.abaw import TASKS

__all__ = ["ModelConfig", "MODEL_PRESETS", "model_config", "FitConfig", "variant_name",
           "DEFAULT_STORE", "DEFAULT_RUNS"]

DEFAULT_STORE = "runs/demo/store.zarr"  # where `make demo` writes its store
DEFAULT_RUNS = "runs/demo/seqtrain/fit"  # runs land in <DEFAULT_RUNS>/<task>/fold<K>


def _positive(obj: object, *names: str) -> None:
    for name in names:
        value = getattr(obj, name)
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{type(obj).__name__}.{name} must be a positive int, got {value!r}")


@dataclass(frozen=True)
class ModelConfig:
    """TCN -> Transformer -> MLP sizes. ``tcn_channels``, ``kernel_sizes``, ``dilations`` have one
    entry per temporal block."""

    in_dim: int = 768
    out_dim: int = 2
    tcn_channels: tuple[int, ...] = (512, 512, 512)
    kernel_sizes: tuple[int, ...] = (3, 3, 3)
    dilations: tuple[int, ...] = (1, 2, 4)
    d_model: int = 512
    heads: int = 8
    layers: int = 4
    ff_dim: int = 1024
    head_hidden: int = 256
    dropout: float = 0.3
    positions: str = "learned"  # "learned" | "sinusoidal"
    max_len: int = 1024  # longest window the position table serves
    use_tcn: bool = True
    use_transformer: bool = True

    def __post_init__(self) -> None:
        for name in ("tcn_channels", "kernel_sizes", "dilations"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _positive(self, "in_dim", "out_dim", "d_model", "heads", "layers", "ff_dim",
                  "head_hidden", "max_len")
        n = len(self.tcn_channels)
        if n == 0 or len(self.kernel_sizes) != n or len(self.dilations) != n:
            raise ValueError(
                f"ModelConfig.tcn_channels/kernel_sizes/dilations need the same non-zero length, "
                f"got {self.tcn_channels}, {self.kernel_sizes}, {self.dilations}")
        for name in ("tcn_channels", "kernel_sizes", "dilations"):
            if any(not isinstance(v, int) or v < 1 for v in getattr(self, name)):
                raise ValueError(f"ModelConfig.{name} must hold positive ints, got {getattr(self, name)}")
        if self.d_model % self.heads:
            raise ValueError(f"ModelConfig.d_model={self.d_model} must be divisible by heads={self.heads}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ModelConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.positions not in ("learned", "sinusoidal"):
            raise ValueError(f"ModelConfig.positions must be 'learned' or 'sinusoidal', got {self.positions!r}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**d)


MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # the dataclass defaults: 3 TCN blocks of 512, 4 layers x 8 heads, d_model 512
    "tiny": dict(tcn_channels=(32, 32), kernel_sizes=(3, 3), dilations=(1, 2), d_model=32,
                 heads=2, layers=1, ff_dim=64, head_hidden=32),
}


def model_config(preset: str, **overrides: Any) -> ModelConfig:
    """The named preset with ``overrides`` applied (e.g. in_dim, out_dim, use_tcn)."""
    if preset not in MODEL_PRESETS:
        raise ValueError(f"model preset must be one of {sorted(MODEL_PRESETS)}, got {preset!r}")
    return ModelConfig(**{**MODEL_PRESETS[preset], **overrides})


def variant_name(use_tcn: bool, use_transformer: bool) -> str:
    """"full" | "no-tcn" | "no-transformer" | "no-tcn+no-transformer"."""
    parts = [p for p, off in (("no-tcn", not use_tcn), ("no-transformer", not use_transformer)) if off]
    return "+".join(parts) or "full"


@dataclass(frozen=True)
class FitConfig:
    """One training run: one task, one fold, one feature set. Defaults follow the paper."""

    task: str
    fold: int = 0
    store: str = DEFAULT_STORE
    features: str = "mae-ft"
    out: str = ""  # "": <DEFAULT_RUNS>/<task>/fold<fold>
    preset: str = "paper"
    use_tcn: bool = True
    use_transformer: bool = True
    window: int = 300
    stride: int = 200
    lr: float = 3e-5
    weight_decay: float = 1e-5
    dropout: float = 0.3
    batch_size: int = 32
    epochs: int = 20
    warmup_epochs: int = 1
    patience: int = 5
    jitter: bool = True  # random offset of the training window starts each epoch
    seed: int = 0
    num_threads: int = 1
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"FitConfig.task must be one of {TASKS}, got {self.task!r}")
        if self.fold not in range(5):
            raise ValueError(f"FitConfig.fold must be 0..4, got {self.fold!r}")
        if self.preset not in MODEL_PRESETS:
            raise ValueError(f"FitConfig.preset must be one of {sorted(MODEL_PRESETS)}, got {self.preset!r}")
        _positive(self, "window", "stride", "batch_size", "epochs", "patience", "num_threads")
        if self.stride > self.window:
            raise ValueError(f"FitConfig.stride={self.stride} must be <= window={self.window}")
        if self.warmup_epochs < 0 or self.warmup_epochs >= self.epochs + 1:
            raise ValueError(f"FitConfig.warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        for name in ("lr", "weight_decay"):
            if getattr(self, name) < 0:
                raise ValueError(f"FitConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"FitConfig.dropout must be in [0, 1), got {self.dropout}")
        if not self.out:
            object.__setattr__(self, "out", f"{DEFAULT_RUNS}/{self.task}/fold{self.fold}")

    @property
    def variant(self) -> str:
        return variant_name(self.use_tcn, self.use_transformer)

    def model(self, in_dim: int, out_dim: int) -> ModelConfig:
        """The model config of this run for features of width ``in_dim``."""
        return model_config(self.preset, **{
            "max_len": max(1024, self.window), "in_dim": in_dim,
            "out_dim": out_dim, "dropout": self.dropout, "use_tcn": self.use_tcn,
            "use_transformer": self.use_transformer})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        d = dict(d)
        if d.get("model_overrides", None) == {}:  # written by earlier versions, always empty
            del d["model_overrides"]
        return cls(**d)
