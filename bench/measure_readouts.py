"""What the encoder's readout keeps: linear probes on raw pixels and on an MAE checkpoint's
features read out two ways (issue 12 item 9), on fold 0 of a finished demo run.

    python bench/measure_readouts.py --run runs/demo --out /tmp/readouts [--fit] [--checkpoint NAME=DIR ...]

The demo run is only read: its store is copied to OUT/store.zarr and these feature sets are
written there, one row per frame that has a face:

- ``pix16``: the face crop box-downsampled to 16x16 RGB (768 values in [-0.5, 0.5]);
- ``pix8g``: 8x8 grey (64 values), smaller than any encoder feature;
- ``<stage>-mean``: the checkpoint's patch tokens averaged (what the demo stores, 128-d for tiny);
- ``<stage>-tokens``: the same tokens side by side (16 x 128 = 2048-d for tiny at 64 px);

for the stages ``pt`` (``encoders/pretrain/checkpoint``) and ``ft`` (``encoders/finetune/best``),
and for each ``--checkpoint NAME=DIR`` (another MAE checkpoint of the same input, e.g. a pretraining
with another ``--mask-ratio``): ``NAME-mean`` and ``NAME-tokens``.
Each set gets ``seqtrain probe --task all --fold 0`` with ``--video-norm none`` and ``center``;
``--fit`` also trains the demo's sequence model (seed 0) on each set. Prints one markdown table:
VA CCC (valence / arousal) / Expr macro F1 / AU F1.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import featurestore.store as fs  # noqa: E402
from encoders.checkpoint import load_checkpoint  # noqa: E402
from encoders.data import to_model_input  # noqa: E402
from encoders.pixels import PixelEncoder  # noqa: E402
from featurestore.frames import decode_jpeg, open_frames  # noqa: E402

BIN = Path(sys.executable).parent
FIT_FLAGS = ["--preset", "tiny", "--epochs", "30", "--lr", "0.001", "--window", "100",
             "--stride", "50", "--batch-size", "8", "--patience", "10"]  # the demo's


def _frames_of(store, frames, video: str) -> np.ndarray:
    """uint8 (k, H, W, 3) face crops of the frames of ``video`` that have a face, in order."""
    numbers = np.flatnonzero(store.present(video)) + 1
    return np.stack([decode_jpeg(frames.read_bytes(video, int(n))) for n in numbers])


PIXELS = {"pix16": "pixels:16", "pix8g": "pixels:8g"}  # set name -> encoders.pixels spec


@torch.inference_mode()
def write_sets(store, frames, checkpoints: dict[str, Path]) -> list[str]:
    """Write the pixel sets and, per checkpoint (stage -> folder), ``<stage>-mean`` and
    ``<stage>-tokens`` from one forward; each video's frames are decoded once."""
    pixels = {name: PixelEncoder(spec) for name, spec in PIXELS.items()}
    writers = {name: store.create_feature_set(name, enc.dim, provenance=enc.provenance)
               for name, enc in pixels.items()}
    encoders = {}
    for stage, folder in checkpoints.items():
        model, cfg, _ = load_checkpoint(folder)
        encoders[stage] = (model.encoder.eval(), cfg)
        writers[f"{stage}-mean"] = store.create_feature_set(f"{stage}-mean", cfg.embed_dim)
        writers[f"{stage}-tokens"] = store.create_feature_set(
            f"{stage}-tokens", cfg.num_patches * cfg.embed_dim)
    for video in store.videos():
        if not store.present(video).any():
            continue
        imgs = _frames_of(store, frames, video)
        for name, enc in pixels.items():
            writers[name].write_video(video, enc.encode_images(imgs))
        for stage, (encoder, cfg) in encoders.items():
            parts = [encoder(to_model_input(imgs[i:i + 128], cfg.img_size), 0.0)[0][:, 1:]
                     for i in range(0, len(imgs), 128)]  # (b, L, D) each
            tokens = torch.cat(parts).numpy()  # (k, L, D)
            writers[f"{stage}-mean"].write_video(video, tokens.mean(1))
            writers[f"{stage}-tokens"].write_video(video, tokens.reshape(len(tokens), -1))
    return list(writers)


def _scores(path: Path) -> str:
    cells = []
    for task in ("va", "expr", "au"):
        val = json.loads((path / task / "fold0" / "metrics.json").read_text())["val"]
        cell = f"{val['score']:.3f}"
        if task == "va":
            cell += f" ({val['ccc_valence']:.2f} / {val['ccc_arousal']:.2f})"
        cells.append(cell)
    return " / ".join(cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--run", type=Path, default=Path("runs/demo"), help="a finished demo run")
    ap.add_argument("--out", type=Path, required=True, help="a new folder for the copy and runs")
    ap.add_argument("--fit", action="store_true", help="also train the demo's sequence model")
    ap.add_argument("--checkpoint", action="append", default=[], metavar="NAME=DIR",
                    help="another checkpoint to read out as NAME-mean / NAME-tokens (repeatable)")
    args = ap.parse_args()
    run, out = args.run.resolve(), args.out.resolve()
    if out.exists():
        sys.exit(f"error: {out} exists; give a new folder")
    if out == run or run in out.parents:
        sys.exit(f"error: {out} is inside the demo run {run}; give a folder outside it")
    for need in ("store.zarr", "frames.lmdb", "encoders/pretrain/checkpoint", "encoders/finetune/best"):
        if not (run / need).exists():
            sys.exit(f"error: {run / need} is missing: is {run} a finished demo run?")
    checkpoints = {"pt": run / "encoders/pretrain/checkpoint", "ft": run / "encoders/finetune/best"}
    for spec in args.checkpoint:
        name, sep, folder = spec.partition("=")
        if not sep or not name or not folder:
            sys.exit(f"error: --checkpoint {spec!r}: expected NAME=DIR")
        if name in checkpoints or name in PIXELS:
            sys.exit(f"error: --checkpoint {spec!r}: the name {name!r} is taken")
        if not (Path(folder) / "config.json").is_file():
            sys.exit(f"error: --checkpoint {spec!r}: {Path(folder) / 'config.json'} is missing")
        checkpoints[name] = Path(folder).resolve()
    torch.set_num_threads(1)
    out.mkdir(parents=True)
    shutil.copytree(run / "store.zarr", out / "store.zarr")
    store = fs.open(out / "store.zarr", mode="a")
    frames = open_frames(run / "frames.lmdb")
    sets = write_sets(store, frames, checkpoints)
    print("| features | dim | probe | probe, video-centred |" + (" sequence model |" if args.fit else ""))
    print("| --- | ---: | --- | --- |" + (" --- |" if args.fit else ""))
    for name in sets:
        cells = []
        for norm in ("none", "center"):
            dest = out / f"probe-{name}-{norm}"
            subprocess.run([str(BIN / "seqtrain"), "probe", "--task", "all", "--fold", "0",
                            "--store", str(out / "store.zarr"), "--features", name,
                            "--video-norm", norm, "--out", str(dest)],
                           check=True, capture_output=True)
            cells.append(_scores(dest))
        if args.fit:
            dest = out / f"fit-{name}"
            subprocess.run([str(BIN / "seqtrain"), "fit", "--task", "all", "--fold", "0",
                            "--store", str(out / "store.zarr"), "--features", name,
                            "--out", str(dest), *FIT_FLAGS], check=True, capture_output=True)
            cells.append(_scores(dest))
        dim = store.feature_info(name).dim
        print(f"| {name} | {dim} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
