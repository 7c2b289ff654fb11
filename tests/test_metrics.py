import numpy as np
import pytest
from sklearn.metrics import f1_score

from seqtrain import metrics
from seqtrain.tasks import get_task


def direct_ccc(x, y):
    mx, my = x.mean(), y.mean()
    cov = ((x - mx) * (y - my)).sum() / len(x)
    return 2 * cov / (((x - mx) ** 2).sum() / len(x) + ((y - my) ** 2).sum() / len(y) + (mx - my) ** 2)


@pytest.mark.parametrize("seed", range(5))
def test_va_score_is_population_ccc(seed):
    rng = np.random.default_rng(seed)
    t = rng.uniform(-1, 1, size=(300, 2))
    p = 0.6 * t + rng.normal(0.1, 0.3, size=t.shape)
    out = metrics.va_score(p, t)
    assert out["ccc_valence"] == pytest.approx(direct_ccc(p[:, 0], t[:, 0]), abs=1e-12)
    assert out["ccc_arousal"] == pytest.approx(direct_ccc(p[:, 1], t[:, 1]), abs=1e-12)
    assert out["score"] == pytest.approx((out["ccc_valence"] + out["ccc_arousal"]) / 2)
    # sample statistics (ddof=1) give a different figure: make sure we are not using them
    sample = 2 * np.cov(p[:, 0], t[:, 0])[0, 1] / (p[:, 0].var(ddof=1) + t[:, 0].var(ddof=1)
                                                    + (p[:, 0].mean() - t[:, 0].mean()) ** 2)
    assert out["ccc_valence"] != pytest.approx(sample, abs=1e-6)


@pytest.mark.parametrize("seed", range(5))
def test_expr_score_equals_sklearn_macro_f1(seed):
    rng = np.random.default_rng(seed)
    t = rng.integers(0, 6, size=500)  # classes 6, 7 absent from the truth
    p = np.where(rng.random(500) < 0.5, t, rng.integers(0, 8, size=500))
    out = metrics.expr_score(p, t)
    ref = f1_score(t, p, labels=list(range(8)), average="macro", zero_division=0)
    assert out["score"] == pytest.approx(ref, abs=1e-12)
    per = f1_score(t, p, labels=list(range(8)), average=None, zero_division=0)
    assert [out[f"f1_{c}"] for c in metrics.EXPR_CLASSES] == pytest.approx(per.tolist())


@pytest.mark.parametrize("seed", range(5))
def test_au_score_equals_sklearn_per_au_f1(seed):
    rng = np.random.default_rng(seed)
    t = (rng.random((400, 12)) < 0.3).astype(int)
    t[:, 3] = 0  # an AU never active
    logits = rng.normal(size=(400, 12)) + 2 * (t - 0.5)
    pred = get_task("au").to_submission(logits)
    assert set(np.unique(pred)) <= {0, 1}
    np.testing.assert_array_equal(pred, (1 / (1 + np.exp(-logits)) >= 0.5).astype(int))
    out = metrics.au_score(pred, t)
    ref = [f1_score(t[:, j], pred[:, j], zero_division=0) for j in range(12)]
    assert out["score"] == pytest.approx(np.mean(ref), abs=1e-12)
    assert [out[f"f1_{a}"] for a in metrics.AU_NAMES] == pytest.approx(ref)


def test_submission_conversion():
    va = get_task("va").to_submission(np.array([[2.0, -3.0], [0.5, -0.2]]))
    np.testing.assert_allclose(va, [[1.0, -1.0], [0.5, -0.2]], rtol=1e-6)
    expr = get_task("expr").to_submission(np.eye(8)[[3, 7]] * 5)
    assert expr.tolist() == [3, 7]
