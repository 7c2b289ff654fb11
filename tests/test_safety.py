"""Nothing untrusted is executed, nothing escapes the store, nothing is downloaded.

- every ``torch.load(`` in the library passes ``weights_only=True`` (AST check);
- encoder and seqtrain checkpoints round-trip with pickle switched off (safetensors + JSON), and a
  booby-trapped resume state is refused without running its payload;
- video names are attributes only: a malicious name is rejected by the Aff-Wild2 reader, the
  catalog builder and the writer, and no file is ever written outside the store;
- a tiny encoder builds, saves, loads and encodes with every non-loopback connection refused.

The local Ray head binding loopback only is proven by tests/test_raylocal.py
(``test_every_socket_of_the_head_listens_on_loopback_only``), not repeated here.
"""

from __future__ import annotations

import ast
import pickle
import socket
from pathlib import Path

import numpy as np
import pytest
import torch
import torch._dynamo  # noqa: F401  (imported before no_pickle patches pickle: it pickles at import)

import encoders.checkpoint  # noqa: F401
import seqtrain.checkpoint  # noqa: F401

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("featurestore", "trainkit", "encoders", "seqtrain", "jobs")


def torch_load_calls() -> list[tuple[Path, int, bool]]:
    """(file, line, has weights_only=True) for every ``torch.load(...)`` call in the packages."""
    found = []
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            tree = ast.parse(path.read_text(), filename=str(path))
            for node in ast.walk(tree):
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr == "load" and isinstance(node.func.value, ast.Name)
                        and node.func.value.id == "torch"):
                    safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant)
                               and k.value.value is True for k in node.keywords)
                    found.append((path.relative_to(REPO), node.lineno, safe))
    return found


def test_every_torch_load_is_weights_only():
    calls = torch_load_calls()
    assert calls, "the AST scan found no torch.load at all: the scan itself is broken"
    unsafe = [f"{p}:{line}" for p, line, safe in calls if not safe]
    assert unsafe == [], f"torch.load without weights_only=True: {unsafe}"
    # the scan must also see through aliases: nobody imports pickle to load things either
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            text = path.read_text()
            assert "pickle.load" not in text and "import dill" not in text, path


@pytest.fixture
def no_pickle(monkeypatch):
    """Any unpickling while active fails the test."""
    def refuse(*args, **kwargs):
        raise AssertionError("something unpickled")
    for name in ("load", "loads"):
        monkeypatch.setattr(pickle, name, refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    yield


def test_encoder_checkpoint_round_trips_without_pickle(tmp_path, no_pickle):
    from encoders.checkpoint import load_checkpoint, save_checkpoint
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset

    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    model = MaskedAutoencoder(cfg).eval()
    save_checkpoint(tmp_path / "ck", model, cfg, {"note": "x"})
    assert sorted(p.suffix for p in (tmp_path / "ck").iterdir()) == [".json", ".safetensors"]
    back, cfg2, meta = load_checkpoint(tmp_path / "ck")
    assert cfg2 == cfg and meta["note"] == "x"
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


def test_seqtrain_best_checkpoint_round_trips_without_pickle(tmp_path, no_pickle):
    from seqtrain.checkpoint import load_model, save_best
    from seqtrain.config import FitConfig
    from seqtrain.model import SeqModel

    fit_cfg = FitConfig.from_flat(task="va", preset="tiny", window=16, stride=8)
    model = SeqModel(fit_cfg.model_config(16, 2))
    save_best(tmp_path / "best", model, fit_cfg, {"epoch": 3})
    assert sorted(p.suffix for p in (tmp_path / "best").iterdir()) == [".json", ".safetensors"]
    back, cfg2, meta = load_model(tmp_path / "best")
    assert cfg2 == fit_cfg and meta == {"epoch": 3}
    for (k, a), (_, b) in zip(model.state_dict().items(), back.state_dict().items(), strict=True):
        assert torch.equal(a, b), k


class _Payload:
    """Unpickling this would create a marker file: proof that code ran."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("loader", ["trainkit.state:load_train_state"])  # every loop's resume
def test_booby_trapped_resume_state_is_refused_without_running_it(tmp_path, loader):
    import importlib

    module, name = loader.split(":")
    load = getattr(importlib.import_module(module), name)
    marker = tmp_path / "pwned"
    path = tmp_path / "state.pt"
    torch.save({"model": {}, "evil": _Payload(str(marker))}, path)
    with pytest.raises(pickle.UnpicklingError):
        load(path)
    assert not marker.exists()


EVIL_NAMES = ["../escape", "a/../../b", "..", "/etc/passwd", "sub/dir", "back\\slash", ".hidden"]


def test_malicious_video_names_are_rejected_by_the_affwild2_reader(tmp_path):
    from featurestore._affwild2_scan import check_video_name
    from featurestore.errors import DataFormatError

    for name in EVIL_NAMES:
        with pytest.raises(DataFormatError, match="invalid video name"):
            check_video_name(tmp_path / "list.txt", 3, name)
    check_video_name(tmp_path / "list.txt", 3, "10-60-1280x720_left")


@pytest.mark.parametrize("name", EVIL_NAMES)
def test_malicious_video_names_never_reach_a_store(tmp_path, name):
    from featurestore.ingest import VideoRecord, create_store

    good = VideoRecord("ok", "ok", 4, np.ones(4, bool), {"va": "train"}, {})
    with pytest.raises(ValueError, match="video name"):
        create_store(tmp_path / "s.zarr", [good, VideoRecord(name, name, 4, np.ones(4, bool),
                                                              {"va": "train"}, {})])
    assert not (tmp_path / "s.zarr").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no temp folder left either


def test_a_store_holding_a_malicious_name_is_refused_on_open(tmp_path):
    import zarr

    import featurestore
    from featurestore.errors import StoreError
    from featurestore.ingest import VideoRecord, create_store

    path = tmp_path / "s.zarr"
    create_store(path, [VideoRecord("v1", "v1", 3, np.ones(3, bool), {"va": "train"}, {})])
    zarr.open_group(str(path), mode="r+").attrs["videos"] = ["../../etc/x"]  # crafted elsewhere
    with pytest.raises(StoreError, match=r"s\.zarr.*video name '\.\./\.\./etc/x' is invalid"):
        featurestore.open(path)


def test_writer_rejects_unknown_names_and_writes_only_inside_the_store(tmp_path):
    import featurestore
    from featurestore.errors import FeatureValidationError
    from featurestore.ingest import VideoRecord, create_store

    (tmp_path / "inside").mkdir()
    path = tmp_path / "inside" / "s.zarr"
    create_store(path, [VideoRecord("v1", "v1", 6, np.ones(6, bool), {"va": "train"}, {})])
    before = {p for p in tmp_path.rglob("*") if "s.zarr" not in p.parts}
    writer = featurestore.open(path, "a").create_feature_set("f", 4)
    for name in EVIL_NAMES:
        with pytest.raises(FeatureValidationError, match="unknown video"):
            writer.write_video(name, np.zeros((6, 4), np.float32))
    assert writer.write_video("v1", np.ones((6, 4), np.float32))
    after = {p for p in tmp_path.rglob("*") if "s.zarr" not in p.parts}
    assert after == before  # nothing created beside the store
    assert not any("v1" in p.name for p in path.rglob("*"))  # names are never paths


@pytest.fixture
def loopback_only(monkeypatch):
    """Refuse every connection to an address other than 127.0.0.1 / ::1 / a unix socket."""
    attempts: list[object] = []
    real = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else None
        if host is not None and host not in ("127.0.0.1", "::1", "localhost"):
            attempts.append(address)
            raise OSError(f"test: network access to {address!r} blocked")
        return real(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", lambda self, a: connect(self, a) or 0)
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)  # offline flags would hide a download attempt
    yield attempts


def test_tiny_encoder_builds_saves_loads_and_encodes_offline(tmp_path, loopback_only):
    from encoders.checkpoint import save_checkpoint
    from encoders.encode import FrameEncoder
    from encoders.finetune import ExprClassifier
    from encoders.mae import MaskedAutoencoder
    from encoders.presets import get_preset

    torch.manual_seed(0)
    cfg = get_preset("tiny", img_size=32)
    mae = MaskedAutoencoder(cfg)
    loss, pred, mask = mae(torch.rand(2, 3, 32, 32))  # (N, 3, H, W) -> loss, (N, L, p*p*3), (N, L)
    assert torch.isfinite(loss)
    ExprClassifier(cfg, 8, 0.0)(torch.rand(1, 3, 32, 32))
    save_checkpoint(tmp_path / "ck", mae, cfg, {})
    enc = FrameEncoder(tmp_path / "ck", batch_size=2)
    out = enc.encode_images(np.zeros((3, 32, 32, 3), np.uint8))  # (N, D)
    assert out.shape == (3, enc.dim) and np.isfinite(out).all()
    assert loopback_only == []
    with pytest.raises(OSError, match="blocked"):  # the guard itself works
        socket.create_connection(("192.0.2.1", 80), timeout=1)


def test_no_pretrained_weights_are_requested_anywhere():
    hits = []
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            for i, line in enumerate(path.read_text().splitlines(), 1):
                if "pretrained=True" in line.replace(" ", "") or "from_pretrained(" in line:
                    hits.append(f"{path.relative_to(REPO)}:{i}")
    assert hits == []
