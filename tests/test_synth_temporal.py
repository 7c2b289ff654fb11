"""The synthetic data's temporal settings: seeded, switchable, and informative only across frames."""

import dataclasses
import hashlib

import numpy as np
import pytest

from featurestore.abaw import MTL
from featurestore.synth import SynthConfig, generate, plan_videos
from featurestore.synth.faces import draw_face
from featurestore.synth.layout import TEMPLATES, frame_params, intended_video
from featurestore.synth.temporal import FPS

OFF = dict(lag=0.0, bursts=0.0, motion_arousal=0.0, expr_ramp=0.0)
SMALL = dict(videos=4, frames=40, faces=4, size=32, seed=5)


def _tree_hash(root, skip=()) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name not in skip:
            h.update(str(p.relative_to(root)).encode())
            h.update(p.read_bytes())
    return h.hexdigest()


def test_all_off_reproduces_the_data_of_the_generator_without_them(tmp_path):
    # digest of this exact config written by the generator before the temporal settings existed;
    # the multi-task template came later (a new file): every file written then is unchanged
    generate(tmp_path / "o", SynthConfig(**SMALL, **OFF), progress=False)
    assert (tmp_path / "o" / "affwild2/test_set_templates" / TEMPLATES[MTL]).is_file()
    assert _tree_hash(tmp_path / "o", skip={TEMPLATES[MTL]}) == (
        "c0b5e6dbfc1acf50aa43956fb1a0914dd93c01554512cce4ead2e085be634f91")


def test_deterministic_per_seed(tmp_path):
    generate(tmp_path / "a", SynthConfig(**SMALL), progress=False)
    generate(tmp_path / "b", SynthConfig(**SMALL), progress=False)
    generate(tmp_path / "c", SynthConfig(**{**SMALL, "seed": 6}), progress=False)
    assert _tree_hash(tmp_path / "a") == _tree_hash(tmp_path / "b") != _tree_hash(tmp_path / "c")


def _video(cfg, k=0):
    iv = intended_video(cfg, plan_videos(cfg)[k])
    return iv, frame_params(cfg, iv)


CFG = SynthConfig(videos=6, frames=600, faces=0, size=48, seed=1)


@pytest.mark.parametrize("name", sorted(OFF))
def test_each_setting_switches_off_alone(name):
    on_iv, on_p = _video(CFG)
    off_cfg = dataclasses.replace(CFG, **{name: 0.0})
    off_iv, off_p = _video(off_cfg)
    base_iv, base_p = _video(dataclasses.replace(CFG, **OFF))
    changed = {
        "lag": lambda iv, p: iv.labels["va"][0].tobytes(),
        "bursts": lambda iv, p: tuple(q.burst for q in p),
        "motion_arousal": lambda iv, p: tuple((q.arousal, q.pose) for q in p),
        "expr_ramp": lambda iv, p: tuple(q.expr_strength for q in p),
    }[name]
    assert changed(on_iv, on_p) != changed(off_iv, off_p)  # the setting does something
    assert changed(off_iv, off_p) == changed(base_iv, base_p)  # and off means off
    for other, f in {"lag": lambda iv, p: iv.labels["va"][0].tobytes(),
                     "bursts": lambda iv, p: tuple(q.burst for q in p),
                     "expr_ramp": lambda iv, p: tuple(q.expr_strength for q in p)}.items():
        if other != name:  # switching one off leaves the others as they were
            assert f(on_iv, on_p) == f(off_iv, off_p)


def _corr(a, b):
    return float(np.corrcoef(a, b)[0, 1])


def test_lagged_label_is_read_from_past_frames_not_the_current_one():
    iv, params = _video(CFG)
    label, valid = iv.labels["va"]
    shown = np.array([p.valence for p in params])  # what each frame's face shows
    lags = range(0, 2 * FPS)
    def fit_at(lag):
        ok = valid[lag:]
        return _corr(label[lag:, 0][ok], shown[:len(shown) - lag][ok])
    fit = [fit_at(lag) for lag in lags]
    best = int(np.argmax(fit))
    assert 0.5 * FPS <= best <= 1.5 * FPS and fit[best] > 0.999
    assert fit[0] < fit[best] - 0.01  # the current frame explains less than a past one


def _detail(x):
    return np.abs(np.diff(x, axis=0)).mean() + np.abs(np.diff(x, axis=1)).mean()


def test_burst_frames_hide_the_face_while_labels_go_on():
    cfg = dataclasses.replace(CFG, bursts=0.2)
    videos = [_video(cfg, k) for k in range(3)]
    params = [p for _, ps in videos for p in ps]
    kinds = np.array([p.burst for p in params])
    valid = np.concatenate([iv.labels["va"][1] for iv, _ in videos])
    assert {1, 2, 3} <= set(kinds.tolist())
    assert 0.1 < (kinds > 0).mean() < 0.3
    assert valid[kinds > 0].mean() > 0.9  # labels continue through bursts
    for kind in (1, 2, 3):
        p = params[int(np.flatnonzero(kinds == kind)[0])]
        sad, happy = (draw_face(dataclasses.replace(p, valence=v, expr=e, noise=0.0),
                                np.random.default_rng(0)).astype(float)
                      for v, e in ((-1.0, 5), (1.0, 4)))
        clear = [draw_face(dataclasses.replace(p, burst=0, valence=v, expr=e, noise=0.0),
                           np.random.default_rng(0)).astype(float) for v, e in ((-1.0, 5), (1.0, 4))]
        # occluder / turned away: the expression leaves no trace; blur: its detail (the edges
        # of mouth, eyes and brows) is mostly gone, only colour blobs remain
        hidden, shown = _detail(sad - happy), _detail(clear[0] - clear[1])
        assert hidden < (0.35 if kind == 2 else 0.05) * shown, (kind, hidden, shown)


def test_motion_carries_arousal_only_across_frames():
    cfg = dataclasses.replace(CFG, size=32)
    iv, params = _video(cfg)
    arousal = iv.timeline.arousal
    frames = np.stack([draw_face(p, np.random.default_rng(i)).astype(np.float32)
                       for i, p in enumerate(params)])  # (n, 32, 32, 3)
    speed = np.abs(np.diff(frames, axis=0)).mean(axis=(1, 2, 3))  # (n-1,) across frames
    smooth = np.convolve(speed, np.ones(15) / 15, mode="same")
    on = _corr(smooth, arousal[1:])
    _, still = _video(dataclasses.replace(cfg, motion_arousal=0.0))
    shown_on = np.array([p.arousal for p in params])
    shown_off = np.array([p.arousal for p in still])
    assert on > 0.4  # frame-to-frame change reads arousal
    assert _corr(shown_on, arousal) < _corr(shown_off, arousal) - 0.1  # one face reads it less


def test_expressions_rise_and_fall_under_a_full_label():
    iv, params = _video(CFG)
    expr = iv.timeline.expr
    strength = np.array([p.expr_strength for p in params])
    starts = np.flatnonzero(np.r_[False, expr[1:] != expr[:-1]])
    assert len(starts) >= 2
    assert (strength[starts] < 0.5).all()  # first frame of an episode: barely started
    assert strength.max() == 1.0 and (iv.labels["expr"][0][starts] == expr[starts]).all()
    _, flat = _video(dataclasses.replace(CFG, expr_ramp=0.0))
    assert all(p.expr_strength == 1.0 for p in flat)
