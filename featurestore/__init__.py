"""featurestore: a chunked Zarr store of per-frame face embeddings and Aff-Wild2 labels.

Public API: :func:`open` and :class:`FeatureStore`. Everything else is reached through them or
through the ``featurestore`` CLI. This package never imports torch.
"""

from featurestore.errors import (
    DataFormatError,
    FeatureStoreError,
    FeatureValidationError,
    StoreError,
)

__version__ = "0.1.0"

__all__ = [
    "open",
    "FeatureStore",
    "DataFormatError",
    "FeatureStoreError",
    "FeatureValidationError",
    "StoreError",
    "__version__",
]


def __getattr__(name):  # lazy: keep `import featurestore` cheap (no zarr import until needed)
    if name in ("open", "FeatureStore"):
        from featurestore import store

        return getattr(store, name)
    raise AttributeError(name)
