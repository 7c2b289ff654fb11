"""Reader for the Aff-Wild2 tree as distributed (layout in shared/AFFWILD2.md).

``read_affwild2(root)`` discovers every ``cropped_aligned*`` frames folder, the annotation root
(``VA_Estimation_Challenge`` / ``EXPR_*_Challenge`` / ``AU_Detection_Challenge``), the test release
lists and the template files, and returns one :class:`AffWild2` with a complete :class:`Video` per
video. Malformed input raises :class:`DataFormatError` naming the file and line; a video is either
built completely or the whole read fails.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from featurestore import abaw
from featurestore._affwild2_parse import (
    AU_NAMES,
    EXPR_CLASSES,
    HEADERS,
    SPLITS,
    TASKS,
    iter_lines,
    parse_annotation,
    read_lines,
    read_template,
)
from featurestore._affwild2_rules import check_frame_numbers, unusable_in_task_dir
from featurestore._affwild2_scan import (
    check_video_name,
    scan_tree,
    test_list_task,
)
from featurestore.errors import DataFormatError

log = logging.getLogger(__name__)

__all__ = ["TASKS", "EXPR_CLASSES", "AU_NAMES", "SPLITS", "source_video", "parse_annotation",
           "read_template", "TaskLabels", "Video", "AffWild2", "read_affwild2", "summarize"]

_SPLIT_DIRS = {d: s for s, d in abaw.SPLIT_DIRS.items()}


def source_video(name: str) -> str:
    """The source video of a subject: ``"10-60-1280x720_right"`` -> ``"10-60-1280x720"``."""
    for suffix in ("_left", "_right"):
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


# ---------------------------------------------------------------- data model


@dataclass(frozen=True)
class TaskLabels:
    """The labels of one video for one task; ``values``/``valid`` as :func:`parse_annotation`."""

    split: str
    values: np.ndarray
    valid: np.ndarray
    path: Path

    def __post_init__(self) -> None:
        if self.split not in ("train", "val"):
            raise ValueError(f"TaskLabels.split must be 'train' or 'val', got {self.split!r}")
        if len(self.values) != len(self.valid):
            raise ValueError(f"TaskLabels: {len(self.values)} values but {len(self.valid)} valid flags")


@dataclass(frozen=True, eq=False)
class Video:
    """One video (or one ``_left``/``_right`` subject) with its frames and labels."""

    name: str
    source: str
    frame_dirs: tuple[Path, ...]
    frame_numbers: np.ndarray
    num_frames: int
    labels: Mapping[str, TaskLabels]
    test_tasks: frozenset[str]
    # index into frame_dirs for each entry of frame_numbers; None means frame_dirs[0]
    frame_dir_index: np.ndarray | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = self.frame_numbers
        if n.ndim != 1 or (n.size and (n[0] < 1 or np.any(np.diff(n) <= 0))):
            raise ValueError(f"Video {self.name!r}: frame_numbers must be sorted, unique and >= 1")
        if n.size and n[-1] > self.num_frames:
            raise ValueError(f"Video {self.name!r}: num_frames {self.num_frames} < last jpg {n[-1]}")
        if n.size and not self.frame_dirs:
            raise ValueError(f"Video {self.name!r}: has frame numbers but no frame_dirs")

    def present(self) -> np.ndarray:
        """(num_frames,) bool, True where a jpg exists (index i is frame number i + 1)."""
        out = np.zeros(self.num_frames, dtype=bool)
        out[self.frame_numbers - 1] = True
        return out

    def frame_path(self, number: int) -> Path:
        """Path of the jpg of 1-based frame ``number``; KeyError if that frame has no jpg."""
        i = int(np.searchsorted(self.frame_numbers, number))
        if i >= self.frame_numbers.size or self.frame_numbers[i] != number:
            raise KeyError(f"video {self.name!r} has no jpg for frame {number}")
        d = 0 if self.frame_dir_index is None else int(self.frame_dir_index[i])
        return self.frame_dirs[d] / self.name / f"{number:05d}.jpg"


@dataclass(frozen=True, eq=False)
class AffWild2:
    """A whole Aff-Wild2 tree: videos sorted by name, plus templates (task -> video -> frames;
    task ``mtl`` for a multi-task template)."""

    root: Path
    videos: Mapping[str, Video]
    templates: Mapping[str, Mapping[str, np.ndarray]]
    # (path, why) of what the reader found but could not use (see _affwild2_rules)
    ignored: tuple[tuple[Path, str], ...] = ()

    def split_of(self, video: str, task: str) -> str | None:
        """``"train"``, ``"val"`` or ``"test"`` for this video and task, else None."""
        if task not in TASKS:
            raise ValueError(f"task must be one of {TASKS}, got {task!r}")
        v = self.videos[video]
        if task in v.labels:
            return v.labels[task].split
        return "test" if task in v.test_tasks else None


# ---------------------------------------------------------------- assembling the tree


def _read_labels(ann_dirs: dict[str, list[Path]],
                 ignored: list[tuple[Path, str]]) -> dict[str, dict[str, TaskLabels]]:
    """video -> task -> TaskLabels from every ``<Task>_Challenge/{Train,Validation}_Set``;
    what a task folder holds besides those is appended to ``ignored``."""
    labels: dict[str, dict[str, TaskLabels]] = {}
    for task, dirs in ann_dirs.items():
        for task_dir in dirs:
            ignored.extend(unusable_in_task_dir(task_dir))
            for split_name, split in _SPLIT_DIRS.items():
                split_dir = task_dir / split_name
                if not split_dir.is_dir():
                    log.info("%s: no %s folder", task_dir, split_name)
                    continue
                for path in sorted(split_dir.glob("*.txt")):
                    video = path.stem
                    check_video_name(path, None, video)
                    if task in labels.get(video, {}):
                        other = labels[video][task].path
                        raise DataFormatError(path, None, f"video {video!r} is also annotated for {task} in {other}")
                    values, valid = parse_annotation(path, task)
                    labels.setdefault(video, {})[task] = TaskLabels(split, values, valid, path)
    return labels


def _read_test_lists(files: list[Path]) -> dict[str, dict[str, tuple[Path, int]]]:
    """video -> task -> (list file, line) for every test release list."""
    out: dict[str, dict[str, tuple[Path, int]]] = {}
    for path in files:
        task = test_list_task(path)
        if task is None:
            log.warning("%s: cannot tell the task of this test list from its name; ignored", path)
            continue
        for i, line in enumerate(read_lines(path)):
            name = line.strip()
            if name:
                check_video_name(path, i + 1, name)
                out.setdefault(name, {})[task] = (path, i + 1)
    return out


def _build_video(name, frames, labels, tests, templates) -> Video:
    dirs, numbers, dir_index = frames.get(name, ((), np.zeros(0, np.int64), None))
    tmpl = [t[name] for t in templates.values() if name in t]
    covered = max([len(lab.values) for lab in labels.values()] + [int(t.max()) for t in tmpl if t.size],
                  default=0)

    def jpg(k: int) -> Path:
        d = 0 if dir_index is None else int(dir_index[np.searchsorted(numbers, k)])
        return dirs[d] / name / f"{k:05d}.jpg"

    check_frame_numbers(name, numbers, covered, jpg)
    n = max(int(numbers[-1]) if numbers.size else 0, covered)
    return Video(name=name, source=source_video(name), frame_dirs=dirs, frame_numbers=numbers,
                 num_frames=n, labels=dict(labels), test_tasks=frozenset(tests),
                 frame_dir_index=dir_index)


def _check_frameless(name: str, labels, tests, templates, template_paths) -> None:
    """A video without a frames folder is allowed only when test-listed and templated."""
    if labels:
        lab = next(iter(labels.values()))
        raise DataFormatError(lab.path, None, f"video {name!r} is annotated but has no frames folder")
    if tests and not any(name in templates.get(t, {}) for t in (*tests, abaw.MTL)):
        path, line = next(iter(tests.values()))
        raise DataFormatError(path, line, f"test video {name!r} has no frames folder and no template")
    if not tests:
        task = next(t for t in templates if name in templates[t])
        raise DataFormatError(template_paths[task], None,
                              f"template video {name!r} has no frames folder and is in no test list")


def _template_task(path: Path) -> str:
    first = next(iter_lines(path), (1, ""))[1]
    if tuple(c.strip() for c in first.split(",")) == abaw.MTL_HEADER:
        return abaw.MTL  # the multi-task file: the three tasks, one template
    header = tuple(c.strip() for c in first.split(",")[1:])
    for task, names in HEADERS.items():
        if header == names:
            return task
    task = test_list_task(path)
    if task is None:
        raise DataFormatError(path, 1, "cannot tell the task of this template from its header or name")
    return task


def _read_templates(files: list[Path]) -> tuple[dict, dict[str, Path]]:
    """task -> video -> frame numbers; the first template (sorted by path) of a task wins."""
    templates: dict[str, dict[str, np.ndarray]] = {}
    paths: dict[str, Path] = {}
    for path in sorted(files, key=str):
        task = _template_task(path)
        frames = read_template(path)
        if task in templates:
            log.warning("%s: a second %s template; kept %s for the videos both name", path, task, paths[task])
            frames.update(templates[task])
        else:
            paths[task] = path
        templates[task] = frames
    return templates, paths


def read_affwild2(root: str | Path) -> AffWild2:
    """Read the Aff-Wild2 tree under ``root`` (see module docstring)."""
    root = Path(root)
    if not root.is_dir():
        raise DataFormatError(root, None, "not a directory")
    scan = scan_tree(root)
    if not (scan.frames_roots or scan.annotation_dirs or scan.test_lists):
        _not_a_root(root, scan)
    ignored = [(p, "annotation folder more than 3 levels below the root; not read") for p in scan.too_deep]
    labels = _read_labels(scan.annotation_dirs, ignored)
    tests = _read_test_lists(scan.test_lists)
    templates, template_paths = _read_templates(scan.template_files)
    for video, by_task in tests.items():
        for task, (path, line) in by_task.items():
            if task in labels.get(video, {}):
                raise DataFormatError(path, line, f"test video {video!r} is also annotated for {task} "
                                      f"in {labels[video][task].path}")
    names = set(scan.frames) | set(labels) | set(tests)
    names |= {v for t in templates.values() for v in t}
    videos = {}
    for name in sorted(names):
        if name not in scan.frames:
            _check_frameless(name, labels.get(name, {}), tests.get(name, {}), templates, template_paths)
        videos[name] = _build_video(name, scan.frames, labels.get(name, {}), tests.get(name, {}), templates)
    log.info("read %d videos from %s", len(videos), root)
    for path, why in ignored:
        log.info("%s: %s", path, why)  # ingest refuses or warns, scan prints them
    return AffWild2(root=root, videos=videos, templates=templates, ignored=tuple(ignored))


def _not_a_root(root: Path, scan) -> None:
    """Raise the error for a folder that holds neither frames nor annotations where expected."""
    if root.name.startswith("cropped_aligned") or any(
            p.is_dir() and any(p.glob("[0-9]*.jpg")) for p in list(root.iterdir())[:50]):
        hint = "it looks like a frames folder itself: pass the folder that contains it"
    elif scan.too_deep:
        hint = f"annotation folders are too deep (e.g. {scan.too_deep[0]}): pass a folder nearer to them"
    else:
        hint = "expected cropped_aligned*/<video>/%05d.jpg and <Task>_Challenge annotation folders"
    raise DataFormatError(root, None, f"not an Aff-Wild2 root: no cropped_aligned* frames folder and "
                          f"no *_Challenge annotation folder within 3 levels; {hint}")


def summarize(ds: AffWild2) -> str:
    """A human-readable multi-line summary of a tree (videos, frames, labels, pairs, tests)."""
    vids = list(ds.videos.values())
    lines = [f"Aff-Wild2 at {ds.root}: {len(vids)} videos, {len({v.source for v in vids})} sources"]
    total = sum(v.num_frames for v in vids)
    faces = sum(int(v.frame_numbers.size) for v in vids)
    lines.append(f"frames: {total} total, {faces} with a face ({100.0 * faces / max(total, 1):.1f}%)")
    for task in TASKS:
        counts = {s: sum(ds.split_of(v.name, task) == s for v in vids) for s in SPLITS}
        valid = sum(int(v.labels[task].valid.sum()) for v in vids if task in v.labels)
        lines.append(f"{task:>4}: " + ", ".join(f"{s} {counts[s]}" for s in SPLITS)
                     + f" videos; {valid} valid labels")
    pairs = {v.source for v in vids if v.name != v.source}
    lines.append(f"_left/_right sources: {len(pairs)}")
    tests = [v.name for v in vids if v.test_tasks]
    lines.append(f"test videos: {len(tests)} ({sum(not ds.videos[t].frame_numbers.size for t in tests)} without frames)")
    for task, tmpl in ds.templates.items():
        lines.append(f"template {task}: {len(tmpl)} videos, {sum(t.size for t in tmpl.values())} frames")
    lines += [f"NOT READ: {path}: {why}" for path, why in ds.ignored]
    return "\n".join(lines)
