"""Checkpoints: optimizer state through safetensors + JSON round trips exactly; foreign files refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.io import write_bytes_atomic
from rnnkit.training import checkpoint as ckpt


def _stepped(opt_cls, **kw):
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = opt_cls(model.parameters(), **kw)
    for _ in range(3):
        opt.zero_grad()
        model(torch.randn(4, 3)).pow(2).sum().backward()
        opt.step()
    return model, opt


@pytest.mark.parametrize(
    ("opt_cls", "kw"),
    [
        (torch.optim.Adam, {"lr": 0.01, "eps": 1e-7}),
        (torch.optim.RMSprop, {"lr": 0.01, "alpha": 0.9}),
        (torch.optim.SGD, {"lr": 0.1, "momentum": 0.9}),
    ],
)
def test_optimizer_state_round_trips_through_a_checkpoint(tmp_path, opt_cls, kw):
    model, opt = _stepped(opt_cls, **kw)
    tensors, meta = ckpt.flatten_optimizer(opt)
    ckpt.save_checkpoint(tmp_path, {**tensors, **ckpt.with_prefix(model.state_dict(), "model.")}, {"optimizer": meta})
    loaded_tensors, loaded_meta = ckpt.load_checkpoint(tmp_path)

    fresh = nn.Linear(3, 2)
    fresh.load_state_dict(ckpt.strip_prefix(loaded_tensors, "model."))
    fresh_opt = opt_cls(fresh.parameters(), **kw)
    ckpt.unflatten_optimizer(fresh_opt, loaded_tensors, loaded_meta["optimizer"])

    a, b = opt.state_dict(), fresh_opt.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for i in a["state"]:
        for name, value in a["state"][i].items():
            assert torch.equal(value, b["state"][i][name]), (i, name)
    # and the next step is the same
    x = torch.randn(4, 3)
    for m, o in ((model, opt), (fresh, fresh_opt)):
        o.zero_grad()
        m(x).pow(2).sum().backward()
        o.step()
    assert torch.equal(model.weight, fresh.weight)


def test_a_safetensors_file_without_checkpoint_metadata_is_refused(tmp_path):
    from rnnkit.io import tensors_to_bytes

    write_bytes_atomic(tmp_path / ckpt.CHECKPOINT_NAME, tensors_to_bytes({"w": torch.zeros(1)}))
    with pytest.raises(RnnkitError, match="is a safetensors file but not an rnnkit checkpoint"):
        ckpt.load_checkpoint(tmp_path)


def test_a_pickled_checkpoint_is_refused(tmp_path):
    torch.save({"w": torch.zeros(1)}, tmp_path / ckpt.CHECKPOINT_NAME)
    with pytest.raises(RnnkitError, match="not a safetensors file"):
        ckpt.load_checkpoint(tmp_path)
