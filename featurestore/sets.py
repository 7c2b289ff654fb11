"""Removing and renaming feature sets (single-process maintenance: no writer may be running).

Both first make the set invisible, then move or delete its objects, so an interrupted call never
leaves a set that looks complete but is not:

- remove: the set's ``dim`` attribute goes first (``feature_sets`` stops listing it, readers refuse
  it), then every object under ``features/<name>/``.
- rename: a local store renames the set's folder (atomic). Elsewhere (S3, ...) every object is
  copied to ``features/<new>/`` with the group's metadata (which holds ``dim``) copied last, then
  the old set is removed as above. A rename interrupted during the copy leaves the old set
  intact and the new name invisible: rerun it.

Open readers keep handles of the old name: reopen the store after either call.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from featurestore import layout as L
from featurestore.errors import FeatureValidationError, StoreError

log = logging.getLogger(__name__)

__all__ = ["remove_feature_set", "rename_feature_set"]


def _prefix(store, name: str) -> str:
    base = store._root.store_path.path
    return "/".join(p for p in (base, L.feature_group(name)) if p)


def _keys(store, prefix: str) -> list[str]:
    from zarr.core.sync import sync

    async def collect():
        return [k async for k in store._root.store.list_prefix(prefix + "/")]

    return sync(collect())


def _delete(store, prefix: str) -> None:
    from zarr.core.sync import sync

    zstore = store._root.store
    meta = f"{prefix}/zarr.json"
    for key in sorted(_keys(store, prefix), key=lambda k: k == meta):  # group metadata last
        sync(zstore.delete(key))
    root = getattr(zstore, "root", None)
    if isinstance(root, Path):  # a local store: drop the emptied folders too
        import shutil

        shutil.rmtree(root / prefix, ignore_errors=True)


def _hide(store, name: str) -> None:
    group = store._root[L.feature_group(name)]
    attrs = group.attrs.asdict()
    attrs.pop("dim", None)
    group.attrs.put(attrs)


def remove_feature_set(store, name: str) -> int:
    """Delete feature set ``name`` and all its data. Returns the number of objects deleted."""
    store.require_writable()
    store.set_arrays(name)  # UnknownKeyError naming the set and the known ones
    _hide(store, name)  # invisible from here on
    prefix = _prefix(store, name)
    count = len(_keys(store, prefix))
    _delete(store, prefix)
    store._sets.pop(name, None)
    store.__dict__.get("_chunk_sources", {}).pop(name, None)
    log.info("removed feature set %s (%d objects) from %s", name, count, store.path)
    return count


def rename_feature_set(store, old: str, new: str) -> None:
    """Rename feature set ``old`` to ``new`` (which must not exist)."""
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    store.require_writable()
    try:
        L.check_set_name(new)
    except ValueError as err:
        raise FeatureValidationError(str(err)) from None
    if new in store.feature_sets():
        raise StoreError(f"{store.path}: feature set {new!r} exists; remove it first")
    src, dst = _prefix(store, old), _prefix(store, new)
    zstore = store._root.store
    root = getattr(zstore, "root", None)
    store.set_arrays(old)  # UnknownKeyError naming the set and the known ones
    if isinstance(root, Path):
        if (root / dst).exists():
            import shutil

            shutil.rmtree(root / dst)  # leftovers of an unfinished set, never a complete one
        os.replace(root / src, root / dst)
    else:
        proto = default_buffer_prototype()
        meta = f"{src}/zarr.json"
        for key in sorted(_keys(store, src), key=lambda k: k == meta):  # group metadata last
            data = sync(zstore.get(key, proto))
            if data is not None:
                sync(zstore.set(dst + key[len(src):], data))
        _hide(store, old)  # the copy is complete: the old name disappears, then its objects
        _delete(store, src)
    for cache in (store._sets, store.__dict__.get("_chunk_sources", {})):
        cache.pop(old, None)
        cache.pop(new, None)
    log.info("renamed feature set %s to %s in %s", old, new, store.path)
