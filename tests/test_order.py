"""trainkit.order: the encoder loops' data order is a pure function of (seed, epoch), so an
encoder run (MAE pretraining, EXPR fine-tuning) interrupted after an epoch and resumed ends with
the weights of the uninterrupted run, bit for bit (as tests/test_train_state.py for the state)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from encoders.checkpoint import load_checkpoint
from encoders.data import to_model_input
from encoders.finetune import FinetuneConfig, finetune
from encoders.pretrain import PretrainConfig, pretrain
from encoders.training import Runtime
from trainkit.order import EpochShuffle

torch.set_num_threads(1)


class Stop(Exception):
    pass


def stop_at(epoch: int) -> Runtime:
    """A runtime whose per-epoch report raises at ``epoch``'s end, before its state is saved:
    the run dies inside ``epoch`` and the saved state is the one of ``epoch - 1``."""

    def report(entry: dict) -> None:
        if entry["epoch"] == epoch:
            raise Stop

    return Runtime(report=report)


def same_weights(a, b) -> None:
    sa, sb = load_checkpoint(a)[0].state_dict(), load_checkpoint(b)[0].state_dict()
    assert list(sa) == list(sb)
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


def _plain(history: list[dict]) -> list[dict]:
    """History without the timing entries (data wait, step seconds)."""
    return [{k: v for k, v in h.items() if k not in ("data_wait", "step_s")} for h in history]


def test_epoch_shuffle_is_a_function_of_seed_and_epoch():
    s = EpochShuffle(10, seed=3)
    s.set_epoch(1)
    first = list(s)
    assert sorted(first) == list(range(10)) and list(s) == first  # same epoch, same order
    s.set_epoch(2)
    assert list(s) != first and sorted(s) == list(range(10))
    other = EpochShuffle(10, seed=3)
    other.set_epoch(1)
    assert list(other) == first  # a fresh sampler (a resumed process) at epoch 1: same order
    assert list(EpochShuffle(10, seed=4)) != list(EpochShuffle(10, seed=3))
    part = EpochShuffle(10, seed=3, num_samples=4)
    part.set_epoch(1)
    assert len(part) == 4 and list(part) == first[:4]
    loader = DataLoader(TensorDataset(torch.arange(10)), batch_size=2, sampler=part)
    assert [int(x) for (b,) in loader for x in b] == first[:4]
    for bad in (dict(n=0), dict(n=5, num_samples=6), dict(n=5, num_samples=0)):
        with pytest.raises(ValueError, match=next(iter(k for k in bad if k != "n"), "n")):
            EpochShuffle(seed=0, **bad)


@pytest.mark.parametrize("max_steps", [None, 2])
def test_interrupted_pretraining_resumes_bit_for_bit(tmp_path, max_steps):
    g = torch.Generator().manual_seed(0)
    imgs = to_model_input((torch.rand(40, 32, 32, 3, generator=g) * 255).to(torch.uint8).numpy(), 32)
    data = TensorDataset(imgs, torch.zeros(40, dtype=torch.long))  # 5 batches of 8 an epoch

    def cfg(out):
        return PretrainConfig.for_preset("tiny", img_size=32, epochs=3, batch_size=8, lr=2e-3,
                                         warmup_epochs=1, num_workers=0, out=str(out),
                                         device="cpu", max_steps=max_steps)

    full = pretrain(cfg(tmp_path / "a"), dataset=data)
    with pytest.raises(Stop):
        pretrain(cfg(tmp_path / "b"), stop_at(2), dataset=data)
    torch.manual_seed(99)  # a new process starts with other RNG states: the saved ones win
    resumed = pretrain(cfg(tmp_path / "b"), dataset=data)
    assert [h["steps"] for h in full["history"]] == [max_steps or 5] * 3
    assert _plain(resumed["history"]) == _plain(full["history"])
    same_weights(full["checkpoint"], resumed["checkpoint"])


@pytest.fixture(scope="module")
def affwild2(tmp_path_factory):
    from featurestore.synth import SynthConfig, generate

    out = tmp_path_factory.mktemp("order") / "syn"
    generate(out, SynthConfig(videos=8, frames=20, faces=0, size=32, test_videos=0,
                              val_fraction=0.3, seed=2), progress=False)
    return out / "affwild2"


def test_interrupted_finetuning_resumes_bit_for_bit(affwild2, tmp_path):
    def cfg(out):
        return FinetuneConfig.for_preset("tiny", affwild2=str(affwild2), out=str(out),
                                         img_size=32, epochs=3, batch_size=8, lr=1e-3,
                                         warmup_epochs=1, num_workers=0, device="cpu",
                                         max_frames_per_video=4, max_val_frames_per_video=2)

    full = finetune(cfg(tmp_path / "a"))
    with pytest.raises(Stop):
        finetune(cfg(tmp_path / "b"), stop_at(3))
    torch.manual_seed(99)
    resumed = finetune(cfg(tmp_path / "b"))
    assert _plain(resumed["history"]) == _plain(full["history"])
    same_weights(full["last_checkpoint"], resumed["last_checkpoint"])
