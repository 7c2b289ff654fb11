"""JPEG decoders side by side on the same 112x112 face crops (one thread each).

    .venv/bin/python bench/bench_decode.py [--frames 1200] [--rounds 5] [--size 56]

Baseline, measured in the same run: PIL (``featurestore.frames.decode_jpeg``, what the project
used before). Each decoder of ``encoders.jpeg`` that loads here decodes every frame once per
round; rounds are interleaved finely (chunks of 50 frames, every decoder in turn, rotating order) and the median per decoder is
printed with its ratio to PIL, the max |pixel difference| to PIL, and the load average.
``--size`` also times DCT-domain reduction (``reduce=True``) for a model input of that size.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def frames(n: int) -> list[bytes]:
    from featurestore.frames import open_frames
    from featurestore.synth import SynthConfig, generate

    with tempfile.TemporaryDirectory(prefix="bench-decode-") as tmp:
        videos = max(1, n // 300)
        generate(Path(tmp), SynthConfig(videos=videos, frames=-(-n // videos), faces=0,
                                        test_videos=0), progress=False)  # fmt: skip
        src = open_frames(Path(tmp) / "affwild2")
        blobs = [src.read_bytes(v, int(k)) for v in src.videos() for k in src.frame_numbers(v)]
    return blobs[:n]


def main() -> None:
    from encoders.jpeg import ORDER, make_decoder

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=1200)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size", type=int, default=56, help="model input for the reduce=True rows")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    blobs = frames(args.frames)
    wheres = [f"f{i}" for i in range(len(blobs))]
    decoders = {}
    for name in ORDER:
        try:
            decoders[name] = make_decoder(name)
        except ValueError as err:
            print(f"skipped {name}: {err}")
    for name in ("pil", "simplejpeg", "turbojpeg"):
        if name in decoders:
            decoders[f"{name} reduce->{args.size}"] = make_decoder(name, reduce=True)
    ref = decoders["pil"].decode(blobs, wheres)
    shape = ref[0].shape
    times = {k: [] for k in decoders}
    loads = []
    names = list(decoders)
    step = 50  # fine interleaving: every decoder sees the same load, chunk by chunk
    for r in range(args.rounds):
        loads.append(os.getloadavg()[0])
        spent = dict.fromkeys(names, 0.0)
        for c, i in enumerate(range(0, len(blobs), step)):
            order = names[(r + c) % len(names):] + names[:(r + c) % len(names)]  # rotate
            for name in order:
                size = args.size if "reduce" in name else None
                t0 = time.perf_counter()
                decoders[name].decode(blobs[i:i + step], wheres[i:i + step], size)
                spent[name] += time.perf_counter() - t0
        for name in names:
            times[name].append(spent[name])
    base = float(np.median(times["pil"]))
    print(f"{len(blobs)} synthetic crops {shape}, mean {np.mean([len(b) for b in blobs]):.0f} "
          f"bytes, {args.rounds} interleaved rounds (medians), 1 thread, load average "
          f"{min(loads):.1f}-{max(loads):.1f}")  # fmt: skip
    print("| decoder | frames/s | us/frame | speed vs PIL | max abs px diff vs PIL |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, dec in decoders.items():
        med = float(np.median(times[name]))
        if "reduce" in name:
            diff = "n/a (scaled)"
        else:
            out = dec.decode(blobs, wheres)
            diff = str(max(int(np.abs(a.astype(int) - b.astype(int)).max())
                           for a, b in zip(out, ref, strict=True)))  # fmt: skip
        print(f"| {name} | {len(blobs) / med:,.0f} | {1e6 * med / len(blobs):.0f} | "
              f"{base / med:.2f}x | {diff} |")  # fmt: skip


if __name__ == "__main__":
    main()
