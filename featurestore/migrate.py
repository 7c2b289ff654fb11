"""``featurestore migrate OLD NEW``: a checksummed copy of a store of an older layout.

Layout version 2 ends every array's codec chain with ``crc32c`` (featurestore.layout); a store of
layout version 1 has no checksums and is refused by ``featurestore.open`` with the command that
migrates it. The migration never writes the old store: it reads it read-only and writes a new
store at NEW (which must not exist), array by array with the same shapes, chunks, codecs (plus
crc32c), fill values, dimension names and attributes, copying only the chunks that exist (a chunk
lost from the old store stays missing, so ``verify`` still reports it). Every old chunk is decoded
on the way (a damaged one stops the migration, naming it), the new store is verified before it
is marked complete, and a local NEW is built in a hidden sibling folder and renamed into place:
an interrupted or failed migration leaves no store at NEW. Feature sets get a new ``uid``, so
local chunk caches of the old stored bytes are never reused.
"""

from __future__ import annotations

import logging
import os
import shutil
import uuid
from itertools import groupby
from pathlib import Path

import zarr
from zarr.core.sync import sync

from featurestore import layout as L
from featurestore.chunkread import read
from featurestore.errors import StoreError

__all__ = ["migrate_store"]

log = logging.getLogger(__name__)
RUN_CHUNKS = 16  # consecutive chunks copied per zarr call: bounds memory


def _chunk_coords(arr: zarr.Array) -> list[tuple[int, ...]]:
    """Grid coordinates of the chunks of ``arr`` that exist on storage, sorted."""
    prefix = f"{arr.path}/" if arr.path else ""

    async def keys():
        return [k async for k in arr.store_path.store.list_prefix(prefix)]

    out = []
    for key in sync(keys()):
        rest = key[len(prefix):]
        if rest == "zarr.json" or "/" in rest and not rest.startswith("c/"):
            continue
        parts = rest.split("/")
        if parts[0] == "c" and all(p.isdigit() for p in parts[1:]) and len(parts) == arr.ndim + 1:
            out.append(tuple(int(p) for p in parts[1:]))
        elif rest == "c" and arr.ndim == 0:
            out.append(())
    return sorted(out)


def _runs(coords: list[tuple[int, ...]]):
    """Runs of chunks consecutive along axis 0 with equal other coordinates (<= RUN_CHUNKS)."""
    for tail, group in groupby(sorted(coords, key=lambda c: (c[1:], c[0])), key=lambda c: c[1:]):
        firsts = [c[0] for c in group]
        start = prev = firsts[0]
        for f in firsts[1:]:
            if f != prev + 1 or f - start >= RUN_CHUNKS:
                yield start, prev + 1, tail
                start = f
            prev = f
        yield start, prev + 1, tail


def _copy_array(src: zarr.Array, parent: zarr.Group, name: str, where: str) -> int:
    """Copy ``src`` into ``parent[name]`` with crc32c appended to its codecs; returns chunks."""
    from zarr.codecs import Crc32cCodec

    codecs = [c for c in (src.compressors or ()) if not isinstance(c, Crc32cCodec)]
    dst = parent.create_array(
        name, shape=src.shape, dtype=src.dtype, chunks=src.chunks, fill_value=src.fill_value,
        filters=src.filters or None, serializer=src.serializer,
        compressors=(*codecs, L.checksum_codec()), dimension_names=src.metadata.dimension_names,
        attributes=src.attrs.asdict(), config={"write_empty_chunks": True})
    coords = _chunk_coords(src)
    C = src.chunks[0]
    for a, b, tail in _runs(coords):
        lo, hi = a * C, min(b * C, src.shape[0])
        if not tail or all(t == 0 for t in tail) and src.chunks[1:] == src.shape[1:]:
            dst[lo:hi] = read(src, lo, hi, where)  # a damaged chunk: StoreError naming it
        else:  # chunked along another axis too (not in this layout): chunk by chunk
            for c in range(a, b):
                sel = tuple(slice(k * n, min((k + 1) * n, s))
                            for k, n, s in zip((c, *tail), src.chunks, src.shape, strict=True))
                dst[sel] = src[sel]
    return len(coords)


def _copy_group(src: zarr.Group, dst: zarr.Group, where: str) -> int:
    chunks = 0
    for name, member in src.members():
        if isinstance(member, zarr.Array):
            chunks += _copy_array(member, dst, name, where)
            continue
        attrs = member.attrs.asdict()
        if member.path.startswith(f"{L.FEATURES}/") and "uid" in attrs:
            attrs["uid"] = uuid.uuid4().hex  # new stored bytes: never reuse cached old ones
        sub = dst.create_group(name)
        chunks += _copy_group(member, sub, where)
        sub.update_attributes(attrs)  # a set's attributes last, as when it is created
    return chunks


def _check_source(attrs: dict, where: str) -> int:
    version = attrs.get(L.ATTR_VERSION)
    if version is None:
        raise StoreError(f"{where}: not a complete feature store (no {L.ATTR_VERSION})")
    if int(version) >= L.LAYOUT_VERSION:
        raise StoreError(f"{where}: store is already layout_version {version}; nothing to migrate")
    state = (attrs.get(L.ATTR_INGEST) or {}).get("state", "complete")
    if state != "complete":
        raise StoreError(f"{where}: an ingest into this store did not finish (state {state!r}); "
                         "rerun it with the featurestore version that made the store, then migrate")
    return int(version)


def _write(src_root: zarr.Group, src: str, dst: str, storage_options: dict | None) -> dict:
    import featurestore
    from featurestore.verify import verify

    kwargs = {"storage_options": storage_options} if storage_options and "://" in dst else {}
    root = zarr.open_group(store=dst, mode="w", **kwargs)
    chunks = _copy_group(src_root, root, src)
    attrs = src_root.attrs.asdict()
    old = attrs.pop(L.ATTR_VERSION)
    root.update_attributes(attrs)
    root.attrs[L.ATTR_VERSION] = L.LAYOUT_VERSION  # last: complete from here on
    report = verify(featurestore.open(dst, storage_options=storage_options), progress=False)
    if not report["ok"]:
        problems = report["catalog"]["problems"] + [
            p for s in report["sets"].values() for p in s["problems"]]
        raise StoreError(f"{src}: the migrated copy does not verify ({len(problems)} problems, "
                         f"first: {problems[0]}); the old store is damaged: run featurestore "
                         f"verify on it with the featurestore version that made it")
    return {"from_layout_version": int(old), "layout_version": L.LAYOUT_VERSION,
            "chunks": chunks, "videos": report["videos"], "sets": sorted(report["sets"])}


def _remove(dst: str, storage_options: dict | None) -> None:
    """Delete a partial copy at ``dst`` (which did not exist before the migration)."""
    import fsspec

    fs, path = fsspec.url_to_fs(dst, **(storage_options or {}))
    try:
        fs.rm(path, recursive=True)
    except FileNotFoundError:
        pass


def migrate_store(src: str | os.PathLike, dst: str | os.PathLike, *,
                  storage_options: dict | None = None) -> dict:
    """Write a layout-version-2 copy of the older store ``src`` at ``dst`` (must not exist).

    ``src`` is never written. Returns a summary {"store", "from", "from_layout_version",
    "layout_version", "chunks", "videos", "sets"}.
    """
    from featurestore.outputs import check_output
    from featurestore.remote import open_root

    src, dst = os.fspath(src), os.fspath(dst)
    check_output(dst, {"OLD": src}, what="NEW")
    src_root, _ = open_root(src, "r", storage_options, None, None)
    _check_source(src_root.attrs.asdict(), src)
    if "://" in dst:
        kwargs = {"storage_options": storage_options} if storage_options else {}
        try:
            zarr.open_group(store=dst, mode="r", **kwargs)
            exists = True
        except Exception:  # noqa: BLE001  (not found, in the ways zarr and fsspec say it)
            exists = False
        if exists:
            raise StoreError(f"{dst}: exists; migrate into a new location")
        try:
            summary = _write(src_root, src, dst, storage_options)
        except BaseException:
            _remove(dst, storage_options)
            raise
        return {"store": dst, "from": src, **summary}
    target = Path(dst)
    if target.exists() or target.is_symlink():
        raise StoreError(f"{target}: exists; migrate into a new folder")
    if not target.parent.is_dir():
        raise StoreError(f"{target.parent}: no such folder")
    tmp = target.with_name(f".{target.name}.migrate-{uuid.uuid4().hex[:8]}")
    try:
        summary = _write(src_root, src, str(tmp), None)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    log.info("migrated %s (layout_version %d) to %s", src, summary["from_layout_version"], dst)
    return {"store": dst, "from": src, **summary}
