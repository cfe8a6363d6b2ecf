"""Atomic writes; model files: exact safetensors round trips, and no code runs when loading."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.io import (
    load_weights,
    read_model_json,
    save_model,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)


def test_atomic_writes_put_the_content_and_leave_no_temp_file(tmp_path):
    write_bytes_atomic(tmp_path / "a.bin", b"\x00\x01")
    write_text_atomic(tmp_path / "b.txt", "héllo\n")
    write_json_atomic(tmp_path / "c.json", {"mae": 2.5, "units": "degC"})
    assert (tmp_path / "a.bin").read_bytes() == b"\x00\x01"
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "héllo\n"
    assert json.loads((tmp_path / "c.json").read_text()) == {"mae": 2.5, "units": "degC"}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.bin", "b.txt", "c.json"]


def test_an_interrupted_write_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "metrics.json"
    write_text_atomic(target, "old")

    def broken_replace(src, dst):
        raise KeyboardInterrupt  # killed between writing the temp file and renaming it

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(KeyboardInterrupt):
        write_text_atomic(target, "new")
    monkeypatch.undo()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_atomic_write_into_a_missing_folder_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_text_atomic(tmp_path / "nope" / "x.txt", "x")


class WithConfig(nn.Module):
    def __init__(self, units: int = 3):
        super().__init__()
        self.units = units
        self.lin = nn.Linear(2, units)
        self.register_buffer("count", torch.tensor([7], dtype=torch.int64))
        self.register_buffer("table", torch.randn(2, 2, dtype=torch.float64))

    def forward(self, x):
        return self.lin(x)

    def get_config(self):
        return {"units": self.units}


def test_safetensors_round_trip_is_exact(tmp_path):
    torch.manual_seed(0)
    model = WithConfig()
    w_path, j_path = save_model(model, tmp_path / "model", metadata={"target": "T (degC)"})
    assert (w_path.name, j_path.name) == ("model.safetensors", "model.json")

    fresh = WithConfig()
    tensors = load_weights(w_path, fresh)
    for k, v in model.state_dict().items():
        assert torch.equal(fresh.state_dict()[k], v) and fresh.state_dict()[k].dtype == v.dtype, k
        assert torch.equal(tensors[k], v)

    description = read_model_json(tmp_path / "model")
    assert description["config"] == {"units": 3}
    assert description["class"].endswith("WithConfig")
    assert description["params"] == 2 * 3 + 3
    assert description["tensors"]["table"] == {"shape": [2, 2], "dtype": "float64"}
    assert description["metadata"] == {"target": "T (degC)"}


def test_model_without_get_config_is_saved_with_null_config(tmp_path):
    save_model(nn.Linear(2, 1), tmp_path / "m.safetensors")
    assert read_model_json(tmp_path / "m")["config"] is None


def _malicious_pickle(marker: Path) -> bytes:
    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code ran"))

    return pickle.dumps(Payload())


def test_a_pickle_given_as_a_model_file_runs_no_code(tmp_path):
    # The payload is live: unpickling it does write the marker.
    probe = tmp_path / "probe"
    pickle.loads(_malicious_pickle(probe))  # noqa: S301 - proving the payload works
    assert probe.read_text() == "code ran"

    marker = tmp_path / "marker"
    model_file = tmp_path / "model.safetensors"
    model_file.write_bytes(_malicious_pickle(marker))
    with pytest.raises(RnnkitError, match="not a safetensors file"):
        load_weights(model_file, nn.Linear(2, 1))
    assert not marker.exists()


def test_a_torch_save_file_is_refused(tmp_path):
    path = tmp_path / "model.safetensors"
    torch.save(nn.Linear(2, 1).state_dict(), path)
    with pytest.raises(RnnkitError, match="not a safetensors file"):
        load_weights(path)


def test_a_truncated_model_file_is_refused(tmp_path):
    save_model(nn.Linear(4, 4), tmp_path / "model")
    data = (tmp_path / "model.safetensors").read_bytes()
    (tmp_path / "model.safetensors").write_bytes(data[:-10])
    with pytest.raises(RnnkitError, match="not a safetensors file"):
        load_weights(tmp_path / "model.safetensors")


def test_weights_that_do_not_fit_the_model_are_named(tmp_path):
    save_model(nn.Linear(4, 2), tmp_path / "model")
    with pytest.raises(RnnkitError, match=r"wrong shapes \['weight \(2, 4\) != \(1, 4\)'"):
        load_weights(tmp_path / "model.safetensors", nn.Linear(4, 1))
    with pytest.raises(RnnkitError, match=r"missing \['0.bias', '0.weight'\]"):
        load_weights(tmp_path / "model.safetensors", nn.Sequential(nn.Linear(4, 2)))


def test_missing_model_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_weights(tmp_path / "absent.safetensors")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_model_json(tmp_path / "absent")


def test_foreign_json_is_not_a_model_description(tmp_path):
    (tmp_path / "m.json").write_text('{"hello": 1}')
    with pytest.raises(RnnkitError, match="is not an rnnkit model description"):
        read_model_json(tmp_path / "m")
