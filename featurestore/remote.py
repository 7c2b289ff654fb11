"""Opening stores anywhere fsspec reaches: local folders, ``s3://`` (any S3-compatible server
through s3fs), ``http(s)://`` (read-only, a store folder served by a plain web server),
``memory://``; and turning the ways remote storage fails into one clear error.

Credentials and endpoints come from ``storage_options`` or the usual environment variables
(for s3fs: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_ENDPOINT_URL), so the CLI and the Ray
jobs work on remote stores without extra options.
"""

from __future__ import annotations

import logging
import os

import zarr

from featurestore.errors import StoreError

log = logging.getLogger(__name__)

ENV_CACHE = "FEATURESTORE_CACHE"
ENV_CACHE_BYTES = "FEATURESTORE_CACHE_BYTES"
READ_ONLY_SCHEMES = ("http", "https")


def scheme(where: str) -> str:
    """``s3`` for ``s3://b/x``, ``file`` for local paths and ``file://`` URLs."""
    return where.split("://", 1)[0].lower() if "://" in where else "file"


def is_remote(where: str) -> bool:
    return scheme(where) not in ("file", "memory")


def describe(err: BaseException) -> str:
    """One line for the ways fsspec / s3fs / aiohttp report a remote failure."""
    name = type(err).__name__
    text = str(err).splitlines()[0] if str(err) else name
    if isinstance(err, PermissionError) or "AccessDenied" in text or "InvalidAccessKeyId" in text \
            or "SignatureDoesNotMatch" in text or "Forbidden" in text:
        return f"the server refused the credentials ({text})"
    if "connect" in text.lower() or "Connect" in name or isinstance(err, ConnectionError | OSError):
        return f"cannot reach the server ({name}: {text})"
    return f"{name}: {text}"


def _not_found(err: BaseException) -> bool:
    return (isinstance(err, FileNotFoundError | KeyError)
            or type(err).__name__.endswith("NotFoundError"))


def open_root(where: str, mode: str, storage_options: dict | None,
              local_cache: str | os.PathLike | None, local_cache_bytes: int | None):
    """(zarr root group, DiskCache or None) of the store at ``where``; StoreError if unusable."""
    if mode != "r" and scheme(where) in READ_ONLY_SCHEMES:
        raise StoreError(f"{where}: stores served over {scheme(where)} are read-only; open with mode='r'")
    kwargs = {"storage_options": storage_options} if storage_options and "://" in where else {}
    try:
        root = zarr.open_group(store=where, mode="r" if mode == "r" else "r+", **kwargs)
    except StoreError:
        raise
    except Exception as err:  # zarr, fsspec, s3fs and aiohttp each have their own types
        if _not_found(err) or isinstance(err, ValueError):
            raise StoreError(f"{where}: no feature store here ({err})") from err
        raise StoreError(f"{where}: {describe(err)}") from err
    return root, _disk_cache(where, local_cache, local_cache_bytes)


def _disk_cache(where: str, folder, max_bytes):
    from featurestore.chunks import DEFAULT_DISK_CACHE_BYTES, DiskCache

    folder = folder if folder is not None else os.environ.get(ENV_CACHE) or None
    if folder is None:
        return None
    if max_bytes is None:
        env = os.environ.get(ENV_CACHE_BYTES)
        try:
            max_bytes = int(float(env)) if env else DEFAULT_DISK_CACHE_BYTES
        except ValueError:
            raise StoreError(f"{ENV_CACHE_BYTES}={env!r} is not a number of bytes") from None
    if not is_remote(where):
        log.info("%s is local: the local chunk cache is not used", where)
        return None
    try:
        return DiskCache(folder, max_bytes)
    except (OSError, ValueError) as err:
        raise StoreError(f"local cache {folder}: {err}") from None
