"""Data wait as a share of step time in MAE pretraining and EXPR fine-tuning (target <= 5%).

    .venv/bin/python bench/bench_datawait.py [--presets tiny,vit_base] [--steps 6]

Runs the real loops (`encoders.pretrain.pretrain`, `encoders.finetune.finetune`, their DataLoaders
with the configs' default worker count, the JPEG decoder of `encoders.jpeg` and the augmentations)
on synthetic face sets / Aff-Wild2 frames at 112 px, and prints the share of each epoch's
iteration time spent in ``next(loader)`` (`encoders.training.DataWait`, also logged per epoch in
every run's history). Epoch 1 includes the DataLoader workers' first batches; epoch 2 is the
steady state. Wait and step run in the same process at the same time, so the share is the
measure and its own baseline; the load average is printed beside each figure.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BATCH = {"tiny": 64, "vit_base": 16}  # vit_base: a small batch keeps a CPU step in seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--presets", default="tiny,vit_base")
    ap.add_argument("--steps", type=int, default=6, help="steps per epoch (2 epochs)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    import torch

    from encoders.finetune import FinetuneConfig, finetune
    from encoders.jpeg import make_decoder
    from encoders.pretrain import PretrainConfig, pretrain
    from featurestore.pack import pack_frames
    from featurestore.synth import SynthConfig, generate

    torch.set_num_threads(args.threads)
    print(f"JPEG decoder {make_decoder().name}, {args.threads} torch threads, device "
          f"{args.device}, {args.steps} steps per epoch")
    print("| stage | preset | batch | DataLoader workers | epoch 1 data wait | epoch 2 data wait "
          "(steady) | step s (epoch 2) | load average |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with tempfile.TemporaryDirectory(prefix="bench-datawait-") as tmp:
        root = Path(tmp)
        batch_max = max(BATCH.values())
        generate(root / "data", SynthConfig(videos=6, frames=max(120, args.steps * batch_max // 3),
                                            faces=2 * args.steps * batch_max, test_videos=0),
                 progress=False)  # fmt: skip
        pack_frames(root / "data" / "affwild2", root / "pack", progress=False)
        for preset in args.presets.split(","):
            b = BATCH[preset]
            runs = {
                "pretrain": lambda p=preset, b=b: pretrain(PretrainConfig.for_preset(
                    p, faces=str(root / "data" / "faces"), out=str(root / f"pt-{p}"), epochs=2,
                    batch_size=b, max_steps=args.steps, warmup_epochs=1, device=args.device,
                    recon_images=2))["history"],  # fmt: skip
                "finetune": lambda p=preset, b=b: finetune(FinetuneConfig.for_preset(
                    p, affwild2=str(root / "data" / "affwild2"), frames=str(root / "pack"),
                    out=str(root / f"ft-{p}"), epochs=2, batch_size=b, max_steps=args.steps,
                    max_val_frames_per_video=8, warmup_epochs=1, device=args.device))["history"],
            }  # fmt: skip
            for stage, run in runs.items():
                load = os.getloadavg()[0]
                hist = run()
                workers = (PretrainConfig if stage == "pretrain" else FinetuneConfig).num_workers
                step = hist[1]["step_s"]
                print(f"| {stage} | {preset} | {b} | {workers} | {100 * hist[0]['data_wait']:.1f}% "
                      f"| {100 * hist[1]['data_wait']:.1f}% | {step:.2f} | "
                      f"{load:.1f}-{os.getloadavg()[0]:.1f} |", flush=True)


if __name__ == "__main__":
    main()
