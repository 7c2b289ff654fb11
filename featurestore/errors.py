"""Errors raised by featurestore. Every message names what was wrong and where."""

from __future__ import annotations

import os


class FeatureStoreError(Exception):
    """Base class of every error this package raises on purpose."""


class DataFormatError(FeatureStoreError, ValueError):
    """A dataset file is malformed. ``str()`` reads ``path:line: message``."""

    def __init__(self, path: str | os.PathLike | None, line: int | None, message: str):
        self.path = None if path is None else str(path)
        self.line = line
        self.message = message
        where = self.path or "<unknown>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class StoreError(FeatureStoreError):
    """The store is missing, of an unknown layout version, or used in the wrong mode."""


class FeatureValidationError(FeatureStoreError, ValueError):
    """Features handed to a writer are unusable (NaN/inf, wrong width, wrong frame count)."""


class UnknownKeyError(StoreError, KeyError):
    """A feature set, video or task that the store does not have (or has not committed)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""
