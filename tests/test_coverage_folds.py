"""Every frame is trained every epoch (jittered windows) and folds agree across tasks."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtrain.data import WindowDataset, from_arrays, jittered_starts
from seqtrain.folds import fold_videos
from seqtrain.windows import window_index


def _videos(lengths):
    feats = {f"v{i}": np.zeros((n, 3), np.float32) for i, n in enumerate(lengths)}
    return from_arrays(feats)


def test_every_frame_is_in_a_training_window_every_epoch():
    lengths = [37, 300, 301, 450, 799, 1000]
    ds = WindowDataset(_videos(lengths), window=300, stride=200, jitter=True, seed=3)
    sizes, offsets = set(), set()
    for epoch in range(200):
        ds.set_epoch(epoch)
        sizes.add(len(ds))
        seen = [np.zeros(n, dtype=int) for n in lengths]
        for vi, start in ds.windows:
            idx, pad = window_index(lengths[vi], start, 300)
            seen[vi][idx[~pad]] += 1
        for n, count in zip(lengths, seen, strict=True):
            assert (count >= 1).all(), f"epoch {epoch}: a frame of a {n}-frame video was left out"
        offsets.add(tuple(s for vi, s in ds.windows if vi == 5))
    assert len(sizes) == 1  # fixed epoch length
    assert len(offsets) > 50  # the jitter really moves the windows


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 80).flatmap(lambda w: st.tuples(
    st.just(w), st.integers(1, w), st.integers(w + 1, 500), st.integers(0, 10**6))))
def test_jittered_starts_cover_and_keep_count(args):
    w, s, n, r = args
    offset = r % s
    starts = jittered_starts(n, w, s, offset)
    assert starts[0] == 0 and starts[-1] == n - w
    assert (np.diff(starts) >= 0).all() and (np.diff(starts) <= w).all()
    assert len(starts) == len(jittered_starts(n, w, s, 0))


class ThreeTaskCatalog:
    """Store-like catalog where each task annotates a different subset of the videos."""

    def __init__(self, seed=0):
        rng = np.random.default_rng(seed)
        self.names, self.split, self.tasks, self.frames = [], {}, {}, {}
        for i in range(60):
            subjects = [f"s{i}_left", f"s{i}_right"] if i % 6 == 0 else [f"s{i}"]
            split = "val" if rng.random() < 0.25 else "train"
            tasks = [t for t in ("va", "expr", "au") if rng.random() < 0.7] or ["va"]
            for v in subjects:
                self.names.append(v)
                self.split[v], self.tasks[v] = split, tasks
                self.frames[v] = int(rng.integers(100, 5000))

    def videos(self, split=None, task=None):
        return [v for v in self.names if (task is None or task in self.tasks[v])
                and (split is None or self.split[v] == split)]

    def source(self, video):
        return video.removesuffix("_left").removesuffix("_right")

    def num_frames(self, video):
        return self.frames[video]


def test_a_source_falls_in_the_same_fold_for_every_task():
    cat = ThreeTaskCatalog()
    fold_of = {}
    for task in ("va", "expr", "au"):
        for k in range(1, 5):
            _, val = fold_videos(cat, task, k)
            for v in val:
                fold_of.setdefault(cat.source(v), set()).add(k)
    assert fold_of and all(len(ks) == 1 for ks in fold_of.values())
    # and within a task the folds still partition its videos
    for task in ("va", "expr", "au"):
        vals = [set(fold_videos(cat, task, k)[1]) for k in range(1, 5)]
        assert sum(map(len, vals)) == len(cat.videos(task=task)) == len(set().union(*vals))
