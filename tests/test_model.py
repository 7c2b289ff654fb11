import pytest
import torch

from seqtrain.config import MODEL_PRESETS, ModelConfig, model_config
from seqtrain.model import SeqModel
from seqtrain.tasks import TASKS

torch.set_num_threads(1)


def shapes(model, prefix):
    return {k: tuple(v.shape) for k, v in model.state_dict().items() if k.startswith(prefix)}


@pytest.mark.parametrize("preset", sorted(MODEL_PRESETS))
@pytest.mark.parametrize("task", sorted(TASKS))
def test_per_frame_outputs(preset, task):
    torch.manual_seed(0)
    cfg = model_config(preset, in_dim=24, out_dim=TASKS[task].out_dim)
    if preset == "paper":
        cfg = model_config(preset, in_dim=24, out_dim=TASKS[task].out_dim, layers=1)
    m = SeqModel(cfg).eval()
    x = torch.randn(2, 40, 24)
    pad = torch.zeros(2, 40, dtype=torch.bool)
    pad[1, 30:] = True
    y = m(x, pad)
    assert y.shape == (2, 40, TASKS[task].out_dim)
    assert torch.isfinite(y).all()


def test_padded_frames_do_not_reach_real_frames_through_attention():
    torch.manual_seed(0)
    m = SeqModel(model_config("tiny", in_dim=8, out_dim=2, use_tcn=False)).eval()
    x = torch.randn(1, 20, 8)
    pad = torch.zeros(1, 20, dtype=torch.bool)
    pad[0, 15:] = True
    y1 = m(x, pad)
    x2 = x.clone()
    x2[0, 15:] = 100.0
    y2 = m(x2, pad)
    torch.testing.assert_close(y1[0, :15], y2[0, :15])


@pytest.mark.parametrize("off", ["use_tcn", "use_transformer"])
def test_ablation_switches_change_only_their_stage(off):
    base = SeqModel(model_config("tiny", in_dim=24, out_dim=8, d_model=48, heads=2))
    abl = SeqModel(model_config("tiny", in_dim=24, out_dim=8, d_model=48, heads=2, **{off: False}))
    stage, other = ("tcn", "transformer") if off == "use_tcn" else ("transformer", "tcn")
    assert shapes(base, "head.") == shapes(abl, "head.")
    assert shapes(base, other + ".") == shapes(abl, other + ".")
    assert shapes(base, stage + ".") != shapes(abl, stage + ".")
    # the switched-off stage keeps the width contract: a projection, nothing more
    assert all(k.startswith(stage + ".proj") for k in shapes(abl, stage + "."))
    y = abl(torch.randn(2, 10, 24), torch.zeros(2, 10, dtype=torch.bool))
    assert y.shape == (2, 10, 8)


def test_kernel_size_one_keeps_length():
    m = SeqModel(model_config("tiny", in_dim=8, out_dim=2, tcn_channels=(32, 32), kernel_sizes=(1, 5),
                              dilations=(1, 3)))
    assert m(torch.randn(1, 7, 8), torch.zeros(1, 7, dtype=torch.bool)).shape == (1, 7, 2)


@pytest.mark.parametrize("kernels,dilations", [((3, 3), (1, 2)), ((3,) * 5, (1, 2, 4, 8, 16)),
                                               ((1, 5), (1, 3))])
def test_receptive_field_is_the_frames_an_output_depends_on(kernels, dilations):
    """Changing one input frame changes exactly the TCN outputs within receptive_field // 2 of
    it (on both sides: 'same' padding), so the documented span is the real one."""
    torch.manual_seed(0)
    cfg = model_config("tiny", in_dim=4, out_dim=2, kernel_sizes=kernels, dilations=dilations,
                       tcn_channels=(8,) * len(kernels), use_transformer=False)
    tcn = SeqModel(cfg).eval().tcn
    n, t, half = 200, 100, cfg.receptive_field // 2
    x = torch.randn(1, n, 4)
    x2 = x.clone()
    x2[0, t] += 50.0
    pad = torch.zeros(1, n, dtype=torch.bool)
    changed = (tcn(x, pad) - tcn(x2, pad)).abs().amax(-1)[0] > 0  # (n,)
    hit = changed.nonzero()[:, 0]
    assert hit.min().item() == t - half and hit.max().item() == t + half


def test_tiny_preset_sees_two_seconds_each_side():
    """Aff-Wild2 VA raters trail the face by 1-2 s (30 fps): the tiny preset's TCN must reach
    60 frames back (its earlier dilations 1, 2 reached 6)."""
    assert model_config("tiny").receptive_field // 2 >= 60


def test_sinusoidal_positions_have_no_parameters():
    m = SeqModel(model_config("tiny", in_dim=8, out_dim=2, positions="sinusoidal"))
    assert not any("pos" in k for k, _ in m.named_parameters())


@pytest.mark.parametrize("field,value", [("heads", 3), ("dropout", 1.5), ("positions", "rope"),
                                         ("kernel_sizes", (3,)), ("in_dim", 0)])
def test_bad_model_config_names_field(field, value):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{**MODEL_PRESETS["tiny"], field: value})


@pytest.mark.parametrize("task", sorted(TASKS))
def test_masked_labels_cannot_change_the_loss(task):
    torch.manual_seed(0)
    spec = TASKS[task]
    out = torch.randn(2, 12, spec.out_dim, requires_grad=True)
    labels = {"va": torch.rand(2, 12, 2) * 2 - 1, "expr": torch.randint(0, 8, (2, 12)),
              "au": torch.randint(0, 2, (2, 12, 12)).float()}[task]
    mask = torch.ones(2, 12, dtype=torch.bool)
    mask[0, 3] = False  # an invalid frame
    mask[1, 9:] = False  # padded frames
    loss = spec.loss(out, labels, mask)
    (grad,) = torch.autograd.grad(loss, out)
    garbage = labels.clone()
    garbage[~mask] = {"va": -5.0, "expr": 7, "au": 1.0}[task]
    garbage[0, 3] = {"va": 100.0, "expr": 0, "au": 0.0}[task]
    loss2 = spec.loss(out, garbage, mask)
    (grad2,) = torch.autograd.grad(loss2, out)
    assert loss.item() == loss2.item()
    torch.testing.assert_close(grad, grad2)
    assert torch.all(grad[~mask] == 0)
    changed = labels.clone()
    if task == "expr":
        changed[0, 0] = (int(labels[0, 0]) + 1) % 8
    else:
        changed[0, 0] = 1 - labels[0, 0] if task == "au" else -labels[0, 0]
    assert spec.loss(out, changed, mask).item() != loss.item()  # an unmasked label does matter


def test_ccc_loss_uses_population_statistics():
    from seqtrain.metrics import ccc
    from seqtrain.tasks import ccc_torch

    x, y = torch.randn(50, dtype=torch.float64), torch.randn(50, dtype=torch.float64)
    assert ccc_torch(x, y).item() == pytest.approx(ccc(x.numpy(), y.numpy()), abs=1e-6)
