"""Frozen, validated configs of the sequence model and of one training run, plus presets.

One training run is one composed tree, every default written once::

    FitConfig(task, fold, seed, device, num_threads, out, smooth,
              data=DataConfig(store, features, window, stride, batch_size, jitter, video_norm),
              optim=OptimConfig(lr, weight_decay, epochs, warmup_epochs, patience, mtl_loss),
              model=ModelSpec(preset, dropout, use_tcn, use_transformer))

``ModelSpec`` names a preset and the switches a run may change; ``ModelSpec.build`` turns it
into the ``ModelConfig`` of the network once the feature width and output width are known (its
``dropout`` / ``use_*`` defaults are ``ModelConfig``'s). Every field name of the tree is unique,
so a flat dict (``--window 100``, or the flat FitConfig dicts that older runs wrote into
metrics.json and checkpoints) maps onto the tree with :func:`FitConfig.from_flat`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from featurestore.abaw import MTL, TASKS
from seqtrain.videonorm import VIDEO_NORMS, check_video_norm

__all__ = ["ModelConfig", "MODEL_PRESETS", "model_config", "ModelSpec", "DataConfig",
           "OptimConfig", "FitConfig", "FIT_TASKS", "MTL_LOSSES", "SMOOTH_CHOICES", "variant_name",
           "flat_defaults", "DEFAULT_STORE", "DEFAULT_RUNS", "VIDEO_NORMS"]

DEFAULT_STORE = "runs/demo/store.zarr"  # where `make demo` writes its store
DEFAULT_RUNS = "runs/demo/seqtrain/fit"  # runs land in <DEFAULT_RUNS>/<task>/fold<K>
FIT_TASKS = (*TASKS, MTL)  # what one run trains: one task, or the three heads at once
MTL_LOSSES = ("sum", "balanced")  # how an mtl run adds its three losses
SMOOTH_CHOICES = (5, 15, 31)  # window sizes whose smoothed validation score every run records


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

    @property
    def receptive_field(self) -> int:
        """Frames one TCN output depends on: ``1 + 2 * sum((k - 1) * d)`` (two convolutions per
        block, 'same' padding, so centred: half of it before the frame, half after)."""
        return 1 + 2 * sum((k - 1) * d for k, d in zip(self.kernel_sizes, self.dilations, strict=True))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(**d)


MODEL_PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},  # the dataclass defaults: 3 TCN blocks of 512, 4 layers x 8 heads, d_model 512
    # tiny: for a few thousand training frames (the demo: ~9k). Its TCN still sees 125 frames,
    # +-2 s at 30 fps: Aff-Wild2's valence / arousal raters trail the face by 1-2 s, so the frame
    # that explains a label lies up to ~60 frames back (dilations 1, 2 saw +-6 frames). Fixed
    # sinusoidal positions: training windows start at random offsets, so only relative order
    # carries information; the fixed table gives it with no parameters, where a learned table
    # must find it in so few windows (README: "Why the temporal stages added little").
    "tiny": dict(tcn_channels=(32,) * 5, kernel_sizes=(3,) * 5, dilations=(1, 2, 4, 8, 16),
                 d_model=32, heads=2, layers=1, ff_dim=64, head_hidden=32, positions="sinusoidal"),
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


def _check_nonneg(obj: object, *names: str) -> None:
    for name in names:
        if getattr(obj, name) < 0:
            raise ValueError(f"{type(obj).__name__}.{name} must be >= 0, got {getattr(obj, name)}")


_MODEL_DEFAULTS = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


@dataclass(frozen=True)
class ModelSpec:
    """The model of a run before the data fixes its widths: a preset plus the switches a run
    may change (they override the preset's values)."""

    preset: str = "paper"
    dropout: float = _MODEL_DEFAULTS["dropout"]
    use_tcn: bool = _MODEL_DEFAULTS["use_tcn"]
    use_transformer: bool = _MODEL_DEFAULTS["use_transformer"]

    def __post_init__(self) -> None:
        if self.preset not in MODEL_PRESETS:
            raise ValueError(f"ModelSpec.preset must be one of {sorted(MODEL_PRESETS)}, "
                             f"got {self.preset!r}")
        self.build(1, 1)  # ModelConfig validates the rest (dropout range, ...)

    @property
    def variant(self) -> str:
        return variant_name(self.use_tcn, self.use_transformer)

    def build(self, in_dim: int, out_dim: int, max_len: int = _MODEL_DEFAULTS["max_len"]
              ) -> ModelConfig:
        """The ModelConfig for features of width ``in_dim`` and ``out_dim`` outputs per frame."""
        return model_config(self.preset, in_dim=in_dim, out_dim=out_dim, max_len=max_len,
                            dropout=self.dropout, use_tcn=self.use_tcn,
                            use_transformer=self.use_transformer)


@dataclass(frozen=True)
class DataConfig:
    """What a run reads and how it cuts it into windows. ``features`` is one feature set or
    several joined by commas (``mae-ft,mae-pt``): their vectors are concatenated per frame.
    ``video_norm``: per-video normalisation of the (joined) features, one of
    :data:`seqtrain.videonorm.VIDEO_NORMS` (whole-video mean; applied wherever the model runs)."""

    store: str = DEFAULT_STORE
    features: str = "mae-ft"
    window: int = 300
    stride: int = 200
    batch_size: int = 32
    jitter: bool = True  # random offset of the training window starts each epoch
    video_norm: str = "none"  # "none" | "center" | "both" (seqtrain.videonorm)

    def __post_init__(self) -> None:
        _positive(self, "window", "stride", "batch_size")
        check_video_norm(self.video_norm)
        if self.stride > self.window:
            raise ValueError(f"DataConfig.stride={self.stride} must be <= window={self.window}")
        sets = self.feature_sets
        if not sets or any(not s.strip() or s != s.strip() for s in sets) or len(set(sets)) != len(sets):
            raise ValueError("DataConfig.features must be one feature set or distinct sets "
                             f"joined by commas, got {self.features!r}")

    @property
    def feature_sets(self) -> tuple[str, ...]:
        return tuple(self.features.split(","))


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup then cosine decay, early stopping after ``patience`` epochs;
    ``mtl_loss``: how an mtl run adds its tasks' losses (see :mod:`seqtrain.tasks`)."""

    lr: float = 3e-5
    weight_decay: float = 1e-5
    epochs: int = 20
    warmup_epochs: int = 1
    patience: int = 5
    mtl_loss: str = "sum"  # "sum" | "balanced" (weights from the gradient norms at init)

    def __post_init__(self) -> None:
        _positive(self, "epochs", "patience")
        if self.mtl_loss not in MTL_LOSSES:
            raise ValueError(f"OptimConfig.mtl_loss must be one of {MTL_LOSSES}, got {self.mtl_loss!r}")
        if not 0 <= self.warmup_epochs <= self.epochs:
            raise ValueError(f"OptimConfig.warmup_epochs must be in [0, epochs], got {self.warmup_epochs}")
        _check_nonneg(self, "lr", "weight_decay")


_SECTIONS = {"data": DataConfig, "optim": OptimConfig, "model": ModelSpec}


@dataclass(frozen=True)
class FitConfig:
    """One training run: one task (or ``mtl``: the three at once), one fold, its data, optimiser
    and model. Defaults follow the paper."""

    task: str
    fold: int = 0
    seed: int = 0
    device: str = "cpu"
    num_threads: int = 1
    out: str = ""  # "": <DEFAULT_RUNS>/<task>/fold<fold>
    smooth: int = 0  # centred moving average over this many frames at inference (0: off)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    model: ModelSpec = field(default_factory=ModelSpec)

    def __post_init__(self) -> None:
        if self.task not in FIT_TASKS:
            raise ValueError(f"FitConfig.task must be one of {FIT_TASKS}, got {self.task!r}")
        if self.fold not in range(5):
            raise ValueError(f"FitConfig.fold must be 0..4, got {self.fold!r}")
        _positive(self, "num_threads")
        if not isinstance(self.smooth, int) or self.smooth < 0 or self.smooth > 1 and not self.smooth % 2:
            raise ValueError(f"FitConfig.smooth must be 0 (off) or an odd number of frames, "
                             f"got {self.smooth!r}")
        for name, cls in _SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                raise ValueError(f"FitConfig.{name} must be a {cls.__name__}, "
                                 f"got {type(getattr(self, name)).__name__}")
        if not self.out:
            object.__setattr__(self, "out", f"{DEFAULT_RUNS}/{self.task}/fold{self.fold}")

    @property
    def variant(self) -> str:
        return self.model.variant

    def model_config(self, in_dim: int, out_dim: int) -> ModelConfig:
        """The network of this run for features of width ``in_dim``."""
        return self.model.build(in_dim, out_dim, max_len=max(_MODEL_DEFAULTS["max_len"],
                                                              self.data.window))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FitConfig:
        """From ``to_dict``'s nested dict, or from a flat one (what earlier versions wrote)."""
        d = dict(d)
        if d.get("model_overrides", None) == {}:  # written by earlier versions, always empty
            del d["model_overrides"]
        if any(isinstance(d.get(name), dict) for name in _SECTIONS):
            top = {k: v for k, v in d.items() if k not in _SECTIONS}
            try:
                parts = {name: cls_(**d.get(name, {})) for name, cls_ in _SECTIONS.items()}
                return cls(**top, **parts)
            except TypeError as err:  # an unknown or missing field
                raise ValueError(f"FitConfig: {err}") from None
        return cls.from_flat(**d)

    @classmethod
    def from_flat(cls, **flat: Any) -> FitConfig:
        """A config from flat field names (``window=100, use_tcn=False``) routed to their
        section; raises ValueError naming a field no section has."""
        top_names = {f.name for f in dataclasses.fields(cls)} - set(_SECTIONS)
        top, parts = {}, {name: {} for name in _SECTIONS}
        for key, value in flat.items():
            section = _FLAT_SECTION.get(key)
            if key in top_names:
                top[key] = value
            elif section is not None:
                parts[section][key] = value
            else:
                raise ValueError(f"FitConfig has no field {key!r}")
        return cls(**top, **{name: c(**parts[name]) for name, c in _SECTIONS.items()})


# flat name -> its section; names are unique over the tree (tests/test_config.py checks)
_FLAT_SECTION = {f.name: name for name, c in _SECTIONS.items() for f in dataclasses.fields(c)}


def flat_defaults() -> dict[str, Any]:
    """Flat field name -> default over the whole FitConfig tree (the CLI's defaults)."""
    out = {f.name: f.default for f in dataclasses.fields(FitConfig) if f.name not in _SECTIONS}
    for c in _SECTIONS.values():
        out.update({f.name: f.default for f in dataclasses.fields(c)})
    return out
