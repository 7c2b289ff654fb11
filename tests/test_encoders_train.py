"""MAE pretraining and EXPR fine-tuning loops on tiny synthetic data (CPU, a few seconds each)."""

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import f1_score
from torch.utils.data import TensorDataset

from encoders.checkpoint import load_checkpoint
from encoders.data import expr_frame_index, to_model_input
from encoders.finetune import FinetuneConfig, finetune
from encoders.mae import ExprClassifier, MaskedAutoencoder
from encoders.presets import TINY_PRESETS
from encoders.pretrain import PretrainConfig, plot_due, pretrain
from trainkit.schedule import warmup_cosine

torch.set_num_threads(1)


def drawn_faces(n: int, size: int = 32, seed: int = 0) -> np.ndarray:
    """(n, size, size, 3) uint8: a coloured disc on a plain background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    out = np.empty((n, size, size, 3), np.uint8)
    for i in range(n):
        cx, cy = rng.uniform(0.35, 0.65, 2) * size
        r = rng.uniform(0.2, 0.35) * size
        disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
        out[i] = np.where(disc, rng.integers(0, 256, 3), rng.integers(0, 256, 3))
    return out


def _pretrain_cfg(out, epochs):
    return PretrainConfig.for_preset("tiny", img_size=32, epochs=epochs, batch_size=16, lr=2e-3,
                                     warmup_epochs=1, num_workers=0, out=str(out), device="cpu")


def test_pretraining_lowers_loss_and_resumes(tmp_path):
    imgs = to_model_input(drawn_faces(64), 32)  # (64, 3, 32, 32)
    data = TensorDataset(imgs, torch.zeros(64, dtype=torch.long))
    first = pretrain(_pretrain_cfg(tmp_path, 3), dataset=data)
    assert [h["epoch"] for h in first["history"]] == [1, 2, 3]
    assert all(h["steps"] == 4 for h in first["history"])
    _, _, meta = load_checkpoint(first["checkpoint"])
    assert meta["epoch"] == 3
    # a second call with more epochs continues after epoch 3 (epochs 1-3 are not rerun)
    second = pretrain(_pretrain_cfg(tmp_path, 6), dataset=data)
    hist = second["history"]
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4, 5, 6]
    assert hist[:3] == first["history"]
    assert hist[-1]["loss"] < 0.8 * hist[0]["loss"]
    model, cfg, meta = load_checkpoint(second["checkpoint"])
    assert isinstance(model, MaskedAutoencoder) and meta["epoch"] == 6 and cfg.img_size == 32
    assert json.loads((tmp_path / "history.json").read_text()) == hist
    from conftest import tb_scalars  # both runs logged to TensorBoard in the run folder

    tb = tb_scalars(tmp_path)
    assert [s for s, _ in tb["epoch/loss"]] == [1, 2, 3, 4, 5, 6]
    assert [v for _, v in tb["epoch/loss"]] == pytest.approx([h["loss"] for h in hist])
    for key in ("loss_curve", "reconstruction"):
        assert open(second[key], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob(".*tmp"))  # atomic writes leave no temp files
    # a finished run is not restarted
    assert pretrain(_pretrain_cfg(tmp_path, 6), dataset=data)["history"] == hist


def test_pictures_are_redrawn_about_20_times_and_after_the_last_epoch():
    for epochs in (1, 6, 15, 60, 75, 500):
        due = [e for e in range(1, epochs + 1) if plot_due(e, epochs)]
        assert due[-1] == epochs
        assert min(epochs, 15) <= len(due) <= 21
    assert [e for e in range(1, 61) if plot_due(e, 60)] == list(range(3, 61, 3))


def test_warmup_cosine_schedule_has_no_jump():
    factors = [warmup_cosine(s, 3, 10) for s in range(12)]
    assert factors[:3] == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert all(a >= b for a, b in zip(factors[2:], factors[3:], strict=False))
    assert factors[10] == factors[11] == pytest.approx(0.0)


@pytest.mark.parametrize("field,value", [("epochs", 0), ("lr", 0.0), ("preset", "huge"),
                                         ("img_size", 40), ("max_steps", 0)])
def test_pretrain_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        PretrainConfig(**{field: value})


def test_pretrain_on_discovered_face_sets(tmp_path):
    facesets = pytest.importorskip("featurestore.facesets",
                                   reason="featurestore.facesets not written yet")
    from featurestore.synth import SynthConfig, generate

    generate(tmp_path / "syn", SynthConfig(videos=2, frames=20, faces=24, size=32), progress=False)
    assert facesets.discover_facesets(tmp_path / "syn" / "faces")
    cfg = PretrainConfig.for_preset("tiny", faces=str(tmp_path / "syn" / "faces"), img_size=32,
                                    epochs=1, batch_size=8, num_workers=0, out=str(tmp_path / "o"),
                                    device="cpu", max_steps=2)
    result = pretrain(cfg)
    assert result["history"][0]["steps"] == 2 and np.isfinite(result["final_loss"])


@pytest.fixture(scope="module")
def synth_affwild2(tmp_path_factory):
    from featurestore.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("ft") / "syn"
    generate(out, SynthConfig(videos=60, frames=20, faces=0, size=48, test_videos=0,
                              val_fraction=0.3, seed=1), progress=False)
    return out / "affwild2"


def test_finetuning_beats_chance_macro_f1(synth_affwild2, tmp_path):
    # The synthetic expressions are small mouth/brow changes and labels come in long runs per
    # video, so a from-scratch tiny ViT only just learns them in seconds: a fixed data seed and
    # class-balanced loss keep this deterministic (threads = 1) with a clear margin.
    cfg = FinetuneConfig.for_preset("tiny", affwild2=str(synth_affwild2), out=str(tmp_path),
                                    img_size=48, epochs=6, batch_size=32, lr=5e-4, dropout=0.0,
                                    num_workers=0, device="cpu", balanced_loss=True,
                                    max_val_frames_per_video=8, seed=1)
    result = finetune(cfg)
    _, _, _, y_val = expr_frame_index(synth_affwild2, "val", 8, seed=1)
    constant = max(f1_score(y_val, np.full_like(y_val, c), labels=range(8), average="macro",
                            zero_division=0) for c in range(8))
    prior = np.bincount(y_val, minlength=8) / len(y_val)
    uniform = float(np.sum(2 * prior / 8 / (prior + 1 / 8)) / 8)  # expected F1, random guesses
    assert result["best_macro_f1"] > max(constant, uniform)
    model, _, meta = load_checkpoint(result["best_checkpoint"])
    assert isinstance(model, ExprClassifier) and meta["stage"] == "finetune"
    assert meta["val_macro_f1"] == result["best_macro_f1"] and meta["num_classes"] == 8
    assert open(result["curves"], "rb").read(4) == b"\x89PNG"


def test_finetune_from_pretrained_checkpoint_reuses_encoder(synth_affwild2, tmp_path):
    torch.manual_seed(0)
    from encoders.checkpoint import save_checkpoint
    from encoders.presets import get_preset

    mae_cfg = get_preset("tiny", img_size=32)
    mae = MaskedAutoencoder(mae_cfg)
    save_checkpoint(tmp_path / "mae", mae, mae_cfg, {"epoch": 1})
    cfg = FinetuneConfig.for_preset("tiny", affwild2=str(synth_affwild2), out=str(tmp_path / "o"),
                                    pretrained=str(tmp_path / "mae"), epochs=1, lr=1e-9,
                                    warmup_epochs=0, num_workers=0, device="cpu",
                                    max_frames_per_video=2, max_val_frames_per_video=2)
    result = finetune(cfg)
    model, cfg2, _ = load_checkpoint(result["last_checkpoint"])
    assert cfg2.img_size == 32  # the architecture comes from the pretrained checkpoint
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():  # lr ~ 0: the encoder is still the pretrained one
        torch.testing.assert_close(model.embed(x), mae.embed(x), atol=1e-4, rtol=1e-4)


def test_finetune_job_without_ray(synth_affwild2, tmp_path):
    from click.testing import CliRunner

    from jobs.finetune import main

    args = ["--affwild2", str(synth_affwild2), "--out", str(tmp_path), "--img-size", "32",
            "--epochs", "1", "--num-workers", "0", "--device", "cpu", "--max-frames-per-video",
            "2", "--max-val-frames-per-video", "2", "--no-ray"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "best val macro F1" in result.output
    assert load_checkpoint(tmp_path / "best")[2]["epoch"] == 1
    first = json.loads((tmp_path / "history.json").read_text())["history"]
    args[args.index("--epochs") + 1] = "2"  # resume: only epoch 2 runs
    assert CliRunner().invoke(main, args).exit_code == 0
    history = json.loads((tmp_path / "history.json").read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and history[0] == first[0]
    assert load_checkpoint(tmp_path / "last")[2]["epoch"] == 2


@pytest.mark.ray
@pytest.mark.slow
def test_pretrain_job_under_ray_train(tmp_path, monkeypatch):
    """One Ray Train CPU worker on a fresh loopback instance runs the same pretrain()."""
    from PIL import Image

    from jobs.pretrain import run_ray_train

    faces = tmp_path / "faces"
    faces.mkdir()
    for i, img in enumerate(drawn_faces(8)):
        Image.fromarray(img).save(faces / f"face_{i}.png")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    cfg = PretrainConfig.for_preset("tiny", faces=str(faces), img_size=32, epochs=1, batch_size=4,
                                    num_workers=0, out=str(tmp_path / "out"), max_steps=2)
    history = run_ray_train("pretrain", cfg.to_dict(), cfg.out, 1, 1.0, None)
    assert [h["epoch"] for h in history] == [1] and history[0]["steps"] == 2
    _, _, meta = load_checkpoint(tmp_path / "out" / "checkpoint")
    assert meta["epoch"] == 1
    assert (tmp_path / "out" / "ray").is_dir()


@pytest.mark.parametrize("preset", sorted(TINY_PRESETS))
def test_every_tiny_preset_gets_the_cpu_schedules(preset):
    """tiny_p8 once got the paper's schedule (batch 1024, 40 warm-up epochs): a 15-epoch demo
    pretraining never left warm-up and fine-tuning started from an untrained encoder."""
    pre = PretrainConfig.for_preset(preset, epochs=15)
    assert (pre.batch_size, pre.lr, pre.warmup_epochs) == (64, 1.5e-3, 2)
    fine = FinetuneConfig.for_preset(preset)
    assert (fine.batch_size, fine.lr, fine.warmup_epochs) == (64, 1e-3, 1)
    assert PretrainConfig.for_preset("vit_base").warmup_epochs == 40  # the paper's run unchanged


def test_layer_decay_gives_lower_blocks_lower_learning_rates():
    from encoders.presets import get_preset
    from encoders.training import adamw, vit_layer_decay

    model = ExprClassifier(get_preset("tiny", img_size=32))
    opt = adamw(model, 1e-3, 0.05, lr_scale=vit_layer_decay(model.cfg.depth, 0.5))
    lr_of = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
    wd_of = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    named = dict(model.named_parameters())
    assert len(lr_of) == len(named)  # every parameter in exactly one group
    depth = model.cfg.depth
    assert lr_of[id(named["head.1.weight"])] == pytest.approx(1e-3)
    assert lr_of[id(named["encoder.norm.weight"])] == pytest.approx(1e-3)
    for i in range(depth):
        assert lr_of[id(named[f"encoder.blocks.{i}.attn.qkv.weight"])] == pytest.approx(
            1e-3 * 0.5 ** (depth - i))
    assert lr_of[id(named["encoder.patch_embed.proj.weight"])] == pytest.approx(
        1e-3 * 0.5 ** (depth + 1))
    assert wd_of[id(named["encoder.blocks.0.attn.qkv.bias"])] == 0.0
    assert wd_of[id(named["encoder.blocks.0.attn.qkv.weight"])] == 0.05
    plain = adamw(model, 1e-3, 0.05)  # no scale: the two historical groups at one LR
    assert [g["weight_decay"] for g in plain.param_groups] == [0.05, 0.0]
    assert {g["lr"] for g in plain.param_groups} == {1e-3}
