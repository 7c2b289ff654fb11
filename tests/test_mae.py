"""MAE tensor functions, the model, presets and checkpoints."""

import json

import pytest
import torch

from encoders.checkpoint import (
    CheckpointError,
    checkpoint_sha256,
    load_checkpoint,
    save_checkpoint,
)
from encoders.mae import (
    ExprClassifier,
    MaskedAutoencoder,
    masked_mse,
    patchify,
    random_masking,
    unpatchify,
)
from encoders.pos_embed import sincos_2d
from encoders.presets import PRESETS, MAEConfig, get_preset

torch.set_num_threads(1)


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_patchify_round_trip(channels):
    imgs = torch.randn(2, channels, 32, 48)
    x = patchify(imgs, 16)
    assert x.shape == (2, 6, 16 * 16 * channels)
    # patch 1 (row 0, col 1) holds pixels [0:16, 16:32] in (p, p, C) order
    assert torch.equal(x[0, 1].view(16, 16, channels), imgs[0, :, :16, 16:32].permute(1, 2, 0))
    assert torch.equal(unpatchify(x, 16, channels, grid_h=2), imgs)


def test_random_masking_keeps_exact_count_and_differs_per_image():
    x = torch.arange(4 * 49 * 2, dtype=torch.float32).view(4, 49, 2)
    kept, mask, ids_restore = random_masking(x, 0.75, torch.Generator().manual_seed(0))
    k = int(49 * 0.25)
    assert kept.shape == (4, k, 2)
    assert torch.equal(mask.sum(1), torch.full((4,), 49.0 - k))
    assert len({tuple(m.tolist()) for m in mask}) > 1  # a different mask per image
    for i in range(4):  # the kept tokens are exactly the unmasked ones
        visible = x[i][mask[i] == 0]
        assert torch.equal(kept[i].sort(0).values, visible.sort(0).values)
    assert torch.equal(ids_restore.sort(1).values, torch.arange(49).expand(4, -1))


def test_loss_ignores_visible_patches_only():
    cfg = get_preset("tiny", img_size=32)
    model = MaskedAutoencoder(cfg).eval()
    imgs = torch.randn(2, 3, 32, 32)
    gen = torch.Generator().manual_seed(1)
    with torch.no_grad():
        loss, pred, mask = model(imgs, generator=gen)
        visible = int((mask[0] == 0).nonzero()[0])
        masked = int((mask[0] == 1).nonzero()[0])
        target = patchify(imgs, cfg.patch_size)
        t_vis = target.clone()
        t_vis[0, visible] += 5.0
        t_mask = target.clone()
        t_mask[0, masked] += 5.0
        base = model.forward_loss(imgs, pred, mask)
        assert torch.allclose(base, loss)
        assert torch.allclose(model.forward_loss(unpatchify(t_vis, cfg.patch_size, 3), pred, mask), base)
        assert not torch.allclose(model.forward_loss(unpatchify(t_mask, cfg.patch_size, 3), pred, mask), base)


def test_norm_pix_loss_normalises_targets():
    pred = torch.zeros(1, 2, 4)
    target = torch.tensor([[[1.0, 3.0, 1.0, 3.0], [5.0, 5.0, 5.0, 5.0]]])
    mask = torch.tensor([[1.0, 0.0]])
    assert masked_mse(pred, target, mask).item() == pytest.approx(5.0)
    # normalised patch is +-1 / sqrt(var=4/3) -> mean square 3/4
    assert masked_mse(pred, target, mask, norm_pix=True).item() == pytest.approx(0.75, rel=1e-4)


def test_sincos_positions_are_distinct_and_bounded():
    emb = sincos_2d(32, 3, 4, cls_token=True)
    assert emb.shape == (13, 32)
    assert torch.all(emb[0] == 0) and emb.abs().max() <= 1.0
    assert torch.cdist(emb[1:], emb[1:]).add(torch.eye(12)).min() > 0.1


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_build_and_embed(name):
    cfg = PRESETS[name]
    assert cfg.patch_size == (8 if name == "tiny_p8" else 16)
    assert cfg.mask_ratio == 0.75 and cfg.img_size == 112
    if name == "vit_base":
        assert (cfg.embed_dim, cfg.depth, cfg.num_heads) == (768, 12, 12)
        assert (cfg.decoder_embed_dim, cfg.decoder_depth, cfg.decoder_num_heads) == (512, 8, 16)
        return  # building ViT-B is covered by the benchmark; keep the test fast
    small = get_preset(name, img_size=48)
    model = MaskedAutoencoder(small)
    with torch.no_grad():
        assert model.embed(torch.randn(2, 3, 48, 48)).shape == (2, small.feature_dim)
    assert small.feature_dim == cfg.embed_dim * (small.num_patches if name == "tiny_tok" else 1)


def test_readout_mean_and_tokens_read_the_same_tokens():
    """`tokens` is every normed patch token in patch order; `mean` is their mean; the weights and
    the MAE loss do not depend on the readout (same seed, same model)."""
    cfg = get_preset("tiny", img_size=32)
    tok_cfg = get_preset("tiny", img_size=32, readout="tokens")
    torch.manual_seed(0)
    mean_model = MaskedAutoencoder(cfg).eval()
    torch.manual_seed(0)
    tok_model = MaskedAutoencoder(tok_cfg).eval()
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        tokens = tok_model.encoder(x)[0][:, 1:]  # (3, L, D)
        flat = tok_model.embed(x)  # (3, L*D)
        assert flat.shape == (3, tok_cfg.num_patches * tok_cfg.embed_dim) == (3, tok_cfg.feature_dim)
        assert torch.equal(flat.view(3, tok_cfg.num_patches, -1), tokens)
        assert torch.allclose(mean_model.embed(x), tokens.mean(1), atol=1e-6)
        gen = [torch.Generator().manual_seed(2) for _ in range(2)]
        assert torch.equal(mean_model(x, generator=gen[0])[0], tok_model(x, generator=gen[1])[0])
    head = ExprClassifier(tok_cfg, 8).head[-1]
    assert head.in_features == tok_cfg.feature_dim
    with pytest.raises(ValueError, match="readout"):
        get_preset("tiny", readout="max")
    old = {k: v for k, v in PRESETS["tiny"].to_dict().items() if k != "readout"}
    assert MAEConfig.from_dict(old).readout == "mean"  # checkpoints written before the field


@pytest.mark.parametrize("field,value", [("mask_ratio", 1.0), ("img_size", 50),
                                         ("num_heads", 3), ("depth", 0)])
def test_config_errors_name_the_field(field, value):
    with pytest.raises(ValueError, match=field):
        get_preset("tiny", **{field: value})
    with pytest.raises(ValueError, match="preset"):
        get_preset("huge")


@pytest.mark.parametrize("stage", ["pretrain", "finetune"])
def test_checkpoint_round_trip_gives_identical_outputs(tmp_path, stage):
    cfg = get_preset("tiny", img_size=32)
    model = MaskedAutoencoder(cfg) if stage == "pretrain" else ExprClassifier(cfg, 8, 0.1)
    model.eval()
    save_checkpoint(tmp_path / "ck", model, cfg, {"epoch": 3})
    loaded, cfg2, meta = load_checkpoint(tmp_path / "ck")
    assert cfg2 == cfg and meta["stage"] == stage and meta["epoch"] == 3
    assert type(loaded) is type(model)
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded.embed(x), model.embed(x))
        if stage == "finetune":
            assert torch.equal(loaded(x), model(x))
    assert len(checkpoint_sha256(tmp_path / "ck")) == 64
    assert sorted(p.name for p in (tmp_path / "ck").iterdir()) == ["config.json",
                                                                   "model.safetensors"]


def test_torn_checkpoint_is_detected(tmp_path):
    cfg = get_preset("tiny", img_size=32)
    save_checkpoint(tmp_path, MaskedAutoencoder(cfg), cfg)
    doc = json.loads((tmp_path / "config.json").read_text())
    doc["weights_sha256"] = "0" * 64
    (tmp_path / "config.json").write_text(json.dumps(doc))
    with pytest.raises(CheckpointError, match="sha256"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no checkpoint config"):
        load_checkpoint(tmp_path / "missing")


def test_config_dict_round_trip_rejects_unknown_fields():
    cfg = PRESETS["tiny"]
    assert MAEConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="bogus"):
        MAEConfig.from_dict({**cfg.to_dict(), "bogus": 1})
