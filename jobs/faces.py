"""Ray job: face crops of many videos in parallel, one task per video.

    ray job submit --working-dir . -- python jobs/faces.py /abs/videos /abs/out --detect-every 5
    python jobs/faces.py VIDEOS OUT --address auto        # or RAY_ADDRESS; else a local loopback Ray

Each task runs :func:`faces_task` (the plain per-video function, also callable without Ray): it
builds its own detector and calls ``featurestore.video.faces.extract_video``, which is atomic and
resumable per video, so tasks never share an output and a rerun skips finished videos. A failed
video is reported by name; the others are still done.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as `python jobs/faces.py`: make `jobs` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import click

log = logging.getLogger("jobs.faces")


def faces_task(video: str, out: str, faces_cfg: dict, detector: str = "mtcnn",
               min_face: int = 40, max_side: int = 640, threads: int = 1) -> dict:
    """One video -> crops + record. Returns ``{"video", "frames", "faces", "skipped"}`` or
    ``{"video", "error"}``; never raises for a bad video."""
    import torch

    from featurestore.errors import FeatureStoreError
    from featurestore.video.faces import FacesConfig, extract_video
    from jobs.video_emotions import make_detector

    torch.set_num_threads(threads)  # one task per CPU: no oversubscription
    try:
        det = make_detector(detector, "cpu", min_face, max_side)
        r = extract_video(video, out, det, FacesConfig(**faces_cfg), progress=False)
    except (FeatureStoreError, ValueError, OSError) as err:
        return {"video": video, "error": str(err)}
    return {"video": video, "frames": r.frames, "faces": r.faces, "skipped": r.skipped,
            "seconds": round(r.seconds, 2)}


def run_faces(videos: list[str], out: str, faces_cfg: dict, detector: str = "mtcnn",
              min_face: int = 40, max_side: int = 640, address: str | None = None,
              cpus_per_task: float = 1.0) -> list[dict]:
    """Submit one Ray task per video and gather the results (in input order)."""
    import ray
    from tqdm import tqdm

    from jobs.raylocal import init_ray

    init_ray(address)
    remote = ray.remote(num_cpus=cpus_per_task, max_retries=2)(faces_task)
    refs = [remote.remote(v, out, faces_cfg, detector, min_face, max_side,
                          max(1, int(cpus_per_task))) for v in videos]
    pending, results = list(refs), {}
    with tqdm(total=len(refs), desc="videos", unit="video") as bar:
        while pending:
            done, pending = ray.wait(pending, num_returns=1)
            for ref in done:
                results[ref] = ray.get(ref)
                bar.update(1)
    return [results[r] for r in refs]


@click.command()
@click.argument("inputs", type=click.Path(exists=True))
@click.argument("out", type=click.Path(file_okay=False))
@click.option("--subjects", type=click.IntRange(1, 2), default=1, show_default=True)
@click.option("--detect-every", type=click.IntRange(1, 1000), default=1, show_default=True)
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.9, show_default=True)
@click.option("--min-face", type=click.IntRange(12, 4096), default=40, show_default=True)
@click.option("--max-side", type=click.IntRange(48, 8192), default=640, show_default=True)
@click.option("--detector", default="mtcnn", show_default=True)
@click.option("--cpus-per-task", type=float, default=1.0, show_default=True)
@click.option("--address", help="Ray address (default: RAY_ADDRESS, else a local instance).")
def main(inputs, out, subjects, detect_every, min_score, min_face, max_side, detector,
         cpus_per_task, address) -> None:
    """Face crops of every video of INPUTS (a video or a folder) into OUT, one Ray task each."""
    from encoders.mtcnn_nets import fetch_mtcnn_weights
    from featurestore.errors import FeatureStoreError
    from featurestore.video.decode import find_videos
    from featurestore.video.faces import FacesConfig

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        cfg = FacesConfig(subjects=subjects, detect_every=detect_every, min_score=min_score)
        videos = [str(p.resolve()) for p in find_videos(inputs)]
        if detector == "mtcnn":
            fetch_mtcnn_weights()  # once, before the tasks (they share the cache)
    except (FeatureStoreError, ValueError) as err:
        click.echo(f"error: {err}", err=True)
        sys.exit(2)
    results = run_faces(videos, str(Path(out).resolve()), cfg.__dict__, detector, min_face,
                        max_side, address, cpus_per_task)
    failed = [r for r in results if "error" in r]
    click.echo(json.dumps({"videos": len(results), "failed": len(failed),
                           "skipped": sum(bool(r.get("skipped")) for r in results)}, indent=2))
    for r in failed:
        click.echo(f"error: {r['error']}", err=True)
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
