"""Denormal flushing: on during fit, the caller's setting restored (also after an error), part of resume."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.training import Trainer
from rnnkit.training.trainer import denormals_flushed, flushing_denormals


class Probe(nn.Module):
    """A linear model that records, at each forward call in training, whether denormals are flushed."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.linear = nn.Linear(2, 1)
        self.fail = fail
        self.seen: list[bool] = []

    def forward(self, x):
        if self.training:
            self.seen.append(flushing_denormals())
            if self.fail:
                raise RuntimeError("boom")
        return self.linear(x)


class GRULast(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gru = nn.GRU(3, 8, batch_first=True)
        self.head = nn.Linear(8, 1)

    def forward(self, x):
        return self.head(self.gru(x)[0][:, -1])


@pytest.fixture
def flush_off():
    """Start each test with flushing off, and leave the process as the test run found it."""
    previous = flushing_denormals()
    torch.set_flush_denormal(False)
    yield
    torch.set_flush_denormal(previous)


def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(16, 2, generator=g), torch.randn(16, 1, generator=g)


def test_probe_sees_the_setting(flush_off):
    assert flushing_denormals() is False
    torch.set_flush_denormal(True)
    assert flushing_denormals() is True
    # with flushing on, float32 arithmetic that would give a denormal gives zero
    assert (torch.tensor([1e-30]) * 1e-10).item() == 0.0


def test_fit_flushes_by_default_and_restores(flush_off):
    model = Probe()
    Trainer(epochs=2, batch_size=8).fit(model, data())
    assert model.seen == [True] * 4
    assert flushing_denormals() is False


def test_fit_without_flushing_turns_it_off_and_restores(flush_off):
    torch.set_flush_denormal(True)
    model = Probe()
    Trainer(epochs=1, batch_size=8, flush_denormal=False).fit(model, data())
    assert model.seen == [False, False]
    assert flushing_denormals() is True


def test_setting_restored_after_an_error(flush_off):
    with pytest.raises(RuntimeError, match="boom"):
        Trainer(epochs=1).fit(Probe(fail=True), data())
    assert flushing_denormals() is False


def test_context_manager_restores_on_error(flush_off):
    with pytest.raises(KeyError):
        with denormals_flushed(True):
            assert flushing_denormals() is True
            raise KeyError("x")
    assert flushing_denormals() is False


def test_resume_with_another_setting_raises(tmp_path, flush_off):
    Trainer(epochs=1, batch_size=8, checkpoint_dir=tmp_path).fit(Probe(), data())
    with pytest.raises(RnnkitError, match=r"flush_denormal: checkpoint True, now False"):
        Trainer(epochs=2, batch_size=8, checkpoint_dir=tmp_path, flush_denormal=False).fit(Probe(), data(), resume=True)


def test_flushing_changes_a_fit_by_less_than_float32_resolution(flush_off):
    # 60 steps of a GRU, gradients fading through time: flushed and unflushed runs agree
    x = torch.randn(32, 60, 3, generator=torch.Generator().manual_seed(1))
    y = x[:, -5:, 0].sum(1, keepdim=True)

    def run(flush):
        torch.manual_seed(0)
        model = GRULast()
        Trainer(epochs=2, batch_size=16, flush_denormal=flush).fit(model, (x, y))
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    torch.testing.assert_close(run(True), run(False), rtol=1e-6, atol=1e-7)


def test_invalid_flush_denormal():
    with pytest.raises(ValueError, match=r"flush_denormal must be True or False, got 1"):
        Trainer(flush_denormal=1)
