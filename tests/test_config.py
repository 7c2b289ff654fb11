"""The FitConfig tree: one default per field, round trips, flat dicts of older runs, and the
`seqtrain` command's options generated from / checked against it."""

import dataclasses
import json

import pytest

from featurestore.abaw import MTL, TASKS
from seqtrain.config import (
    DEFAULT_RUNS,
    FIT_TASKS,
    MODEL_PRESETS,
    DataConfig,
    FitConfig,
    ModelConfig,
    ModelSpec,
    OptimConfig,
    flat_defaults,
)

# what FitConfig.to_dict() wrote before the tree (metrics.json "config", best/config.json "fit")
OLD_FLAT = {"task": "expr", "fold": 2, "store": "s.zarr", "features": "mae-pt", "out": "runs/x",
            "preset": "tiny", "use_tcn": False, "use_transformer": True, "window": 64,
            "stride": 32, "lr": 0.001, "weight_decay": 1e-05, "dropout": 0.1, "batch_size": 8,
            "epochs": 3, "warmup_epochs": 1, "patience": 2, "jitter": True, "seed": 4,
            "num_threads": 1, "device": "cpu", "model_overrides": {}}


def test_tree_round_trips_through_json():
    cfg = FitConfig(task=MTL, fold=1, smooth=5, data=DataConfig(features="a,b", window=64, stride=32),
                    optim=OptimConfig(lr=1e-3, epochs=2), model=ModelSpec(preset="tiny", use_tcn=False))
    back = FitConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert back == cfg and back.data.feature_sets == ("a", "b") and back.variant == "no-tcn"
    assert set(cfg.to_dict()) == {"task", "fold", "seed", "device", "num_threads", "out",
                                  "smooth", "data", "optim", "model"}


def test_old_flat_config_loads():
    cfg = FitConfig.from_dict(OLD_FLAT)
    assert cfg.task == "expr" and cfg.fold == 2 and cfg.seed == 4 and cfg.out == "runs/x"
    assert cfg.data == DataConfig(store="s.zarr", features="mae-pt", window=64, stride=32,
                                  batch_size=8, jitter=True)
    assert cfg.optim == OptimConfig(lr=1e-3, weight_decay=1e-5, epochs=3, warmup_epochs=1, patience=2)
    assert cfg.model == ModelSpec(preset="tiny", dropout=0.1, use_tcn=False, use_transformer=True)
    assert cfg.smooth == 0  # older runs did not smooth
    # the model it builds is what the flat config built: the preset plus the run's switches
    m = cfg.model_config(16, 8)
    assert (m.in_dim, m.out_dim, m.d_model, m.dropout, m.use_tcn) == (16, 8, 32, 0.1, False)
    assert m.max_len == 1024


def test_one_home_per_default():
    names = [f.name for c in (DataConfig, OptimConfig, ModelSpec) for f in dataclasses.fields(c)]
    top = [f.name for f in dataclasses.fields(FitConfig)]
    assert len(set(names) | set(top)) == len(names) + len(top)  # flat names are unique
    defaults = flat_defaults()
    model = {f.name: f.default for f in dataclasses.fields(ModelConfig)}
    for name in ("dropout", "use_tcn", "use_transformer"):  # ModelSpec's come from ModelConfig
        assert defaults[name] == model[name]
    assert FitConfig(task="va") == FitConfig.from_flat(task="va")
    assert FitConfig(task="expr", fold=3).out == f"{DEFAULT_RUNS}/expr/fold3"  # = the CLI's folder


@pytest.mark.parametrize("flat, field", [
    (dict(window=10, stride=20), "stride"), (dict(task="valence"), "task"),
    (dict(smooth=4), "smooth"), (dict(features="a,a"), "features"), (dict(features="a,"), "features"),
    (dict(preset="huge"), "preset"), (dict(dropout=1.5), "dropout"), (dict(patience=0), "patience"),
    (dict(windows=3), "windows")])
def test_bad_values_name_the_field(flat, field):
    with pytest.raises(ValueError, match=field):
        FitConfig.from_flat(**{"task": "va", **flat})


def test_cli_options_are_the_config_tree():
    """Every `seqtrain fit` option that sets a config field has that field's default; the flags
    switch off fields that default to on; preset and task choices come from the tables."""
    from seqtrain.cli import FIT_FLAGS, FIT_OPTIONS, fit, predict

    defaults = flat_defaults()
    params = {p.name: p for p in fit.params}
    parsed = fit.make_context("fit", []).params  # what a user gets without options
    for option, field in FIT_OPTIONS.items():
        assert params[option].default == parsed[option] == defaults[field], option
    for flag, field in FIT_FLAGS.items():
        assert params[flag].is_flag and parsed[flag] is False and defaults[field] is True
    # every option is mapped to the tree, except those that choose which runs to plan
    assert set(params) - set(FIT_OPTIONS) - set(FIT_FLAGS) == {"task", "folds_opt", "seeds_opt", "out",
                                                                 "no_ray"}
    assert params["out"].default == DEFAULT_RUNS
    assert sorted(params["preset"].type.choices) == sorted(MODEL_PRESETS)
    assert list(params["task"].type.choices) == [*FIT_TASKS, "all"] and FIT_TASKS == (*TASKS, MTL)
    pred = {p.name: p for p in predict.params}
    assert pred["store"].default == defaults["store"] and pred["device"].default == defaults["device"]


def test_unknown_nested_field_is_named():
    d = FitConfig(task="va").to_dict()
    d["data"]["windw"] = 3
    with pytest.raises(ValueError, match="windw"):
        FitConfig.from_dict(d)


def test_seeds_plan_one_run_per_seed_task_and_fold(tmp_path):
    from click.testing import CliRunner

    from seqtrain.cli import fit
    from seqtrain.runner import plan_runs

    cfgs = plan_runs(("va", "au"), (0,), tmp_path / "row", [2, 0], store=str(tmp_path / "s.zarr"))
    assert [(c.seed, c.task, c.out) for c in cfgs] == [
        (s, t, str(tmp_path / "row" / f"seed{s}" / t / "fold0")) for s in (2, 0) for t in ("va", "au")]
    with pytest.raises(ValueError, match="seeds"):
        plan_runs(("va",), (0,), tmp_path / "row", [1, 1], store=str(tmp_path / "s.zarr"))
    for args, message in ((["--seeds", "0,x"], "--seeds"), (["--seeds", "1,1"], "distinct"),
                          (["--seeds", "0,1", "--seed", "3"], "not both")):
        res = CliRunner().invoke(fit, ["--store", str(tmp_path), "--out", str(tmp_path / "o"), *args],
                                 obj=None)
        assert res.exit_code == 2 and message in res.output, res.output
