"""The synthetic dataset's plan (names, splits, lengths, tasks) and its writers.

Writes exactly the Aff-Wild2 layout of ``shared/AFFWILD2.md`` (frames roots, ABAW6 annotation
files, test release lists, submission templates) plus FER2013 and RAF-DB style face sets. Nothing
beyond those files is written: what the generator intended is recomputed by pure functions.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image

from featurestore import abaw
from featurestore.abaw import AU_NAMES, EXPR_CLASSES, TASKS  # noqa: F401  (used by synth)
from featurestore.synth.faces import OTHER, FaceParams, draw_face, random_identity
from featurestore.synth.temporal import lag_frames, lag_labels, temporal_effects
from featurestore.synth.timeline import Timeline, gap_runs, label_timeline, smooth, static_state

if TYPE_CHECKING:
    from featurestore.synth import SynthConfig

ROOTS = ("cropped_aligned", "cropped_aligned_new_50_vids")
ANNOTATIONS = "6th_ABAW_Annotations"
TASK_DIRS = abaw.TASK_DIRS
SPLIT_DIRS = abaw.SPLIT_DIRS
TEST_LISTS = {"va": "Valence_Arousal_Estimation_Challenge_test_set_release.txt",
              "expr": "Expression_Recognition_Challenge_test_set_release.txt",
              "au": "Action_Unit_Detection_Challenge_test_set_release.txt"}
TEMPLATES = {"va": "CVPR_6th_ABAW_VA_test_set_sample.txt",
             "expr": "CVPR_6th_ABAW_Expr_test_set_sample.txt",
             "au": "CVPR_6th_ABAW_AU_test_set_sample.txt",
             abaw.MTL: "MTL_test_set_sample.txt"}  # every frame of every test video, one file
HEADERS = {task: ",".join(columns) for task, columns in abaw.HEADERS.items()}
# Aff-Wild2 EXPR index -> FER2013 emotion (Angry, Disgust, Fear, Happy, Sad, Surprise, Neutral)
FER_OF_EXPR = (6, 0, 1, 2, 3, 4, 5)
# Aff-Wild2 EXPR index -> RAF-DB label (1 Surprise, 2 Fear, 3 Disgust, 4 Happy, 5 Sad, 6 Anger, 7 Neutral)
RAF_OF_EXPR = (7, 6, 3, 2, 4, 5, 1)
JPEG_QUALITY = 90


@dataclass(frozen=True)
class VideoPlan:
    """One video of the dataset. ``tasks``: annotated tasks (train/val) or test-listed tasks."""

    index: int
    name: str
    source: str
    split: str  # "train" | "val" | "test"
    tasks: tuple[str, ...]
    num_frames: int
    root: str  # the cropped_aligned* folder holding its jpgs
    lead: int  # frames without a face at the start
    tail: int  # frames without a face at the end


@dataclass(frozen=True)
class IntendedVideo:
    """What the generator means one video to be: labels use the file's invalid markers."""

    plan: VideoPlan
    timeline: Timeline
    present: np.ndarray  # (n,) bool, True where a jpg is written
    labels: dict[str, tuple[np.ndarray, np.ndarray]]  # task -> (values, valid (n,) bool)


def _names(rng: np.random.Generator, k: int) -> list[str]:
    out: set[str] = set()
    while len(out) < k:
        if rng.random() < 0.5:
            res = rng.choice(["1280x720", "1920x1080", "640x360", "480x360", "1080x1920"])
            out.add(f"{rng.integers(1, 460)}-{rng.choice([24, 25, 30, 60])}-{res}")
        else:
            out.add(f"video_{int(rng.integers(0, 16**4)):04x}")
    names = sorted(out)
    rng.shuffle(names)
    return names


def _drop_tasks(rng: np.random.Generator, videos: list[dict]) -> None:
    """Leave ~15% of annotated videos without one task, keeping train and val in every task."""
    def ok(task: str) -> bool:
        return all(any(v["split"] == s and task in v["tasks"] for v in videos) for s in SPLIT_DIRS)

    picks = [i for i in range(len(videos)) if rng.random() < 0.15]
    if not picks and len(videos) >= 5:
        picks = [int(rng.integers(0, len(videos)))]
    for i in picks:
        task = TASKS[int(rng.integers(0, 3))]
        before = videos[i]["tasks"]
        videos[i]["tasks"] = tuple(t for t in before if t != task)
        if not ok(task):
            videos[i]["tasks"] = before


def plan_videos(cfg: SynthConfig) -> tuple[VideoPlan, ...]:
    """The videos of the dataset, sorted by name (index = position). Pure in ``cfg``."""
    rng = np.random.default_rng([cfg.seed, 0])
    n_pairs = int(round(cfg.pair_fraction * cfg.videos / 2))
    if cfg.pair_fraction > 0 and cfg.videos >= 3:
        n_pairs = max(1, n_pairs)
    n_ann = cfg.videos - n_pairs  # annotated sources
    n_src = n_ann + cfg.test_videos
    names = _names(rng, n_src)
    n_val = min(max(1, int(round(cfg.val_fraction * n_ann))), n_ann - 1)
    val = set(rng.choice(n_ann, size=n_val, replace=False).tolist())
    lengths = np.maximum((cfg.frames * rng.uniform(0.5, 1.5, size=n_src)).astype(int), 20)
    if cfg.videos >= 4 and lengths[:n_ann].min() >= 300:
        lengths[int(lengths[:n_ann].argmin())] = int(rng.integers(max(20, cfg.frames // 3), 300))
    new_root = rng.random(n_src) < 0.2
    if n_src >= 3 and not new_root.any():
        new_root[int(rng.integers(0, n_src))] = True
    videos: list[dict] = []
    for s in range(n_src):
        split = "test" if s >= n_ann else ("val" if s in val else "train")
        tasks = TASKS if split != "test" or s < n_src - 1 or cfg.test_videos < 3 else ("va", "expr")
        subjects = [f"{names[s]}_left", f"{names[s]}_right"] if s < n_pairs else [names[s]]
        for name in subjects:
            videos.append({"name": name, "source": names[s], "split": split, "tasks": tasks,
                           "num_frames": int(lengths[s]), "root": ROOTS[int(new_root[s])],
                           "lead": int(rng.integers(1, 7)) if rng.random() < 0.3 else 0,
                           "tail": int(rng.integers(1, 5)) if rng.random() < 0.3 else 0})
    if not any(v["lead"] for v in videos):
        videos[0]["lead"] = int(rng.integers(1, 7))
    _drop_tasks(rng, [v for v in videos if v["split"] != "test"])
    videos.sort(key=lambda v: v["name"])
    return tuple(VideoPlan(index=i, **v) for i, v in enumerate(videos))


def intended_video(cfg: SynthConfig, plan: VideoPlan) -> IntendedVideo:
    """Recompute the timeline, face presence and labels the generator meant for ``plan``."""
    n = plan.num_frames
    timeline = label_timeline(np.random.default_rng([cfg.seed, 1, plan.index]), n)
    rng = np.random.default_rng([cfg.seed, 3, plan.index])
    present = ~gap_runs(rng, n, cfg.missing_face_rate)
    present[:plan.lead] = False
    present[n - plan.tail:] = False
    if not present.any():
        present[n // 2] = True
    invalid = {t: gap_runs(rng, n, cfg.invalid_label_rate, max_len=8) for t in TASKS}
    lag = lag_frames(cfg.seed, plan.index, cfg.lag)  # raters trail the face
    va = np.round(lag_labels(np.stack([timeline.valence, timeline.arousal], 1), lag), 6)
    va = va.astype(np.float32)
    va[invalid["va"]] = -5.0
    expr = timeline.expr.copy()
    expr[invalid["expr"]] = -1
    au = timeline.au.copy()
    au[invalid["au"]] = -1
    labels = {"va": (va, ~invalid["va"]), "expr": (expr, ~invalid["expr"]),
              "au": (au, ~invalid["au"])}
    return IntendedVideo(plan, timeline, present, labels)


def frame_params(cfg: SynthConfig, iv: IntendedVideo) -> list[FaceParams]:
    """The drawing parameters of every frame (AUs eased over ~2 frames; temporal effects of
    ``featurestore.synth.temporal`` applied: arousal partly as motion, expression ramps, bursts)."""
    tl = iv.timeline
    ident = random_identity(np.random.default_rng([cfg.seed, 2, iv.plan.index]))
    noise = float(np.random.default_rng([cfg.seed, 2, iv.plan.index, 1]).uniform(4, 10))
    au_soft = smooth(tl.au.astype(np.float64), 1.0)  # (n, 12)
    te = temporal_effects(cfg, iv.plan.index, tl.arousal, tl.expr, tl.pose)
    return [FaceParams(ident, float(tl.valence[i]), float(te.drawn_arousal[i]), tuple(au_soft[i]),
                       int(tl.expr[i]), tuple(te.pose[i]), tuple(tl.light[i]),
                       float(tl.brightness[i]), float(tl.contrast[i]), noise, cfg.size,
                       float(te.expr_strength[i]), int(te.burst[i]))
            for i in range(len(tl.expr))]


def _jpeg(arr: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(arr)
    (img.convert(mode) if mode else img).save(buf, "JPEG", quality=JPEG_QUALITY)
    return buf.getvalue()


def write_video(root: Path, cfg: SynthConfig, iv: IntendedVideo) -> int:
    """Write the jpgs and annotation files of one video under ``root``; returns jpgs written."""
    plan = iv.plan
    folder = root / plan.root / plan.name
    folder.mkdir(parents=True)
    rng = np.random.default_rng([cfg.seed, 4, plan.index])
    params = frame_params(cfg, iv)
    for i in np.flatnonzero(iv.present):
        (folder / f"{i + 1:05d}.jpg").write_bytes(_jpeg(draw_face(params[i], rng)))
    if plan.split != "test":
        for task in plan.tasks:
            path = root / ANNOTATIONS / TASK_DIRS[task] / SPLIT_DIRS[plan.split] / f"{plan.name}.txt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(annotation_text(task, iv.labels[task][0]))
    return int(iv.present.sum())


def annotation_text(task: str, values: np.ndarray) -> str:
    """One annotation file: the header, then one line per frame."""
    if task == "va":
        rows = [f"{v:.6f},{a:.6f}" if v != -5 else "-5,-5" for v, a in values.tolist()]
    elif task == "expr":
        rows = [str(x) for x in values.tolist()]
    else:
        rows = [",".join(str(x) for x in r) for r in values.tolist()]
    return "\n".join([HEADERS[task], *rows]) + "\n"


def write_test_files(root: Path, plans: tuple[VideoPlan, ...]) -> None:
    """Test release lists, one submission template per task and the multi-task template (every
    frame of every test video, whatever tasks it is listed for), with placeholder values."""
    tests = [p for p in plans if p.split == "test"]
    lists, temps = root / "names_of_videos_in_each_test_set", root / "test_set_templates"
    lists.mkdir(parents=True)
    temps.mkdir(parents=True)
    fill = {"va": "0.0,0.0", "expr": "0", "au": ",".join(["0"] * 12)}
    fill[abaw.MTL] = ",".join(fill[t] for t in TASKS)
    for task in (*TASKS, abaw.MTL):
        if task in TASKS:
            names = [p.name for p in tests if task in p.tasks]
            (lists / TEST_LISTS[task]).write_text("".join(f"{n}\n" for n in names))
        rows = [f"{p.name}/{i:05d}.jpg,{fill[task]}" for p in tests
                if task == abaw.MTL or task in p.tasks for i in range(1, p.num_frames + 1)]
        lines = [abaw.submission_header(task), *rows]
        (temps / TEMPLATES[task]).write_text("\n".join(lines) + "\n")


def still_face(cfg: SynthConfig, kind: int, i: int) -> tuple[np.ndarray, int]:
    """Still face ``i`` of set ``kind`` (0 FER2013, 1 RAF-DB): (112, 112, 3) RGB and its EXPR class.

    The class is never Other (no FER2013 / RAF-DB equivalent). Pure in (cfg.seed, kind, i).
    """
    rng = np.random.default_rng([cfg.seed, 5, kind, i])
    v, a, au, expr = static_state(rng)
    while expr == OTHER:
        v, a, au, expr = static_state(rng)
    pose = (*rng.normal(0, 2, 2), rng.normal(0, 4), 1 + rng.normal(0, 0.03))
    p = FaceParams(random_identity(rng), v, a, tuple(au.astype(float)), expr, pose,
                   tuple(rng.normal(0, 0.25, 2)), rng.uniform(95, 145), rng.uniform(40, 58),
                   rng.uniform(3, 8), 112)
    return draw_face(p, rng), expr


def _fer_line(cfg: SynthConfig, n_fer: int, i: int) -> str:
    """Row ``i`` of the FER2013 csv (pure in cfg.seed and i)."""
    img, expr = still_face(cfg, 0, i)
    grey = np.asarray(Image.fromarray(img).convert("L").resize((48, 48), Image.Resampling.BOX))
    usage = "Training" if i < 0.8 * n_fer else ("PublicTest" if i < 0.9 * n_fer else "PrivateTest")
    return f"{FER_OF_EXPR[expr]},{' '.join(map(str, grey.ravel().tolist()))},{usage}"


def _raf_face(cfg: SynthConfig, i: int) -> tuple[bytes, int]:
    """RAF-DB face ``i``: its 100x100 aligned jpg and its RAF-DB class (pure in cfg.seed and i)."""
    img, expr = still_face(cfg, 1, i)
    small = np.asarray(Image.fromarray(img).resize((100, 100), Image.Resampling.BOX))
    return _jpeg(small), RAF_OF_EXPR[expr]


def write_facesets(root: Path, cfg: SynthConfig, progress=lambda it: it,
                   map_=map) -> dict[str, int]:
    """FER2013 csv (48x48 grey) and RAF-DB basic (100x100 aligned jpgs), ``cfg.faces`` in all.
    ``map_``: how the faces are drawn (``map``, or a process pool's ordered ``map``: every face
    is pure in its index, so the files are the same bytes)."""
    n_fer = cfg.faces // 2
    n_raf = cfg.faces - n_fer
    fer = root / "fer2013"
    fer.mkdir(parents=True)
    lines = ["emotion,pixels,Usage", *progress(map_(partial(_fer_line, cfg, n_fer), range(n_fer)))]
    (fer / "fer2013.csv").write_text("\n".join(lines) + "\n")
    raf = root / "rafdb" / "basic"
    (raf / "EmoLabel").mkdir(parents=True)
    (raf / "Image" / "aligned").mkdir(parents=True)
    n_train = int(round(0.8 * n_raf))
    labels = []
    for i, (jpg, label) in enumerate(progress(map_(partial(_raf_face, cfg), range(n_raf)))):
        stem = f"train_{i + 1:05d}" if i < n_train else f"test_{i - n_train + 1:04d}"
        (raf / "Image" / "aligned" / f"{stem}_aligned.jpg").write_bytes(jpg)
        labels.append(f"{stem}.jpg {label}\n")
    (raf / "EmoLabel" / "list_patition_label.txt").write_text("".join(labels))
    return {"fer2013": n_fer, "rafdb": n_raf}
