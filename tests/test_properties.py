"""Property-based tests (hypothesis) that complement tests/test_windows.py and test_metrics.py:
annotation files round-trip through the parser, a corrupted line is reported at that line, CCC
is symmetric, bounded and 1 on identical inputs, F1 equals sklearn's, and stitching a constant
or affine signal per window gives it back whatever the window and stride."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.metrics import f1_score

from featurestore.affwild2 import AU_NAMES, EXPR_CLASSES, parse_annotation
from featurestore.errors import DataFormatError
from seqtrain import metrics
from seqtrain.windows import stitch, window_index, window_starts

HEADERS = {"va": "valence,arousal", "expr": ",".join(EXPR_CLASSES), "au": ",".join(AU_NAMES)}
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])

va_row = st.one_of(st.tuples(st.floats(-1, 1, width=32), st.floats(-1, 1, width=32)),
                   st.just((-5.0, -5.0)))
expr_row = st.integers(-1, 7)
au_row = st.one_of(st.lists(st.integers(0, 1), min_size=12, max_size=12),
                   st.lists(st.integers(-1, 1), min_size=12, max_size=12))


def _line(task: str, row) -> str:
    if task == "va":
        return f"{row[0]!r},{row[1]!r}"
    if task == "expr":
        return str(row)
    return ",".join(map(str, row))


_TMP = tempfile.TemporaryDirectory(prefix="prop-")  # one file, rewritten by every example


def _write(task: str, rows, crlf: bool = False) -> Path:
    path = Path(_TMP.name) / "video.txt"
    end = "\r\n" if crlf else "\n"
    path.write_text(end.join([HEADERS[task], *(_line(task, r) for r in rows)]) + end,
                    newline="")
    return path


@SETTINGS
@given(st.sampled_from(["va", "expr", "au"]).flatmap(
    lambda t: st.tuples(st.just(t), st.lists({"va": va_row, "expr": expr_row, "au": au_row}[t],
                                             max_size=40), st.booleans())))
def test_valid_annotation_files_parse_back_to_their_values(args):
    task, rows, crlf = args
    values, valid = parse_annotation(_write(task, rows, crlf), task)
    assert len(values) == len(valid) == len(rows)
    if task == "va":
        want = np.array(rows, np.float32).reshape(-1, 2)
        np.testing.assert_array_equal(values, want)
        np.testing.assert_array_equal(valid, ~(want == -5).any(axis=1))
    elif task == "expr":
        np.testing.assert_array_equal(values, np.array(rows, np.int64))
        np.testing.assert_array_equal(valid, np.array(rows) != -1)
    else:
        want = np.array(rows, np.int8).reshape(-1, 12)
        np.testing.assert_array_equal(values, want)
        np.testing.assert_array_equal(valid, ~(want == -1).any(axis=1))


CORRUPTIONS = {
    "va": ["abc,0.5", "0.5", "0.1,0.2,0.3", "1.5,0", "0,-1.01", "nan,0", ""],
    "expr": ["8", "-2", "x", "1,2", "0.5"],
    "au": [",".join(["0"] * 11), ",".join(["2"] + ["0"] * 11), ",".join(["a"] + ["0"] * 11)],
}


@SETTINGS
@given(st.sampled_from(["va", "expr", "au"]).flatmap(
    lambda t: st.tuples(st.just(t), st.lists({"va": va_row, "expr": expr_row, "au": au_row}[t],
                                             min_size=1, max_size=30),
                        st.sampled_from(CORRUPTIONS[t]), st.data())))
def test_one_corrupted_line_is_reported_at_that_line(args):
    task, rows, bad, data = args
    k = data.draw(st.integers(0, len(rows) - 1))
    lines = [_line(task, r) for r in rows]
    lines[k] = bad
    path = _write(task, [])
    path.write_text("\n".join([HEADERS[task], *lines]) + "\n")
    if bad == "" and k == len(rows) - 1:
        return  # trailing blank lines are dropped by design
    with pytest.raises(DataFormatError) as err:
        parse_annotation(path, task)
    assert str(err.value).startswith(f"{path}:{k + 2}:"), str(err.value)  # header is line 1


finite = st.floats(-10, 10, allow_nan=False, width=64)


@SETTINGS
@given(st.lists(st.tuples(finite, finite), min_size=2, max_size=200))
def test_ccc_is_symmetric_bounded_and_one_on_identical_inputs(pairs):
    x, y = np.array(pairs).T
    c = metrics.ccc(x, y)
    assert -1.0 - 1e-9 <= c <= 1.0 + 1e-9
    assert c == pytest.approx(metrics.ccc(y, x), abs=1e-12)
    if x.std() > 1e-6:
        assert metrics.ccc(x, x) == pytest.approx(1.0, abs=1e-9)
        xc = x - x.mean()
        assert metrics.ccc(xc, -xc) == pytest.approx(-1.0, abs=1e-9)
        assert metrics.ccc(x, x + 1.0) < 1.0  # a bias is penalised, unlike Pearson


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 1), st.integers(0, 1)), min_size=1, max_size=200))
def test_binary_f1_equals_sklearn(pairs):
    p, t = np.array(pairs).T
    assert metrics.f1_binary(p, t) == pytest.approx(f1_score(t, p, zero_division=0), abs=1e-12)


@SETTINGS
@given(st.lists(st.tuples(st.integers(0, 7), st.integers(0, 7)), min_size=1, max_size=200))
def test_expr_macro_f1_equals_sklearn_over_all_8_classes(pairs):
    p, t = np.array(pairs).T
    ref = f1_score(t, p, labels=list(range(8)), average="macro", zero_division=0)
    assert metrics.expr_score(p, t)["score"] == pytest.approx(ref, abs=1e-12)


@SETTINGS
@given(st.integers(1, 300), st.integers(1, 40), st.data())
def test_stitching_an_affine_signal_gives_it_back(n, w, data):
    s = data.draw(st.integers(1, w))
    a, b = data.draw(finite), data.draw(finite)
    starts = window_starts(n, w, s)
    preds = []
    for st_ in starts:
        idx, _ = window_index(n, int(st_), w)
        preds.append((a * idx + b)[:, None])  # (w, 1): every window agrees on its frames
    out = stitch(n, starts, w, np.stack(preds))  # (n, 1)
    np.testing.assert_allclose(out[:, 0], a * np.arange(n) + b, rtol=1e-9, atol=1e-9)
    assert out.shape == (n, 1)
