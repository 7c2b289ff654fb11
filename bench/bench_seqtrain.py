"""Sequence-trainer data path: store bulk load + WindowDataset + DataLoader vs tensors in memory.

Prints (1) bulk load time of the fold from the Zarr store, (2) windows/s served by the dataset,
(3) training step time fed by the DataLoader vs the same steps on batches already in memory,
and the data wait as % of the step time (target <= 5%). Baseline = in-memory batches, same run.

    .venv/bin/python bench/bench_seqtrain.py [--preset paper|tiny] [--steps N]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
from torch.utils.data import DataLoader

import featurestore
from seqtrain.config import model_config
from seqtrain.data import WindowDataset, load_videos
from seqtrain.model import SeqModel
from seqtrain.synthetic import build_store, synth_videos
from seqtrain.tasks import get_task


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--videos", type=int, default=12)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch", type=int, default=8)
    args = ap.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        vids = synth_videos(args.videos, dim=args.dim, min_frames=1000, max_frames=2000, seed=0)
        build_store(f"{tmp}/s.zarr", vids, {v.name: "train" for v in vids})
        store = featurestore.open(f"{tmp}/s.zarr")
        t0 = time.perf_counter()
        seqs = load_videos(store, "synth", store.videos(), "va")
        load_s = time.perf_counter() - t0
        frames = sum(s.num_frames for s in seqs)
        print(f"bulk load: {frames} frames x {args.dim} in {load_s:.3f}s ({frames / load_s:,.0f} frames/s)")
        ds = WindowDataset(seqs, 300, 200, jitter=True)
        t0 = time.perf_counter()
        for _ in range(3):
            for i in range(len(ds)):
                ds[i]
        wps = 3 * len(ds) / (time.perf_counter() - t0)
        print(f"dataset: {wps:,.0f} windows/s (window 300, dim {args.dim})")
        task = get_task("va")
        model = SeqModel(model_config(args.preset, in_dim=args.dim, out_dim=2))
        opt = torch.optim.AdamW(model.parameters(), lr=3e-5)

        def step(batch):
            feats, labels, valid, pad = batch
            loss = task.loss(model(feats, pad), labels, valid)  # (B, w, 2) -> ()
            opt.zero_grad()
            loss.backward()
            opt.step()

        loader = DataLoader(ds, batch_size=args.batch, shuffle=True)
        it = iter(loader)
        cached = [next(it) for _ in range(args.steps)]
        step(cached[0])  # warm-up
        t0 = time.perf_counter()
        for b in cached:
            step(b)
        mem_s = (time.perf_counter() - t0) / args.steps
        it = iter(loader)
        wait = total = 0.0
        for _ in range(args.steps):
            t0 = time.perf_counter()
            b = next(it)
            t1 = time.perf_counter()
            step(b)
            wait += t1 - t0
            total += time.perf_counter() - t0
        print(f"step ({args.preset}, batch {args.batch}): in-memory {mem_s * 1e3:.1f} ms, "
              f"from store {total / args.steps * 1e3:.1f} ms (ratio {total / args.steps / mem_s:.3f}), "
              f"data wait {100 * wait / total:.2f}% of the step")


if __name__ == "__main__":
    main()
