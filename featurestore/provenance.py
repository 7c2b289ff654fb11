"""Provenance is a contract: one feature set holds the output of one encoder, one way.

Reopening an existing set to write more videos (an interrupted extraction, new videos after a
re-ingest) must use the same width, dtype and fill policy and, when the writer states where its
features come from, the same origin: checkpoint content hash, preset, input size, stage and
pooling. Anything else would mix two encoders in one set; it is refused, naming each difference,
and the user asks for a new set by giving it another name. The checkpoint *path*, creation
time and code version are not compared (moving a checkpoint does not change its features).
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib import metadata
from typing import Any

from featurestore.errors import FeatureValidationError

__all__ = ["ORIGIN_KEYS", "check_same_origin", "code_version"]

ORIGIN_KEYS = ("checkpoint_sha256", "preset", "input_size", "stage", "pooling")


def code_version() -> str:
    """The installed affstore version a feature set records ("unknown" from a plain checkout)."""
    try:
        return metadata.version("affstore")
    except metadata.PackageNotFoundError:
        return "unknown"


def check_same_origin(name: str, attrs: Mapping[str, Any], dim: int, dtype: str, fill: str,
                      provenance: Mapping[str, Any] | None) -> None:
    """Raise :class:`FeatureValidationError` if writing (dim, dtype, fill, provenance) into the
    existing set ``name`` with attributes ``attrs`` would mix features of different origins."""
    diffs = [f"{key}={attrs.get(key)!r} (asked {want!r})" for key, want in
             (("dim", int(dim)), ("dtype", dtype), ("fill", fill)) if attrs.get(key) != want]
    if provenance is not None:
        have = attrs.get("provenance") or {}
        diffs += [f"{key}={have.get(key)!r} (asked {provenance.get(key)!r})" for key in ORIGIN_KEYS
                  if have.get(key) != provenance.get(key)]
    if diffs:
        raise FeatureValidationError(
            f"feature set {name!r} exists with other settings: {', '.join(diffs)}; "
            f"refusing to mix them in one set: write to a new set name (or delete this one)")
