import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqtrain.windows import stitch, window_index, window_starts


@st.composite
def nws(draw):
    w = draw(st.integers(1, 60))
    s = draw(st.integers(1, w))
    n = draw(st.integers(1, 400))
    return n, w, s


@settings(max_examples=200, deadline=None)
@given(nws())
def test_windows_cover_every_frame_as_stated(args):
    n, w, s = args
    starts = window_starts(n, w, s)
    if n <= w:
        assert starts.tolist() == [0]
    else:
        expected = list(range(0, n - w, s))
        if expected[-1] != n - w:
            expected.append(n - w)
        assert starts.tolist() == expected
        assert all(st_ + w <= n for st_ in starts)  # no padding needed when n > w
        assert len(starts) <= n // s + 1  # never more windows than the paper's count
    covered = np.zeros(n, dtype=int)
    for st_ in starts:
        idx, pad = window_index(n, int(st_), w)
        covered[idx[~pad]] += 1
        assert pad.sum() == max(0, int(st_) + w - n)
    assert (covered >= 1).all()


@settings(max_examples=100, deadline=None)
@given(nws(), st.integers(1, 3))
def test_stitch_inverts_windowing(args, c):
    n, w, s = args
    rng = np.random.default_rng(n * 7 + w)
    signal = rng.normal(size=(n, c))
    starts = window_starts(n, w, s)
    windows = []
    for st_ in starts:
        idx, pad = window_index(n, int(st_), w)
        win = signal[idx].copy()
        win[pad] = 1e9  # padded positions must be ignored by stitch
        windows.append(win)
    out = stitch(n, starts, w, np.stack(windows))
    np.testing.assert_allclose(out, signal, rtol=0, atol=1e-9)


def test_short_video_is_padded_not_dropped():
    idx, pad = window_index(5, 0, 8)
    assert idx.tolist() == [0, 1, 2, 3, 4, 4, 4, 4]
    assert pad.tolist() == [False] * 5 + [True] * 3


def test_stitch_averages_overlaps():
    starts = np.array([0, 2])
    preds = np.array([[1.0, 1.0, 1.0, 1.0], [3.0, 3.0, 3.0, 3.0]])
    assert stitch(6, starts, 4, preds).tolist() == [1, 1, 2, 2, 3, 3]


@pytest.mark.parametrize("n,w,s", [(0, 3, 1), (5, 0, 1), (5, 3, 4), (5, 3, 0)])
def test_bad_arguments_are_named(n, w, s):
    with pytest.raises(ValueError):
        window_starts(n, w, s)
