"""task = "many_series": a run on the station's real years from Parquet, scores checked by hand."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from rnnkit.cli import main
from rnnkit.tasks import parse_config
from rnnkit.experiment import evaluate_run, run_experiment

pytest.importorskip("pyarrow")
quiet = {"progress": False, "log": lambda line: None}
COLUMNS = ["T (degC)", "p (mbar)", "rh (%)", "VPdef (mbar)", "sh (g/kg)", "wv (m/s)"]
CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.fixture(scope="module")
def parquet(tmp_path_factory):
    if not os.environ.get("RNNKIT_DATA_DIR"):
        pytest.skip("RNNKIT_DATA_DIR is not set (the Makefile points it at ../shared/data)")
    from rnnkit.datasets.station_years import station_years_table, write_parquet

    table = station_years_table(columns=COLUMNS)
    table = table[table["id"].isin(["2015", "2016", "2024 export"])].groupby("id", sort=False).head(900)
    return table, write_parquet(table, tmp_path_factory.mktemp("pq") / "years.parquet", row_group_size=500)


def config(path, **data):
    return parse_config(
        {
            "name": "years",
            "task": "many_series",
            "data": {
                "dataset": "parquet",
                "paths": [str(path)],
                "id_column": "id",
                "time_column": "time",
                "target": "T (degC)",
                "features": COLUMNS[:2],
                "split": [0.6, 0.2, 0.2],
                **data,
            },
            "windows": {"sequence_length": 24, "shift": 3, "horizon": 12},
            "training": {"epochs": 1, "batch_size": 64},
            "output": {"report": False},
            "models": [{"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}],
        }
    )


def persistence_mae_by_hand(table, part: int, length=24, shift=3, horizon=12, fractions=(0.6, 0.2)) -> float:
    """|T(last input) - T(target)| over every window of every series' part, from the table itself."""
    errors = []
    for _, rows in table.groupby("id", sort=False):
        t = rows["T (degC)"].to_numpy()
        n = len(t)
        bounds = [0, int(fractions[0] * n), int(fractions[0] * n) + int(fractions[1] * n), n]
        seg = t[bounds[part] : bounds[part + 1]]
        last = length - 1
        for start in range(0, len(seg) - (last + horizon + 1) + 1, shift):  # 2015/2016/2024: no gap in these rows
            errors.append(abs(seg[start + last] - seg[start + last + horizon]))
    return float(np.mean(errors))


@pytest.mark.parametrize("scaling", ["global", "series"])
def test_a_run_scores_persistence_as_by_hand(parquet, tmp_path, scaling):
    table, path = parquet
    metrics = run_experiment(config(path, scaling=scaling), tmp_path / "run", **quiet)
    p = metrics["models"]["persistence"]
    assert p["mae_val"] == pytest.approx(persistence_mae_by_hand(table, 1), rel=1e-5)
    assert p["mae_test"] == pytest.approx(persistence_mae_by_hand(table, 2), rel=1e-5)
    assert p["skill_test"] == 0.0
    assert metrics["series"] == 3 and metrics["scaling"] == scaling
    stats = json.loads((tmp_path / "run" / "scaling.json").read_text())
    assert stats["ids"] == ["2015", "2016", "2024 export"] and len(stats["mean"]) == (3 if scaling == "series" else 1)
    # read back: evaluate scores the saved model again to the same numbers
    again = evaluate_run(tmp_path / "run")
    assert again["models"]["GRU(4)"]["mae_val"] == pytest.approx(metrics["models"]["GRU(4)"]["mae_val"], rel=1e-6)


def test_an_id_embedding_is_learned_per_series_and_read_back(parquet, tmp_path):
    from rnnkit.runs import load_trained

    _, path = parquet
    metrics = run_experiment(config(path, id_embedding=3), tmp_path / "run", **quiet)
    name, model, description = load_trained(tmp_path / "run", "GRU(4)")
    assert tuple(model.embedding.weight.shape) == (3, 3)  # 3 series, 3 numbers each
    assert description["metadata"]["features"] == ["T (degC)", "p (mbar)", "series index"]
    again = evaluate_run(tmp_path / "run")
    assert again["models"]["GRU(4)"]["mae_test"] == pytest.approx(metrics["models"]["GRU(4)"]["mae_test"], rel=1e-6)
    # the model's first layer reads the 2 value columns and the 3 embedding numbers
    assert model.model.layers[0].input_size == 5


def test_parquet_keys_belong_to_the_parquet_dataset(parquet, capsys, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text(
        'name = "x"\n[data]\nid_column = "station"\n[windows]\nsequence_length = 4\n'
        '[[models]]\nname = "d"\nlayers = [{type = "Dense", units = 1}]\n'
    )
    assert main(["train", str(bad)]) == 2
    assert "data.id_column: applies to data.dataset = 'parquet'" in capsys.readouterr().err


def test_the_station_years_config_trains_from_the_command_line(parquet, tmp_path):
    table, path = parquet
    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                str(CONFIGS / "station_years.toml"),
                "--data",
                str(path),
                "--epochs",
                "1",
                "--output",
                str(run),
                "--quiet",
            ]
        )
        == 0
    )
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["series"] == 3 and metrics["scaling"] == "series" and metrics["rows"] == len(table)
    by_hand = persistence_mae_by_hand(table, 1, length=48, shift=1, horizon=24, fractions=(0.7, 0.15))
    assert metrics["models"]["persistence"]["mae_val"] == pytest.approx(by_hand, rel=1e-5)
    assert (run / "report.html").is_file()
