"""Ensembles (rnnkit.models.ensemble, a model with members = [...]): the mean of the members, saved and read back
as one model, scored, predicted and exported like any other; bad configs are one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import rnnkit as rk
from helpers import one_line_error, tiny_config, write_jena_csv
from rnnkit.experiment import evaluate_run, predict_file, run_experiment
from rnnkit.models.ensemble import Ensemble
from rnnkit.runs import load_trained
from rnnkit.tasks import parse_config
from rnnkit.training import predict

quiet = {"progress": False, "log": lambda line: None}
GRU4 = [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]


def test_the_ensemble_is_the_mean_of_its_members():
    torch.manual_seed(0)
    members = [rk.Sequential(rk.layers.GRU(3), rk.layers.Dense(2), input_shape=(5, 2)) for _ in range(3)]
    x = torch.randn(7, 5, 2)
    expected = (members[0](x) + members[1](x) + members[2](x)) / 3
    assert torch.allclose(Ensemble(members)(x), expected, atol=1e-7)
    with pytest.raises(ValueError, match="at least two members, got 1"):
        Ensemble(members[:1])


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ensemble")
    csv = write_jena_csv(folder / "a.csv", days=40)
    raw = tiny_config(csv, windows={"residual": True})
    raw["models"] = [
        {"name": "GRU a", "layers": GRU4},
        {"name": "GRU b", "layers": GRU4, "training": {"seed": 1}},
        {"name": "LSTM c", "layers": [{"type": "LSTM", "units": 3}, {"type": "Dense", "units": 1}]},
        {"name": "mean of 3", "members": ["GRU a", "GRU b", "LSTM c"]},
    ]
    run = folder / "run"
    metrics = run_experiment(parse_config(raw), run, **quiet)
    return run, csv, metrics


def test_a_saved_ensemble_reads_back_as_one_model_with_identical_predictions(ensemble_run):
    run, csv, metrics = ensemble_run
    name, model, description = load_trained(run, "mean of 3")
    assert isinstance(model, Ensemble) and description["metadata"]["members"] == ["GRU a", "GRU b", "LSTM c"]
    members = [load_trained(run, n)[1] for n in ("GRU a", "GRU b", "LSTM c")]
    x = torch.randn(16, 24, 2)
    # read back twice (the run's task and rk.load_model): the same numbers, and the mean of the members read back
    again = rk.load_model(run / "models" / "mean_of_3" / "model")
    assert torch.equal(predict(model, x), predict(again, x))
    assert torch.allclose(predict(model, x), sum(predict(m, x) for m in members) / 3, atol=1e-6)
    # rnnkit predict: the ensemble's column is the mean of its members' columns
    tables = {n: predict_file(run, [str(csv)], n) for n in ("mean of 3", "GRU a", "GRU b", "LSTM c")}
    column = "predicted T (degC)"
    mean = sum(tables[n][column].to_numpy() for n in ("GRU a", "GRU b", "LSTM c")) / 3
    assert np.allclose(tables["mean of 3"][column].to_numpy(), mean, atol=1e-5)


def test_the_ensemble_is_scored_like_a_model_and_evaluate_gives_the_same_scores(ensemble_run):
    run, _, metrics = ensemble_run
    m = metrics["models"]["mean of 3"]
    assert m["kind"] == "model" and m["members"] == ["GRU a", "GRU b", "LSTM c"]
    assert m["params"] == sum(metrics["models"][n]["params"] for n in m["members"])
    assert m["train_seconds"] == pytest.approx(sum(metrics["models"][n]["train_seconds"] for n in m["members"]))
    again = evaluate_run(run)
    for key in ("mae_val", "mae_test", "rmse_test", "skill_test"):
        assert again["models"]["mean of 3"][key] == pytest.approx(m[key], abs=1e-9)
    result = json.loads((run / "models" / "mean_of_3" / "result.json").read_text())
    assert result["mae_val"] == m["mae_val"] and result["epochs_run"] == 0


def test_export_writes_the_ensemble_as_one_graph(ensemble_run, tmp_path):
    pytest.importorskip("onnx", reason="the 'onnx' package (rnnkit[onnx]) is not installed")
    pytest.importorskip("onnxruntime", reason="'onnxruntime' (rnnkit[onnx]) is not installed")
    from rnnkit.export import export_run

    run, _, _ = ensemble_run
    name, path, difference = export_run(run, "mean of 3", tmp_path / "ensemble.onnx")
    assert name == "mean of 3" and path.is_file() and difference is not None and difference < 1e-5


@pytest.mark.parametrize(
    ("models", "fragments"),
    [
        ([{"name": "e", "members": ["GRU a", "GRU b"]}], ("models[0].members", "'GRU a' is not a model listed before")),
        (
            [{"name": "GRU a", "layers": GRU4}, {"name": "e", "members": ["GRU a"]}],
            ("at least two different model names", "['GRU a']"),
        ),
        (
            [{"name": "GRU a", "layers": GRU4}, {"name": "e", "members": ["GRU a", "GRU a"]}],
            ("at least two different model names",),
        ),
        (
            [
                {"name": "GRU a", "layers": GRU4},
                {"name": "GRU b", "layers": GRU4},
                {"name": "e", "members": ["GRU a", "GRU b"], "layers": GRU4},
            ],
            ("either layers", "or members", "got both"),
        ),
        ([{"name": "x"}], ("model 'x' needs either layers", "got neither")),
        (
            [
                {"name": "GRU a", "layers": GRU4},
                {"name": "GRU b", "layers": GRU4},
                {"name": "e", "members": ["GRU a", "GRU b"], "training": {"epochs": 3}},
            ],
            ("trains nothing", "training.epochs"),
        ),
        (
            [
                {"name": "GRU a", "layers": GRU4},
                {"name": "GRU b", "layers": GRU4},
                {"name": "e", "members": ["GRU a", "GRU b"]},
                {"name": "f", "members": ["e", "GRU a"]},
            ],
            ("'e' is an ensemble itself",),
        ),
    ],
)
def test_bad_ensembles_are_one_line_errors(tmp_path, capsys, models, fragments):
    from rnnkit.config import config_toml, parse_schema

    raw = tiny_config(write_jena_csv(tmp_path / "a.csv", days=10))
    base = "".join(
        line
        for line in config_toml(parse_schema({**raw, "models": []})).splitlines(keepends=True)
        if not line.startswith("models = ")
    )
    blocks = []
    for model in models:
        lines = ["", "[[models]]"] + [f"{k} = {json.dumps(v)}" for k, v in model.items() if k in ("name", "members")]
        if "layers" in model:
            lines.append(
                "layers = ["
                + ", ".join(
                    "{" + ", ".join(f"{k} = {json.dumps(v)}" for k, v in spec.items()) + "}" for spec in model["layers"]
                )
                + "]"
            )
        if "training" in model:
            lines.append("training = {" + ", ".join(f"{k} = {v}" for k, v in model["training"].items()) + "}")
        blocks += lines
    path = tmp_path / "bad.toml"
    path.write_text(base + "\n".join(blocks) + "\n", encoding="utf-8")
    one_line_error(capsys, ["train", path, "--output", tmp_path / "run"], *fragments)
