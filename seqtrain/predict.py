"""Official ABAW submission files from a checkpoint: one row per template frame, face or not.

A multi-task (``mtl``) checkpoint predicts each of the three tasks: ``--task va`` (or expr, au)
writes that task's file from the model's head of that task, with that task's template (given an
mtl run folder, from its ``best-<task>/``: the epoch where that head scored best), and
``--task mtl`` writes the one multi-task file (from ``best/``, the best sum) (``featurestore.abaw.MTL_HEADER``: the ABAW
multi-task track's format as the teams' public submission code writes it), from its template.
Every file is checked by :func:`featurestore.submission.check_submission` before it replaces
``out``.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from featurestore import abaw
from featurestore.abaw import MTL, TemplateRow
from featurestore.atomic import atomic_write
from featurestore.errors import DataFormatError
from featurestore.submission import check_submission
from seqtrain.checkpoint import load_model
from seqtrain.data import load_videos, normalize_videos
from seqtrain.evaluate import predict_frames
from seqtrain.tasks import get_task
from trainkit.checkpoint import CONFIG

__all__ = ["read_template_rows", "predict", "submission_header"]

log = logging.getLogger(__name__)


def submission_header(task: str) -> str:
    """The header line of ``task``'s file (va, expr, au or mtl)."""
    return abaw.submission_header(task)


def read_template_rows(path: str | os.PathLike) -> list[TemplateRow]:
    """:func:`featurestore.abaw.read_template_rows`, refusing a template without frames."""
    rows = abaw.read_template_rows(path)
    if not rows:
        raise DataFormatError(path, None, "template lists no frames")
    return rows


def _format(task: str, values: np.ndarray) -> list[str]:
    """Submission values (n, ...) of one video -> n row tails (the values after the frame)."""
    if task == "va":
        return [f"{v:.6f},{a:.6f}" for v, a in values]
    if task == "expr":
        return [str(int(c)) for c in values]
    if task == MTL:  # (n, 15): VA 2 | class | AU 12
        return [",".join((va, str(int(row[2])), au)) for va, row, au in
                zip(_format("va", values[:, :2]), values, _format("au", values[:, 3:]), strict=True)]
    return [",".join(str(int(x)) for x in row) for row in values]


def predict(task: str, checkpoint: str | os.PathLike, store: str | os.PathLike,
            template: str | os.PathLike, out: str | os.PathLike, features: str | None = None,
            *, batch_size: int = 32, device: str = "cpu", smooth: int | None = None) -> Path:
    """Predict every window of each template video, stitch per frame, smooth over ``smooth``
    frames per video (None: as the run was evaluated, its ``smooth``; 0: off) and write ``out``.

    Returns the written path. Raises ValueError naming template videos the store lacks and
    DataFormatError for template frames beyond a video's length.
    """
    if smooth is not None and (smooth < 0 or smooth > 1 and not smooth % 2):
        raise ValueError(f"smooth must be 0 (off) or an odd number of frames, got {smooth}")
    import featurestore
    from featurestore.outputs import check_output

    check_output(out, {"--template": template, "--checkpoint": checkpoint, "--store": store},
                 what="--out")
    head = Path(checkpoint) / f"best-{task}"  # an mtl run folder: that head's own best epoch
    model, fit_cfg, _ = load_model(head if (head / CONFIG).is_file() else checkpoint, device)
    if fit_cfg.task not in (task, MTL):
        hint = " (the multi-task file needs an mtl checkpoint)" if task == MTL else ""
        raise ValueError(f"{checkpoint}: checkpoint is for task {fit_cfg.task!r}, not {task!r}{hint}")
    fs = featurestore.open(store)
    rows = read_template_rows(template)
    videos = list(dict.fromkeys(r[0] for r in rows))
    missing = [v for v in videos if v not in set(fs.videos())]
    if missing:
        raise ValueError(f"{template}: {len(missing)} template video(s) not in the store "
                         f"{store}: {missing[:5]}")
    seqs = load_videos(fs, features or fit_cfg.data.features, videos, None)
    # the run's per-video normalisation travels with its config: applied as in training
    seqs = normalize_videos(seqs, fit_cfg.data.video_norm)
    frames = predict_frames(model, seqs, fit_cfg.data.window, fit_cfg.data.stride, batch_size, device)
    trained, spec = get_task(fit_cfg.task), get_task(task)
    k = fit_cfg.smooth if smooth is None else smooth
    raw = {v: trained.smooth(frames[v], k) for v in videos}  # video -> (n, C) smoothed
    if fit_cfg.task == MTL and task != MTL:
        raw = {v: trained.part(task, r) for v, r in raw.items()}  # that task's head
    values = {v: spec.to_submission(raw[v]) for v in videos}  # video -> (n, ...) submission
    lines = [submission_header(task)]
    for video, number, _, line_no in rows:
        if number > len(values[video]):
            raise DataFormatError(template, line_no, f"frame {number} of {video} is beyond its "
                                  f"{len(values[video])} frames in the store")
    body = {v: _format(task, values[v]) for v in videos}
    lines += [f"{loc},{body[video][number - 1]}" for video, number, loc, _ in rows]
    text = "\n".join(lines) + "\n"

    def write_checked(tmp: str) -> None:
        Path(tmp).write_text(text, encoding="utf-8")
        try:
            check_submission(tmp, task, rows)
        except DataFormatError as err:  # a bug of this module, never the user's input
            raise ValueError(f"{out}: not written, the {task} submission fails its check: {err}") from err

    path = atomic_write(out, write_checked)
    log.info("wrote %d rows to %s", len(rows), path)
    return path
