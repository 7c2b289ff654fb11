"""The seeded ablation table: mean ± std over seeds, and a difference marked only beyond the spread."""

import json

import pytest

from seqtrain.ablation import ablation_rows, differs, mean_std, seeded_ablation_table
from seqtrain.report import report


def test_mean_std_is_the_sample_std():
    mean, std, n = mean_std([0.1, 0.2, 0.3])
    assert mean == pytest.approx(0.2) and n == 3
    assert std == pytest.approx(0.1)  # ddof=1: sqrt((0.01 + 0 + 0.01) / 2)
    assert mean_std([0.5]) == (0.5, 0.0, 1)
    with pytest.raises(ValueError):
        mean_std([])


@pytest.mark.parametrize("row,ref,expected", [
    ((0.50, 0.01, 3), (0.40, 0.02, 3), 1),    # gap 0.10 > both spreads
    ((0.30, 0.01, 3), (0.40, 0.02, 3), -1),
    ((0.43, 0.05, 3), (0.40, 0.01, 3), 0),    # gap 0.03 within the row's spread
    ((0.43, 0.01, 3), (0.40, 0.05, 3), 0),    # ... or within the reference's spread
    ((0.40, 0.0, 1), (0.40, 0.0, 1), 0),      # equal means never differ
])
def test_differs_only_beyond_the_larger_spread(row, ref, expected):
    assert differs(row, ref) == expected


def _rows():
    return {
        "full": {"label": "full / mae-ft", "scores": {"va": [0.50, 0.52, 0.48],
                                                      "expr": [0.30, 0.31, 0.29],
                                                      "au": [0.40, 0.40, 0.40]}},
        "frame-level": {"label": "no-tcn+no-transformer / mae-ft",
                        "scores": {"va": [0.30, 0.31, 0.29], "expr": [0.29, 0.33, 0.27],
                                   "au": [0.45, 0.46, 0.44]}},
    }


def test_table_marks_cells_by_the_spread_rule():
    table = seeded_ablation_table(_rows())
    lines = table.splitlines()
    assert lines[2].startswith("| full (full / mae-ft) | 3/3/3 | 0.5000 ± 0.0200 | 0.3000 ± 0.0100 | 0.4000 ± 0.0000 |")
    frame = lines[3]
    assert frame.startswith("| frame-level (no-tcn+no-transformer / mae-ft) | 3/3/3 |")
    va, expr, au = frame.split(" | ")[2:5]
    assert va == "0.3000 ± 0.0100 (< full)"
    assert expr == "0.2967 ± 0.0306 (~)"  # gap 0.003 inside the spread
    assert au.startswith("0.4500 ± 0.0100 (> full)")
    assert "|Δmean| > max(std" in table


def _write_run(path, task, variant, features, score, seed=0):
    path.mkdir(parents=True)
    path.joinpath("metrics.json").write_text(json.dumps({
        "task": task, "fold": 0, "features": features, "variant": variant,
        "val": {"score": score}, "config": {"seed": seed}}))


def test_report_reads_seed_folders_and_keeps_them_out_of_the_fold_table(tmp_path):
    for k, score in enumerate((0.5, 0.6, 0.7)):
        _write_run(tmp_path / f"ablation/full/seed{k}/va/fold0", "va", "full", "mae-ft", score, k)
        _write_run(tmp_path / f"ablation/frame-level/seed{k}/va/fold0", "va",
                   "no-tcn+no-transformer", "mae-ft", score - 0.4, k)
    _write_run(tmp_path / "main/va/fold0", "va", "full", "mae-ft", 0.9)
    _write_run(tmp_path / "probe-mae-ft/va/fold0", "va", "linear-probe", "mae-ft", 0.25)
    from seqtrain.report import collect

    rows = ablation_rows(collect(tmp_path), tmp_path, baselines=("linear-probe",))
    assert rows["full"]["scores"]["va"] == [0.5, 0.6, 0.7]
    assert rows["linear-probe / mae-ft"]["scores"]["va"] == [0.25]
    text = report(tmp_path)
    folds = (tmp_path / "results_folds.md").read_text()
    assert "0.9000" in folds and "0.6000" not in folds  # seeded runs only in the ablation table
    ablation = (tmp_path / "results_ablation.md").read_text()
    assert "| full (full / mae-ft) | 3/0/0 | 0.6000 ± 0.1000 |" in ablation
    assert "0.2000 ± 0.1000 (< full)" in ablation
    assert "| linear-probe / mae-ft | 1/0/0 | 0.2500 ± 0.0000 (< full) |" in ablation
    assert ablation in text


def test_rows_follow_the_papers_order_then_baselines():
    one = {"label": "x", "scores": {"va": [0.1]}}
    names = ["linear-probe / mae-ft", "no-finetune", "frame-level", "no-transformer", "no-tcn", "full"]
    table = seeded_ablation_table({n: one for n in sorted(names)})
    firsts = [line.split(" | ")[0][2:].split(" (")[0] for line in table.splitlines()[2:8]]
    assert firsts == ["full", "no-tcn", "no-transformer", "frame-level", "no-finetune",
                      "linear-probe / mae-ft"]
