"""MAE training step (75% masking) vs a plain forward+backward of the same ViT on all patches.

    .venv/bin/python bench/bench_encoders.py [--threads 2] [--presets tiny,vit_base]

Baseline, measured in the same run with the same batch and threads: timm's VisionTransformer
with the encoder's width/depth/heads (no decoder), forward on every patch + backward of the
mean pooled feature. The MAE step is forward (encoder on the 25% kept patches + decoder) +
masked-pixel loss + backward. Measurements are interleaved (baseline, MAE, baseline, ...) and the
fastest of each is reported (the least disturbed by other processes on a shared machine). Prints a markdown table.
"""

from __future__ import annotations

import argparse
import time

import torch
from timm.models.vision_transformer import VisionTransformer

from encoders.mae import MaskedAutoencoder
from encoders.presets import get_preset

SETTINGS = {"tiny": dict(batch=64, repeats=5), "vit_base": dict(batch=8, repeats=5)}


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def bench_preset(name: str, img_size: int, batch: int, repeats: int) -> dict:
    torch.manual_seed(0)
    cfg = get_preset(name, img_size=img_size)
    mae = MaskedAutoencoder(cfg).train()
    vit = VisionTransformer(img_size=img_size, patch_size=cfg.patch_size, embed_dim=cfg.embed_dim,
                            depth=cfg.depth, num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio,
                            num_classes=0, global_pool="avg").train()
    imgs = torch.randn(batch, 3, img_size, img_size)  # (B, 3, S, S)

    def mae_step() -> None:
        mae.zero_grad(set_to_none=True)
        loss, _, _ = mae(imgs)
        loss.backward()

    def vit_step() -> None:
        vit.zero_grad(set_to_none=True)
        vit(imgs).mean().backward()  # (B, D) pooled features

    mae_step(), vit_step()  # warm-up
    t_mae, t_vit = [], []
    for _ in range(repeats):
        t_vit.append(_timed(vit_step))
        t_mae.append(_timed(mae_step))
    m_vit, m_mae = min(t_vit), min(t_mae)
    return {"preset": name, "img": img_size, "batch": batch, "patches": cfg.num_patches,
            "vit_ms": 1e3 * m_vit, "mae_ms": 1e3 * m_mae, "speedup": m_vit / m_mae,
            "mae_img_s": batch / m_mae}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--img-size", type=int, default=112)
    ap.add_argument("--presets", default="tiny,vit_base")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, img {args.img_size}, fp32 CPU")
    print("| preset | batch | patches | plain ViT fwd+bwd, all patches (baseline) ms | "
          "MAE step (mask 0.75) ms | speed-up (baseline / MAE) | MAE images/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name in args.presets.split(","):
        r = bench_preset(name, args.img_size, **SETTINGS[name])
        print(f"| {r['preset']} | {r['batch']} | {r['patches']} | {r['vit_ms']:.0f} | "
              f"{r['mae_ms']:.0f} | {r['speedup']:.2f}x | {r['mae_img_s']:.1f} |", flush=True)


if __name__ == "__main__":
    main()
