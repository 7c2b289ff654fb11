"""Batched window reads, several sets per frame, the rank-split resumable sampler, and the lazy
picklable reader inside torch DataLoader worker processes."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_store import DIM, features_for, make_catalog

import featurestore
from featurestore.batch import chunk_source
from featurestore.errors import StoreError, UnknownKeyError
from featurestore.ingest import create_store
from featurestore.reader import StoreWindows
from featurestore.sampler import WindowSampler, window_starts


@pytest.fixture(scope="module")
def two_sets(tmp_path_factory):
    """A store with set "mae" (DIM) on every video but "t" and set "pt" (3 dims) on a and c."""
    path = str(tmp_path_factory.mktemp("batch") / "store.zarr")
    catalog = make_catalog()
    create_store(path, catalog)
    s = featurestore.open(path, mode="a")
    w = s.create_feature_set("mae", DIM)
    w2 = s.create_feature_set("pt", 3, dtype="float32")
    for rec in catalog[:-1]:
        w.write_video(rec.name, features_for(rec))
        if rec.name in ("a", "c"):
            w2.write_video(rec.name, features_for(rec, seed=7)[:, :3])
    return path, catalog


def test_batch_matches_single_reads_pads_past_end(two_sets):
    path, _ = two_sets
    s = featurestore.open(path)
    windows = [("a", 0), ("c", 1000), ("b_left", 299), ("a", 650), ("c", 17)]  # 3 run past the end
    b = s.read_windows("mae", windows, 120, task="va")
    assert b.x.shape == (5, 120, DIM) and b.pad.shape == (5, 120) and b.x.dtype == np.float16
    assert b.labels.shape == (5, 120, 2) and b.valid.shape == (5, 120)
    for k, (v, a) in enumerate(windows):
        n = s.num_frames(v)
        m = min(120, n - a)
        np.testing.assert_array_equal(b.x[k, :m], s.features("mae", v, a, a + m))
        assert not b.pad[k, :m].any() and b.pad[k, m:].all()
        np.testing.assert_array_equal(b.x[k, m:], np.repeat(b.x[k, m - 1:m], 120 - m, axis=0))
        values, valid = s.labels("va", v)
        np.testing.assert_array_equal(b.labels[k, :m], values[a:a + m])
        np.testing.assert_array_equal(b.valid[k, :m], valid[a:a + m])
        assert not b.valid[k, m:].any() and (b.labels[k, m:] == -5).all()
    f32 = s.read_windows("mae", windows, 120, dtype=np.float32)
    assert f32.x.dtype == np.float32 and np.array_equal(f32.x, b.x.astype(np.float32))


def test_each_chunk_fetched_once_per_call(two_sets):
    path, _ = two_sets
    s = featurestore.open(path, cache_bytes=0)  # no LRU: every chunk comes from the source
    src = chunk_source(s, "mae")
    asked: list[list[int]] = []
    real = src.read
    src.read = lambda chunks: (asked.append(list(chunks)), real(chunks))[1]
    windows = [("c", a) for a in range(0, 1000, 50)] * 3  # 60 windows, heavy sharing
    s.read_windows("mae", windows, 200)
    got = [c for call in asked for c in call]
    off = s.offset("c") // 256
    assert sorted(got) == list(range(off, off + 5)) and len(asked) == 1


def test_several_sets_concatenated_per_frame(two_sets):
    path, _ = two_sets
    s = featurestore.open(path)
    x = s.read_frames(["mae", "pt"], "a", 10, 60)
    assert x.shape == (50, DIM + 3) and x.dtype == np.float32
    np.testing.assert_array_equal(x[:, :DIM], s.features("mae", "a", 10, 60).astype(np.float32))
    np.testing.assert_array_equal(x[:, DIM:], s.features("pt", "a", 10, 60))
    with pytest.raises(UnknownKeyError, match="'pt' has no committed video 'b_left'"):
        s.read_windows(["mae", "pt"], [("a", 0), ("b_left", 0)], 10)


@pytest.mark.parametrize("windows,length,match", [
    ([("a", 700)], 10, "start 700 is outside video 'a' of 700 frames"),
    ([("a", -1)], 10, "start -1 is outside video 'a'"),
    ([("a", 0)], -3, "window length must be a positive integer, got -3"),
    ([("nope", 0)], 10, "unknown video 'nope'"),
    ([("t", 0)], 10, "has no committed video 't'"),
    (["a"], 10, "window 0: expected \\(video, start\\)"),
])
def test_bad_windows_name_what_and_where(two_sets, windows, length, match):
    s = featurestore.open(two_sets[0])
    with pytest.raises(StoreError, match=match):
        s.read_windows("mae", windows, length)
    with pytest.raises(UnknownKeyError, match="unknown feature set 'zzz'"):
        s.read_windows("zzz", [("a", 0)], 10)
    with pytest.raises(UnknownKeyError, match="unknown task"):
        s.read_windows("mae", [("a", 0)], 10, task="happiness")


# ---------------------------------------------------------------- the sampler

VIDEOS = {"a": 700, "b": 301, "c": 90, "d": 1100, "e": 300}


@given(world=st.integers(1, 5), seed=st.integers(0, 3), epoch=st.integers(0, 3),
       stride=st.sampled_from([50, 100, 120]))
@settings(max_examples=40, deadline=None)
def test_ranks_cover_every_window_once(world, seed, epoch, stride):
    every = []
    for rank in range(world):
        smp = WindowSampler(VIDEOS, 120, stride, seed=seed, rank=rank, world_size=world)
        smp.set_epoch(epoch)
        items = list(smp)
        assert abs(len(items) - sum(len(window_starts(n, 120, stride)) for n in VIDEOS.values())
                   / world) < 1
        every += items
    want = [(v, int(a)) for v, n in VIDEOS.items() for a in window_starts(n, 120, stride)]
    assert sorted(every) == sorted(want)  # exactly once, across all ranks
    for v, n in VIDEOS.items():  # no frame left out: the last window ends on the last frame
        assert max(a for w, a in want if w == v) == max(0, n - 120)


def test_order_deterministic_and_changes_with_epoch():
    a = WindowSampler(VIDEOS, 120, 60, seed=3)
    b = WindowSampler(list(VIDEOS.items()), 120, 60, seed=3)
    assert a.epoch_items(0) == b.epoch_items(0)
    assert a.epoch_items(0) != a.epoch_items(1)
    assert sorted(a.epoch_items(0)) == sorted(a.epoch_items(1))
    assert WindowSampler(VIDEOS, 120, 60, seed=4).epoch_items(0) != a.epoch_items(0)


def test_resume_mid_epoch_continues_exactly():
    full = WindowSampler(VIDEOS, 100, 50, seed=1, rank=1, world_size=2)
    full.set_epoch(2)
    want = [w for batch in full.batches(4) for w in batch]
    part = WindowSampler(VIDEOS, 100, 50, seed=1, rank=1, world_size=2)
    part.set_epoch(2)
    seen = []
    for batch in part.batches(4):
        seen += batch
        if len(seen) >= 12:
            break
    state = pickle.loads(pickle.dumps(part.state_dict()))
    assert state == {"epoch": 2, "position": 12}
    resumed = WindowSampler(VIDEOS, 100, 50, seed=1, rank=1, world_size=2)
    resumed.load_state_dict(state)
    assert seen + list(resumed) == want and resumed.state_dict() == {"epoch": 3, "position": 0}


def test_even_mode_and_bad_arguments():
    counts = [len(WindowSampler(VIDEOS, 120, 100, rank=r, world_size=4, even=True))
              for r in range(4)]
    assert len(set(counts)) == 1
    with pytest.raises(ValueError, match="rank 4 is outside 0..3"):
        WindowSampler(VIDEOS, 120, rank=4, world_size=4)
    with pytest.raises(ValueError, match="window length must be >= 1"):
        WindowSampler(VIDEOS, -5)
    with pytest.raises(ValueError, match="stride must satisfy"):
        WindowSampler(VIDEOS, 100, 101)
    with pytest.raises(ValueError, match="outside epoch 0"):
        WindowSampler(VIDEOS, 100).load_state_dict({"epoch": 0, "position": 10_000})


def test_jitter_fixed_count_every_frame_covered():
    smp = WindowSampler(VIDEOS, 120, 100, seed=0, jitter=True)
    plain = WindowSampler(VIDEOS, 120, 100).windows(0)
    longer = sum(n > 120 for n in VIDEOS.values())  # jitter adds one window to those
    for epoch in range(3):
        vids, starts = smp.windows(epoch)
        assert len(vids) == len(plain[0]) + longer
        for i, n in enumerate(VIDEOS.values()):
            covered = np.zeros(n, bool)
            for a in starts[vids == i]:
                covered[a:a + 120] = True
            assert covered.all() and starts[vids == i].max() == max(0, n - 120)


# ---------------------------------------------------------------- DataLoader worker processes

class _TorchWindows:
    """What a user writes: a map-style Dataset over StoreWindows, items are (video, start)."""

    def __init__(self, src: StoreWindows):
        self.src = src

    def __getitem__(self, item):
        return self.src.window(item)


def test_dataloader_workers_open_lazily(two_sets):
    torch = pytest.importorskip("torch")
    from torch.utils.data import DataLoader

    path, _ = two_sets
    src = StoreWindows(path, "mae", 100, task="va", dtype="float32")
    smp = WindowSampler.from_store(src.store, ["a", "b_left", "c"], 100, 80, seed=5)
    assert pickle.loads(pickle.dumps(src))._store is None  # the open store never travels
    loader = DataLoader(_TorchWindows(src), sampler=list(smp.epoch_items(0)), batch_size=4,
                        num_workers=2, multiprocessing_context="spawn")
    got = [b for b in loader]
    x = torch.cat([b[0] for b in got])
    want = src.read(smp.epoch_items(0))
    assert x.shape == (len(want), 100, DIM)
    np.testing.assert_array_equal(x.numpy(), want.x)
    np.testing.assert_array_equal(torch.cat([b[3] for b in got]).numpy(), want.pad)


def test_chunk_source_other_codecs_fall_back_to_zarr(tmp_path):
    """Arrays not written with the store's codec chain are read through zarr: same values."""
    import zarr

    from featurestore.chunks import ChunkSource

    x = np.arange(700 * 3, dtype=np.float32).reshape(700, 3)
    for compressors in (None, zarr.codecs.ZstdCodec(level=1)):
        a = zarr.create_array(tmp_path / f"a{compressors is None}.zarr", shape=x.shape,
                              chunks=(256, 3), dtype="float32", compressors=compressors)
        a[:] = x
        src = ChunkSource(a)
        assert not src.fast
        got = src.read([2, 0])
        np.testing.assert_array_equal(got[0], x[:256])
        np.testing.assert_array_equal(got[2][:700 - 512], x[512:])
