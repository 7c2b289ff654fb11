"""Short fits on a real feature store of synthetic features that encode the labels."""

import json

import numpy as np
import pytest
import torch

import featurestore
from seqtrain.config import FitConfig
from seqtrain.trainer import fit

torch.set_num_threads(1)
VAL_SOURCES = {"vid001", "vid005", "vid007", "vid010"}
LR = {"va": 3e-3, "expr": 3e-3, "au": 1e-2}
EPOCHS = {"va": 6, "expr": 6, "au": 10}


@pytest.fixture(scope="module")
def store_path(synth_seq_store):
    return synth_seq_store(16, seed=0, val=VAL_SOURCES)


def cfg_for(task, store_path, out, **kw):
    base = dict(task=task, store=store_path, features="synth", out=str(out), preset="tiny",
                window=32, stride=16, lr=LR[task], batch_size=8, epochs=EPOCHS[task], patience=10, dropout=0.1)
    return FitConfig.from_flat(**{**base, **kw})


def chance(task, store):
    """Score of the best label-blind guess on the validation frames."""
    vals = [store.labels(task, v) for v in store.videos(split="val", task=task)]
    y = np.concatenate([a[m] for a, m in vals])
    if task == "expr":  # random guesses drawn from the class prior: F1_c = p_c; macro = sum p_c / 8
        return max(1 / 8, float(np.bincount(y, minlength=8).max() / len(y)) * 2 / 8)
    p = y.mean(0)  # au: predicting "active" everywhere gives F1 = 2p / (1 + p)
    return float(np.mean(2 * p / (1 + p)))


@pytest.mark.parametrize("task", ["va", "expr", "au"])
def test_short_fit_beats_chance(task, store_path, tmp_path):
    res = fit(cfg_for(task, store_path, tmp_path / task))
    score = res["val"]["score"]
    if task == "va":
        assert score > 0.3
    else:
        assert score > chance(task, featurestore.open(store_path)) + 0.05
    saved = json.loads((tmp_path / task / "metrics.json").read_text())
    assert saved["task"] == task and saved["fold"] == 0 and saved["variant"] == "full"
    assert saved["val"]["score"] == pytest.approx(score)
    assert {"history", "best_epoch", "config", "features"} <= set(saved)
    assert (tmp_path / task / "best" / "model.safetensors").is_file()
    assert (tmp_path / task / "curve.png").stat().st_size > 0
    # TensorBoard event files in the run folder: per-step loss and LR, per-epoch score
    from conftest import tb_scalars

    tb = tb_scalars(tmp_path / task)
    assert [s for s, _ in tb["epoch/score"]] == [h["epoch"] for h in saved["history"]]
    assert [v for _, v in tb["epoch/score"]] == pytest.approx([h["score"] for h in saved["history"]])
    assert len(tb["train/loss"]) == len(tb["train/lr/group_0"]) > len(saved["history"])


class Interrupt(Exception):
    pass


def test_resume_after_interruption_equals_uninterrupted(store_path, tmp_path):
    full = fit(cfg_for("va", store_path, tmp_path / "a", epochs=3))

    def die(epoch):
        if epoch == 1:
            raise Interrupt

    cfg = cfg_for("va", store_path, tmp_path / "b", epochs=3)
    with pytest.raises(Interrupt):
        fit(cfg, on_epoch=die)
    assert not json.loads((tmp_path / "b" / "metrics.json").read_text())["finished"]
    resumed = fit(cfg)
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["val"] == pytest.approx(full["val"])
    assert [h["loss"] for h in resumed["history"]] == pytest.approx([h["loss"] for h in full["history"]])
    # the same final weights and the same best checkpoint, bit for bit
    from seqtrain.checkpoint import load_model
    from trainkit.state import load_train_state

    final_a, final_b = (load_train_state(tmp_path / r / "state.pt")["model"] for r in "ab")
    assert final_a.keys() == final_b.keys()
    assert all(torch.equal(final_a[k], final_b[k]) for k in final_a)
    best_a, best_b = (load_model(tmp_path / r)[0].state_dict() for r in "ab")
    assert all(torch.equal(best_a[k], best_b[k]) for k in best_a)
    # a finished run returns its metrics without retraining
    mtime = (tmp_path / "b" / "state.pt").stat().st_mtime_ns
    again = fit(cfg)
    assert again["val"] == resumed["val"]
    assert (tmp_path / "b" / "state.pt").stat().st_mtime_ns == mtime


def test_a_run_of_a_changed_preset_is_neither_returned_nor_resumed(store_path, tmp_path, monkeypatch):
    """The same FitConfig names the same preset, but a preset's sizes can change between
    versions: a finished run of the old network must not pass for a run of the new one."""
    from seqtrain.config import MODEL_PRESETS

    cfg = cfg_for("va", store_path, tmp_path / "r", epochs=1)
    fit(cfg)
    assert fit(cfg)["finished"]  # unchanged preset: returned as it is
    monkeypatch.setitem(MODEL_PRESETS, "tiny", {**MODEL_PRESETS["tiny"], "dilations": (1,) * 5})
    with pytest.raises(ValueError, match="another network"):
        fit(cfg)


def test_fold_k_and_ablation_variant(store_path, tmp_path):
    res = fit(cfg_for("expr", store_path, tmp_path / "f2", fold=2, epochs=1, use_tcn=False))
    assert res["fold"] == 2 and res["variant"] == "no-tcn"
    assert 0.0 <= res["val"]["score"] <= 1.0


def test_bad_fit_config_names_field():
    with pytest.raises(ValueError, match="stride"):
        FitConfig.from_flat(task="va", window=10, stride=20)
    with pytest.raises(ValueError, match="task"):
        FitConfig(task="valence")


def test_a_copied_run_folder_is_the_same_run(store_path, tmp_path):
    """``out`` says where a run is, not what it is: a finished run copied to another folder is
    returned there without training (the demo's ablation reuses main's fold-0 runs so); a copy
    under another config is refused, not overwritten."""
    import shutil

    from seqtrain.trainer import finished_run

    first = fit(cfg_for("va", store_path, tmp_path / "a", epochs=1))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    mtime = (tmp_path / "b" / "state.pt").stat().st_mtime_ns
    cfg = cfg_for("va", store_path, tmp_path / "b", epochs=1)
    assert finished_run(cfg) == first
    assert fit(cfg)["val"] == first["val"]
    assert (tmp_path / "b" / "state.pt").stat().st_mtime_ns == mtime
    other = cfg_for("va", store_path, tmp_path / "b", epochs=1, seed=1)
    assert finished_run(other) is None
    with pytest.raises(ValueError, match="another config"):
        fit(other)
