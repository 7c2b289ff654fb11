"""Frame sources, JPEG decoding and the LMDB frame pack on a small Aff-Wild2 tree."""

from __future__ import annotations

import multiprocessing as mp
import pickle

import numpy as np
import pytest
from fixtures_affwild2 import build_quirky_tree, jpeg_bytes, write_frames

from featurestore.errors import DataFormatError
from featurestore.frames import AffWild2Frames, FrameSource, decode_jpeg, open_frames
from featurestore.pack import LmdbFrames, pack_frames


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    root = build_quirky_tree(tmp_path_factory.mktemp("aw2"))
    pack = root.parent / "frames.lmdb"
    summary = pack_frames(root, pack, progress=False)
    return root, pack, summary


def _all_bytes(src: FrameSource) -> dict:
    return {(v, int(n)): src.read_bytes(v, int(n)) for v in src.videos() for n in src.frame_numbers(v)}


def test_round_trip_bytes_identical(packed):
    root, pack, summary = packed
    tree, lm = open_frames(root), open_frames(pack)
    assert isinstance(tree, AffWild2Frames) and isinstance(lm, LmdbFrames)
    assert isinstance(lm, FrameSource)
    assert lm.videos() == tree.videos()
    for v in tree.videos():
        assert lm.frame_numbers(v).tolist() == tree.frame_numbers(v).tolist()
    files = {(v, n): tree.frame_path(v, n).read_bytes() for (v, n) in _all_bytes(tree)}
    assert _all_bytes(lm) == files
    assert summary["frames"] == len(files) == 6 + 6 + 9 + 4 + 3 + 3 + 3
    assert summary["videos"] == 7 and summary["bytes"] == sum(map(len, files.values()))
    assert lm.frame_numbers("test2").size == 0  # a frameless test video is still listed
    with pytest.raises(KeyError):
        lm.read_bytes("gappy", 13)


def test_decode_from_pack(packed):
    _, pack, _ = packed
    img = decode_jpeg(LmdbFrames(pack).read_bytes("gappy", 7), where="gappy/00007")
    assert img.shape == (8, 8, 3) and img.dtype == np.uint8


def _read_in_child(frames, queue):
    queue.put(frames.read_bytes("split", 6))


def test_pickle_and_reopen_in_another_process(packed):
    _, pack, _ = packed
    lm = LmdbFrames(pack)
    expected = lm.read_bytes("split", 6)  # opens the environment in this process first
    clone = pickle.loads(pickle.dumps(lm))
    assert clone.read_bytes("split", 6) == expected
    assert LmdbFrames(pack).read_bytes("split", 6) == expected  # two readers of one pack, one process
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_read_in_child, args=(lm, queue))
    proc.start()
    got = queue.get(timeout=20)
    proc.join(timeout=20)
    assert proc.exitcode == 0 and got == expected


def test_refuses_to_overwrite(packed, tmp_path):
    root, pack, _ = packed
    before = (pack / "data.mdb").stat().st_mtime_ns
    with pytest.raises(FileExistsError):
        pack_frames(root, pack, progress=False)
    assert (pack / "data.mdb").stat().st_mtime_ns == before
    small = tmp_path / "small"
    write_frames(small, "only", [1, 2])
    out = tmp_path / "p"
    pack_frames(small, out, progress=False)
    pack_frames(small, out, progress=False, overwrite=True)
    assert LmdbFrames(out).videos() == ["only"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p", "small"]


def test_non_jpeg_rejected_nothing_left(tmp_path):
    root = tmp_path / "root"
    d = write_frames(root, "v", [1, 2, 3])
    (d / "00002.jpg").write_bytes(b"\x89PNG\r\n\x1a\n fake")
    out = tmp_path / "out" / "pack"
    with pytest.raises(DataFormatError, match="not a JPEG") as ei:
        pack_frames(root, out, progress=False)
    assert str(d / "00002.jpg") in str(ei.value)
    assert not out.exists() and list((tmp_path / "out").iterdir()) == []


def test_lmdb_frames_on_missing_pack(tmp_path):
    with pytest.raises(DataFormatError, match="data.mdb"):
        LmdbFrames(tmp_path).videos()


@pytest.mark.parametrize("data, why", [
    (b"", "empty"),
    (b"GIF89a....", "not a JPEG"),
    (jpeg_bytes(3, 16)[:60], "cannot decode"),
])
def test_decode_jpeg_rejects_bad_data(data, why):
    with pytest.raises(DataFormatError, match=why) as ei:
        decode_jpeg(data, where="vid/00042.jpg")
    assert "vid/00042.jpg" in str(ei.value)


def test_decode_jpeg_grey_becomes_rgb():
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.full((5, 7), 200, np.uint8)).save(buf, format="JPEG")
    img = decode_jpeg(buf.getvalue())
    assert img.shape == (5, 7, 3) and abs(int(img[0, 0, 0]) - 200) <= 2
