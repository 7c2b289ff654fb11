import numpy as np

from seqtrain.folds import NUM_GROUPS, assign_groups, fold_videos


class TinyCatalog:
    """A plain stand-in for the store's catalog calls used by folds (no seqtrain code mocked)."""

    def __init__(self, videos, splits, frames):
        self._videos, self._splits, self._frames = videos, splits, frames

    def videos(self, split=None, task=None):
        return [v for v in self._videos if split is None or self._splits[v] == split]

    def source(self, video):
        return video.removesuffix("_left").removesuffix("_right")

    def num_frames(self, video):
        return self._frames[video]


def make_catalog(n=40, seed=0):
    rng = np.random.default_rng(seed)
    names = []
    for i in range(n):
        names += [f"{i}-30-640x360_left", f"{i}-30-640x360_right"] if i % 5 == 0 else [f"vid{i:03d}"]
    splits = {v: ("val" if rng.random() < 0.25 else "train") for v in names}
    frames = {v: int(rng.integers(100, 5000)) for v in names}
    return TinyCatalog(names, splits, frames)


def test_fold0_is_official_split():
    cat = make_catalog()
    train, val = fold_videos(cat, "va", 0)
    assert set(train) == set(cat.videos("train")) and set(val) == set(cat.videos("val"))


def test_folds_keep_halves_together_and_partition_videos():
    cat = make_catalog()
    vals = []
    for k in range(1, 5):
        train, val = fold_videos(cat, "va", k)
        assert not set(train) & set(val)
        assert set(train) | set(val) == set(cat.videos())
        for v in val:
            if v.endswith("_left"):
                assert v.replace("_left", "_right") in val
        vals.append(set(val))
    assert set().union(*vals) == set(cat.videos())
    assert sum(len(v) for v in vals) == len(cat.videos())  # each video validated exactly once


def test_folds_are_deterministic_and_balanced():
    cat = make_catalog()
    a = [fold_videos(cat, "va", k) for k in range(1, 5)]
    b = [fold_videos(make_catalog(), "va", k) for k in range(1, 5)]
    assert a == b
    totals = [sum(cat.num_frames(v) for v in val) for _, val in a]
    assert max(totals) - min(totals) <= max(cat.num_frames(v) for v in cat.videos()) * 2


def test_adding_a_video_moves_few_others():
    cat = make_catalog(60)
    srcs = {v: cat.source(v) for v in cat.videos()}
    frames = {v: cat.num_frames(v) for v in cat.videos()}
    before = assign_groups(srcs, frames)
    after = assign_groups({**srcs, "newvid": "newvid"}, {**frames, "newvid": 300})
    moved = [v for v in before if before[v] != after[v]]
    assert len(moved) <= len(before) // 4
    assert set(after.values()) <= set(range(NUM_GROUPS))
