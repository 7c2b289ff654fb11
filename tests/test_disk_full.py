"""A disk that fills up during a store write, a frame pack or a checkpoint (a size-limited tmpfs
mounted for the test): a clear error naming what could not be written, nothing half-committed,
and the rerun after space is freed completes. Skipped where tmpfs cannot be mounted (not root,
no CAP_SYS_ADMIN, a container without mount rights): the reason is printed."""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from fixtures_affwild2 import va_rows, write_annotation, write_frames

import featurestore
from featurestore.errors import StoreError
from featurestore.ingest import VideoRecord, create_store
from featurestore.verify import verify


@pytest.fixture
def disk(tmp_path):
    """``resize(megabytes)`` on a tmpfs mounted at ``tmp_path/disk`` (1 MiB to start)."""
    where = tmp_path / "disk"
    where.mkdir()
    mount = shutil.which("mount")
    if mount is None or os.geteuid() != 0:
        pytest.skip("mounting a size-limited tmpfs needs root and mount(8)")
    res = subprocess.run([mount, "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(where)],
                         capture_output=True, text=True)
    if res.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip() or res.returncode}")

    def resize(mb: int) -> None:
        subprocess.run([mount, "-o", f"remount,size={mb}m", str(where)], check=True)

    resize.path = where
    try:
        yield resize
    finally:
        subprocess.run(["umount", "-l", str(where)], check=False)


def _filler(where: Path) -> Path:
    """Fill the disk: one file grown until the device is full."""
    path = where / "filler.bin"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as err:
        assert err.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return path


def test_store_write_on_a_full_disk(disk):
    disk(4)
    path = disk.path / "s.zarr"
    recs = [VideoRecord(f"v{i}", f"v{i}", 600, np.ones(600, bool)) for i in range(3)]
    create_store(path, recs)
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((600, 256)).astype(np.float32) for _ in recs]  # ~600 kB each
    w = featurestore.open(path, "a").create_feature_set("f", 256, dtype="float32")
    w.write_video("v0", feats[0])
    filler = _filler(disk.path)
    with pytest.raises(StoreError) as err:
        w.write_video("v1", feats[1])
    msg = str(err.value)
    assert "no space left" in msg and "'v1'" in msg and "'f'" in msg and str(path) in msg
    s = featurestore.open(path)
    assert s.committed("f") == ["v0"]  # v1 is not half-committed
    filler.unlink()
    disk(16)
    w = featurestore.open(path, "a").writer("f")
    for v, x in zip(("v1", "v2"), feats[1:], strict=True):
        w.write_video(v, x)
    s = featurestore.open(path)
    assert s.committed("f") == ["v0", "v1", "v2"]
    for v, x in zip(s.videos(), feats, strict=True):
        np.testing.assert_array_equal(s.features("f", v), x)
    assert verify(s, progress=False)["ok"]


def _tree(root: Path) -> Path:
    """3 videos x 40 frames of noise JPEGs (~20 kB each, ~2.5 MB in all)."""
    from PIL import Image

    rng = np.random.default_rng(1)
    for k in range(3):
        folder = write_frames(root, f"vid{k}", [])
        for n in range(1, 41):
            noise = rng.integers(0, 256, (112, 112, 3), dtype=np.uint8)
            Image.fromarray(noise).save(folder / f"{n:05d}.jpg", quality=95)
        write_annotation(root, "va", "train", f"vid{k}", va_rows(40))
    return root


def test_pack_on_a_full_disk(disk, tmp_path, monkeypatch):
    from featurestore import pack as pack_mod
    from featurestore.pack import LmdbFrames, pack_frames

    monkeypatch.setattr(pack_mod, "_BATCH", 20)  # several transactions: the disk fills mid-pack
    root = _tree(tmp_path / "affwild2")
    pack = disk.path / "frames.lmdb"
    disk(2)
    with pytest.raises(OSError) as err:
        pack_frames(root, pack, progress=False)
    assert err.value.errno == errno.ENOSPC and str(pack) in str(err.value)
    assert list(disk.path.iterdir()) == []  # nothing left behind
    filler = _filler(disk.path)  # a device full before the pack starts: an error, no SIGBUS
    with pytest.raises(OSError, match="No space left on device"):
        pack_frames(root, pack, progress=False)
    filler.unlink()
    disk(16)
    summary = pack_frames(root, pack, progress=False)
    assert summary["videos"] == 3 and summary["frames"] == 120
    assert LmdbFrames(pack).read_bytes("vid2", 40) == (root / "cropped_aligned/vid2/00040.jpg").read_bytes()


def test_checkpoint_on_a_full_disk(disk):
    torch = pytest.importorskip("torch")
    from trainkit.state import load_train_state, save_train_state

    path = disk.path / "run" / "state.pt"
    save_train_state(path, {"epoch": 1, "w": torch.zeros(4)})
    filler = _filler(disk.path)
    with pytest.raises(OSError) as err:
        save_train_state(path, {"epoch": 2, "w": torch.randn(100_000)})
    assert err.value.errno == errno.ENOSPC and str(path) in str(err.value)
    assert load_train_state(path)["epoch"] == 1  # the previous state is intact
    assert sorted(p.name for p in path.parent.iterdir()) == ["state.pt"]  # no temp file left
    filler.unlink()
    save_train_state(path, {"epoch": 2, "w": torch.randn(100_000)})
    assert load_train_state(path)["epoch"] == 2
