"""trainkit.checkpoint, the one checkpoint format: version 2 written atomically and verified on
load, and the layouts written before it (encoders version 1, seqtrain's unversioned one) still
loading, with the same weights sha256 the feature store records as an extraction's origin."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from encoders.checkpoint import checkpoint_sha256, load_checkpoint, save_checkpoint
from encoders.encode import encoder_provenance
from encoders.mae import ExprClassifier, MaskedAutoencoder
from encoders.presets import get_preset
from featurestore.provenance import check_same_origin
from seqtrain.checkpoint import load_model, save_best
from seqtrain.config import FitConfig, ModelConfig
from seqtrain.model import SeqModel
from trainkit import checkpoint as ckpt

torch.set_num_threads(1)


# --- the writers of the layouts before format 2, byte for byte as the code of that time wrote
# them (encoders/checkpoint.py FORMAT_VERSION 1 and seqtrain/checkpoint.py save_best) ---

def _old_weights(directory: Path, model: torch.nn.Module) -> str:
    directory.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(directory / "model.safetensors"))
    return hashlib.sha256((directory / "model.safetensors").read_bytes()).hexdigest()


def write_encoder_v1(directory: Path, model: torch.nn.Module, cfg, meta: dict) -> None:
    sha = _old_weights(directory, model)
    stage = "finetune" if isinstance(model, ExprClassifier) else "pretrain"
    meta = dict(meta)
    if stage == "finetune":
        meta.setdefault("num_classes", model.head[-1].out_features)
        meta.setdefault("dropout", getattr(model.head[0], "p", 0.0))
    doc = {"format_version": 1, "stage": stage, "mae": cfg.to_dict(), "meta": meta,
           "weights_sha256": sha}
    (directory / "config.json").write_text(json.dumps(doc, indent=2, sort_keys=True))


def write_seqtrain_v0(directory: Path, model: SeqModel, fit_cfg: FitConfig, meta: dict) -> None:
    _old_weights(directory, model)
    flat = {k: v for part in fit_cfg.to_dict().values()
            for k, v in (part.items() if isinstance(part, dict) else ())}
    flat.update({k: v for k, v in fit_cfg.to_dict().items() if not isinstance(v, dict)})
    doc = {"fit": flat, "model": model.cfg.to_dict(), "meta": meta}  # FitConfig was flat then
    (directory / "config.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> None:
    for (k, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), k


def _seq_model() -> tuple[SeqModel, FitConfig]:
    torch.manual_seed(0)
    fit_cfg = FitConfig.from_flat(task="va", preset="tiny", window=16, stride=8)
    return SeqModel(fit_cfg.model_config(16, 2)), fit_cfg


def test_format_2_document(tmp_path):
    cfg = get_preset("tiny", img_size=32)
    save_checkpoint(tmp_path / "ck", ExprClassifier(cfg, 8, 0.1), cfg, {"epoch": 2})
    doc = json.loads((tmp_path / "ck" / "config.json").read_text())
    assert doc["format_version"] == 2 and doc["kind"] == "expr_classifier"
    assert doc["config"] == {"mae": cfg.to_dict(), "num_classes": 8, "dropout": 0.1}
    assert doc["provenance"] == {"epoch": 2} and doc["weights"] == "model.safetensors"
    assert doc["weights_sha256"] == checkpoint_sha256(tmp_path / "ck")
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json",
                                                                   "model.safetensors"]


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_encoder_version_1_loads_with_the_same_provenance(tmp_path, stage):
    torch.manual_seed(1)
    cfg = get_preset("tiny", img_size=32)
    model = MaskedAutoencoder(cfg) if stage == "pretrain" else ExprClassifier(cfg, 8, 0.2)
    write_encoder_v1(tmp_path / "old", model, cfg, {"epoch": 4})
    save_checkpoint(tmp_path / "new", model, cfg, {"epoch": 4})

    old, cfg_old, meta_old = load_checkpoint(tmp_path / "old")
    new, cfg_new, meta_new = load_checkpoint(tmp_path / "new")
    assert type(old) is type(model) and cfg_old == cfg_new == cfg
    assert meta_old == meta_new and meta_old["stage"] == stage and meta_old["epoch"] == 4
    if stage == "finetune":
        assert meta_old["num_classes"] == 8 and meta_old["dropout"] == 0.2
    _same_weights(old, model)
    assert ckpt.read(tmp_path / "old").format_version == 1
    # what the feature store records and compares: identical, so an extraction started with the
    # old checkpoint continues with the same model saved in the new format
    prov_old, prov_new = encoder_provenance(tmp_path / "old"), encoder_provenance(tmp_path / "new")
    assert prov_old["checkpoint_sha256"] == prov_new["checkpoint_sha256"]
    check_same_origin("mae", {"dim": cfg.embed_dim, "dtype": "float16", "fill": "zeros",
                              "provenance": prov_old}, cfg.embed_dim, "float16", "zeros", prov_new)


def test_seqtrain_unversioned_layout_loads(tmp_path):
    model, fit_cfg = _seq_model()
    write_seqtrain_v0(tmp_path / "run" / "best", model, fit_cfg, {"epoch": 3, "val": {"score": 0.5}})
    back, cfg2, meta = load_model(tmp_path / "run")  # a run folder: its best/
    assert cfg2 == fit_cfg and meta == {"epoch": 3, "val": {"score": 0.5}}
    _same_weights(back, model)
    assert ckpt.read(tmp_path / "run" / "best").kind == "seqmodel"


def test_seqtrain_format_2_round_trip(tmp_path):
    model, fit_cfg = _seq_model()
    save_best(tmp_path / "best", model, fit_cfg, {"epoch": 3})
    found = ckpt.read(tmp_path / "best")
    assert found.kind == "seqmodel" and ModelConfig.from_dict(found.config) == model.cfg
    assert found.provenance["epoch"] == 3 and FitConfig.from_dict(found.provenance["fit"]) == fit_cfg
    back, cfg2, meta = load_model(tmp_path / "best")
    assert cfg2 == fit_cfg and meta == {"epoch": 3}
    _same_weights(back, model)


@pytest.mark.parametrize("writer", ["new", "old_seqtrain"])
def test_truncated_weights_are_an_error_naming_the_file(tmp_path, writer):
    model, fit_cfg = _seq_model()
    folder = tmp_path / "best"
    if writer == "new":
        save_best(folder, model, fit_cfg, {})
    else:
        write_seqtrain_v0(folder, model, fit_cfg, {})  # no sha256 recorded: safetensors notices
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(ckpt.CheckpointError, match=str(weights)):
        load_model(folder)


def test_other_kinds_and_unknown_formats_are_refused(tmp_path):
    model, fit_cfg = _seq_model()
    save_best(tmp_path / "seq", model, fit_cfg, {})
    with pytest.raises(ckpt.CheckpointError, match="'seqmodel' checkpoint, not an encoder"):
        load_checkpoint(tmp_path / "seq")
    cfg = get_preset("tiny", img_size=32)
    save_checkpoint(tmp_path / "enc", MaskedAutoencoder(cfg), cfg)
    with pytest.raises(ckpt.CheckpointError, match="'mae' checkpoint, not a 'seqmodel'"):
        load_model(tmp_path / "enc")
    (tmp_path / "enc" / "config.json").write_text(json.dumps({"format_version": 9, "kind": "x"}))
    with pytest.raises(ckpt.CheckpointError, match="unknown checkpoint format"):
        ckpt.read(tmp_path / "enc")
    (tmp_path / "enc" / "config.json").write_text('{"format_version": 2, "kind"')
    with pytest.raises(ckpt.CheckpointError, match="config.json:1: invalid JSON"):
        ckpt.read(tmp_path / "enc")
