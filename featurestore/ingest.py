"""Aff-Wild2 dataset -> store catalog, frame presence and labels (no features).

A new local store is built in a temporary sibling folder and renamed into place; any store gets its
``layout_version`` attribute last, so an interrupted build never opens as complete. A rerun (new
annotations, new videos) marks the store ``ingest.state = "writing"``, rewrites labels and splits,
appends new videos at the end (existing videos keep their offsets), and marks it complete last.
Run ingest as a single process while no feature writer is running.
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import zarr
from tqdm import tqdm

from featurestore import layout as L
from featurestore.chunkread import read
from featurestore.errors import StoreError
from featurestore.reingest import check_or_invalidate
from featurestore.store import check_layout_version

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class VideoRecord:
    """What the store keeps about one video.

    present: (num_frames,) bool. labels: task -> (values (m, ...), valid (m,)) with m <= num_frames.
    splits: task -> "train" | "val" | "test" (tasks absent or None: not in that task).
    """

    name: str
    source: str
    num_frames: int
    present: np.ndarray
    splits: Mapping[str, str | None] = field(default_factory=dict)
    labels: Mapping[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"name={self.name!r} must be a non-empty string")
        L.check_video_name(self.name)
        if int(self.num_frames) < 0:
            raise ValueError(f"{self.name}: num_frames={self.num_frames} is negative")
        if np.shape(self.present) != (int(self.num_frames),):
            raise ValueError(f"{self.name}: present has shape {np.shape(self.present)}, "
                             f"expected ({self.num_frames},)")
        for task, split in self.splits.items():
            if task not in L.TASKS:
                raise ValueError(f"{self.name}: splits has unknown task {task!r}")
            L.split_code(split)
        for task, (values, valid) in self.labels.items():
            if task not in L.TASKS:
                raise ValueError(f"{self.name}: labels has unknown task {task!r}")
            if len(values) != len(valid) or len(values) > int(self.num_frames):
                raise ValueError(f"{self.name}/{task}: {len(values)} label rows, {len(valid)} valid "
                                 f"flags for {self.num_frames} frames")


def records_from_affwild2(data) -> list[VideoRecord]:
    """VideoRecords from a :class:`featurestore.affwild2.AffWild2` (videos sorted by name)."""
    out = []
    for name, video in data.videos.items():
        splits = {t: data.split_of(name, t) for t in L.TASKS}
        labels = {t: (tl.values, tl.valid) for t, tl in video.labels.items()}
        out.append(VideoRecord(name, video.source, int(video.num_frames),
                               np.asarray(video.present(), dtype=bool), splits, labels))
    return out


def ingest_affwild2(root: str | os.PathLike, store_path: str | os.PathLike,
                    progress: bool = True, accept_partial: bool = False,
                    invalidate_changed: bool = False) -> dict:
    """Read the Aff-Wild2 tree at ``root`` and create or update the store at ``store_path``.

    A tree with a task or split without labels, or with folders the reader cannot use, is
    refused before anything is written unless ``accept_partial`` (featurestore.ingest_checks).
    The summary's ``found`` holds what the tree holds."""
    from featurestore.affwild2 import read_affwild2
    from featurestore.ingest_checks import check_dataset
    from featurestore.outputs import check_output

    check_output(store_path, {"--affwild2": root}, what="store")
    ds = read_affwild2(root)
    counts = check_dataset(ds, accept_partial)
    summary = create_store(store_path, records_from_affwild2(ds), progress=progress,
                           invalidate_changed=invalidate_changed)
    if (Path(root) / "faces").is_dir():  # face records of `affvideo faces`: arrays next to present
        from featurestore.video.store_faces import write_face_arrays

        summary["face_records"] = write_face_arrays(store_path, Path(root) / "faces")
    return {**summary, "found": counts}


def create_store(path: str | os.PathLike, catalog: Sequence[VideoRecord], *,
                 progress: bool = False, invalidate_changed: bool = False) -> dict:
    """Create a store from ``catalog`` or update an existing one. Returns a summary dict.

    An update that would change the face mask of a video with committed features is refused
    unless ``invalidate_changed`` (then those features are uncommitted: featurestore.reingest).
    """
    names = [r.name for r in catalog]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise StoreError(f"catalog names videos more than once: {dup[:5]}")
    where = os.fspath(path)
    if _is_store(where):
        return _update(where, list(catalog), progress, invalidate_changed)
    if "://" in where:
        return _write_new(where, list(catalog), progress)
    target = Path(where)
    if target.exists():
        raise StoreError(f"{target}: exists and is not a complete feature store; delete it first")
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        summary = _write_new(str(tmp), list(catalog), progress)
        os.replace(tmp, target)
        summary["store"] = where
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return summary


def _is_store(where: str) -> bool:
    try:
        root = zarr.open_group(store=where, mode="r")
    except Exception:  # not found, in any of the ways zarr and fsspec say it
        return False
    return L.ATTR_VERSION in root.attrs


def _write_new(where: str, records: list[VideoRecord], progress: bool) -> dict:
    root = zarr.open_group(store=where, mode="w")
    offsets, total = L.aligned_offsets([r.num_frames for r in records])
    v, t = len(records), len(L.TASKS)
    cat = root.create_group(L.CATALOG)
    cat.create_array("offset", shape=(v,), **L.video_array_kwargs("int64"))
    cat.create_array("num_frames", shape=(v,), **L.video_array_kwargs("int64"))
    cat.create_array("split", shape=(v, t), **L.video_array_kwargs(
        "int8", (t,), ("video", "task"), fill_value=L.SPLIT_NONE))
    root.create_group(L.FRAMES).create_array(
        "present", shape=(total,), **L.frame_array_kwargs("bool", (), ("frame",), False))
    labels = root.create_group(L.LABELS)
    for task, spec in L.LABEL_SPECS.items():
        names = ("frame",) + (("au",) if task == "au" else ("dim",) if spec.tail else ())
        labels.create_array(task, shape=(total, *spec.tail),
                            **L.frame_array_kwargs(spec.dtype, spec.tail, names, spec.invalid))
        labels.create_array(f"{task}_valid", shape=(total,),
                            **L.frame_array_kwargs("bool", (), ("frame",), False))
    root.create_group(L.FEATURES)
    _write_catalog(root, records, offsets, progress)
    root.update_attributes({  # one metadata write (attrs.update writes once per key)
        L.ATTR_VIDEOS: [r.name for r in records], L.ATTR_SOURCES: [r.source for r in records],
        L.ATTR_TASKS: list(L.TASKS), L.ATTR_INGEST: {"state": "complete", "revision": 1},
        L.ATTR_CREATED: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
    })
    root.attrs[L.ATTR_VERSION] = L.LAYOUT_VERSION  # last: the store is complete from here on
    return {"store": where, "videos": v, "new_videos": v, "frames": int(sum(r.num_frames for r in records)),
            "frame_axis": total, "revision": 1}


def _dense(root: zarr.Group, key: str) -> zarr.Array:
    """``root[key]`` writing every chunk, even one that holds only the fill value: zarr 3.1 does
    not keep ``write_empty_chunks`` in the metadata (shared/PLATFORM.md), so without this a
    reopened store would drop such chunks and a lost chunk could not be told from an empty one."""
    return root[key].with_config({"write_empty_chunks": True})


def _write_catalog(root: zarr.Group, records: list[VideoRecord], offsets: np.ndarray,
                   progress: bool) -> None:
    """Catalog arrays, then each video's presence and labels over its whole aligned region."""
    if records:
        _dense(root, L.OFFSET)[:len(records)] = offsets
        _dense(root, L.NUM_FRAMES)[:len(records)] = np.array([r.num_frames for r in records], np.int64)
        _dense(root, L.SPLIT)[:len(records)] = np.array(
            [[L.split_code(r.splits.get(t)) for t in L.TASKS] for r in records], np.int8)
    for rec, off in tqdm(list(zip(records, offsets, strict=True)), desc="ingest", unit="video",
                         disable=not progress):
        _write_video_rows(root, rec, int(off))


def _write_video_rows(root: zarr.Group, rec: VideoRecord, off: int) -> None:
    n = L.aligned_length(rec.num_frames)
    present = np.zeros(n, dtype=bool)
    present[:rec.num_frames] = rec.present
    _dense(root, L.PRESENT)[off:off + n] = present
    for task, spec in L.LABEL_SPECS.items():
        values = np.full((n, *spec.tail), spec.invalid, dtype=spec.dtype)  # (aligned n, ...)
        valid = np.zeros(n, dtype=bool)
        if task in rec.labels:
            v, ok = rec.labels[task]
            values[:len(v)] = np.asarray(v, dtype=spec.dtype)
            valid[:len(ok)] = np.asarray(ok, dtype=bool)
        _dense(root, L.label_path(task))[off:off + n] = values
        _dense(root, L.valid_path(task))[off:off + n] = valid


def _update(where: str, records: list[VideoRecord], progress: bool, invalidate: bool) -> dict:
    root = zarr.open_group(store=where, mode="r+")
    attrs = root.attrs.asdict()
    check_layout_version(int(attrs[L.ATTR_VERSION]), where)
    old = list(attrs[L.ATTR_VIDEOS])
    old_sources = list(attrs[L.ATTR_SOURCES])
    old_off = read(root[L.OFFSET], 0, len(old), where) if old else np.zeros(0, np.int64)
    old_n = read(root[L.NUM_FRAMES], 0, len(old), where) if old else np.zeros(0, np.int64)
    by_name = {r.name: r for r in records}
    for name, n in zip(old, old_n, strict=True):
        if name in by_name and by_name[name].num_frames != int(n):
            raise StoreError(f"{where}: video {name!r} now has {by_name[name].num_frames} frames, "
                             f"the store has {int(n)}; its features would be misaligned")
    invalidated = check_or_invalidate(  # before anything is written
        root, where, old, old_off, {r.name: r.present for r in records}, invalidate)
    gone = [n for n in old if n not in by_name]
    if gone:
        log.warning("%d videos of the store are not in the dataset; kept as they were: %s",
                    len(gone), gone[:5])
    new = [r for r in records if r.name not in set(old)]
    start = int(max((o + L.aligned_length(n) for o, n in zip(old_off, old_n, strict=True)),
                    default=0))
    new_off, total = L.aligned_offsets([r.num_frames for r in new], start=start)
    revision = int((attrs.get(L.ATTR_INGEST) or {}).get("revision", 1)) + 1
    root.attrs[L.ATTR_INGEST] = {"state": "writing", "revision": revision}
    _resize(root, len(old) + len(new), total)
    keep = [by_name[n] for n in old if n in by_name]
    keep_off = np.array([o for n, o in zip(old, old_off, strict=True) if n in by_name], np.int64)
    _rewrite_known(root, old, keep, keep_off)
    _write_catalog_rows(root, new, new_off, len(old))
    for rec, off in tqdm(list(zip(keep + new, np.concatenate([keep_off, new_off]), strict=True)),
                         desc="ingest", unit="video", disable=not progress):
        _write_video_rows(root, rec, int(off))
    root.update_attributes({L.ATTR_VIDEOS: old + [r.name for r in new],
                       L.ATTR_SOURCES: old_sources + [r.source for r in new]})
    root.attrs[L.ATTR_INGEST] = {"state": "complete", "revision": revision}  # last
    return {"store": where, "videos": len(old) + len(new), "new_videos": len(new),
            "frames": int(sum(r.num_frames for r in keep + new)), "frame_axis": total,
            "revision": revision, "invalidated": invalidated}


def _resize(root: zarr.Group, videos: int, frames: int) -> None:
    """Grow (or trim leftovers of an interrupted run from) every array to the new catalog size."""
    for key in (L.OFFSET, L.NUM_FRAMES, L.SPLIT):
        arr = root[key]
        arr.resize((videos, *arr.shape[1:]))
    frame_keys = [L.PRESENT] + [p for t in L.TASKS for p in (L.label_path(t), L.valid_path(t))]
    for key in frame_keys:
        arr = root[key]
        arr.resize((frames, *arr.shape[1:]))
    for name in root[L.FEATURES].group_keys():
        group = root[L.FEATURES][name]
        group["data"].resize((frames, group["data"].shape[1]))
        group["committed"].resize((videos,))
        group["checksum"].resize((videos,))


def _rewrite_known(root: zarr.Group, old: list[str], keep: list[VideoRecord],
                   keep_off: np.ndarray) -> None:
    """Rewrite the splits of videos already in the store (offsets and counts never change)."""
    split = read(root[L.SPLIT], 0, len(old), str(root.store))  # (V_old, T)
    index = {n: i for i, n in enumerate(old)}
    for rec in keep:
        split[index[rec.name]] = [L.split_code(rec.splits.get(t)) for t in L.TASKS]
    if len(old):
        _dense(root, L.SPLIT)[:len(old)] = split


def _write_catalog_rows(root: zarr.Group, new: list[VideoRecord], offsets: np.ndarray,
                        first: int) -> None:
    if not new:
        return
    end = first + len(new)
    _dense(root, L.OFFSET)[first:end] = offsets
    _dense(root, L.NUM_FRAMES)[first:end] = np.array([r.num_frames for r in new], np.int64)
    _dense(root, L.SPLIT)[first:end] = np.array(
        [[L.split_code(r.splits.get(t)) for t in L.TASKS] for r in new], np.int8)
