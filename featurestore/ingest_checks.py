"""No silent partial ingest: what an Aff-Wild2 tree holds, and what is missing from it.

:func:`check_dataset` counts the videos, jpgs and labelled videos per task and split of a read
tree and lists the problems that usually mean the tree is not where or how the reader expects it:
no video at all, no labels at all, a task or a split of a task without labelled videos, and
anything the reader found but could not use (annotation folders too deep, misspelled split
folders). Ingest refuses such a tree, naming every problem, unless the user accepts a partial
dataset; accepted problems are logged as warnings and returned in the summary.
"""

from __future__ import annotations

import logging
from typing import Any

from featurestore.abaw import TASKS
from featurestore.errors import DataFormatError

log = logging.getLogger(__name__)

__all__ = ["check_dataset", "found"]

_TASKS = TASKS
_SHOWN = 8  # problems quoted in one error message


def found(ds) -> dict[str, Any]:
    """Counts of a :class:`featurestore.affwild2.AffWild2`: videos, jpgs, labelled videos."""
    vids = list(ds.videos.values())
    labelled = {t: {s: sum(1 for v in vids if t in v.labels and v.labels[t].split == s)
                    for s in ("train", "val")} for t in _TASKS}
    return {"videos": len(vids), "videos_with_frames": sum(1 for v in vids if v.frame_numbers.size),
            "jpgs": int(sum(v.frame_numbers.size for v in vids)), "labelled_videos": labelled,
            "test_videos": {t: sum(1 for v in vids if t in v.test_tasks) for t in _TASKS}}


def _problems(ds, counts: dict[str, Any]) -> list[str]:
    out = [f"{path}: {why}" for path, why in ds.ignored]
    labelled = counts["labelled_videos"]
    if not any(n for splits in labelled.values() for n in splits.values()):
        out.append("no video has labels for any task")
        return out
    for task, splits in labelled.items():
        if not any(splits.values()):
            out.append(f"task {task}: no labelled videos")
            continue
        out += [f"task {task}: no labelled videos in split {s}" for s, n in splits.items() if not n]
    return out


def check_dataset(ds, accept_partial: bool = False) -> dict[str, Any]:
    """Counts and problems of ``ds``; raise :class:`DataFormatError` naming the root and every
    problem unless ``accept_partial`` (then each is logged as a warning). A tree with no video
    at all is refused either way."""
    counts = found(ds)
    if not counts["videos"]:
        raise DataFormatError(ds.root, None, "no videos found (no cropped_aligned*/<video>/%05d.jpg, "
                              "no annotation, no test list); nothing to ingest")
    problems = _problems(ds, counts)
    if problems and not accept_partial:
        more = f" (+{len(problems) - _SHOWN} more)" if len(problems) > _SHOWN else ""
        raise DataFormatError(ds.root, None, "incomplete Aff-Wild2 tree, nothing written: "
                              + "; ".join(problems[:_SHOWN]) + more
                              + "; pass --accept-partial to ingest it as it is")
    for p in problems:
        log.warning("ingesting a partial dataset: %s", p)
    return {**counts, "accepted_problems": problems}
