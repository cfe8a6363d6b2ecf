"""rnnkit evaluate RUN --data FILE...: a run's models and persistence on other files, by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from helpers import tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.tasks import parse_config
from rnnkit.experiment import predict_file, run_experiment
from rnnkit.transfer import evaluate_on_files

quiet = {"progress": False, "log": lambda line: None}


def test_scores_on_other_files_match_predictions_and_persistence_by_hand(tmp_path):
    train = write_jena_csv(tmp_path / "then.csv", days=40, seed=0)
    now = write_jena_csv(tmp_path / "now.csv", days=12, seed=7)
    run = tmp_path / "run"
    run_experiment(parse_config(tiny_config(train)), run, **quiet)
    (result,) = evaluate_on_files(run, [str(now)])
    t = pd.read_csv(now)["T (degC)"].to_numpy()
    last = np.arange(23, len(t) - 6)  # 24 rows in, 6 ahead, every window of the file
    assert result["windows"] == len(last) and result["rows"] == len(t)
    persistence = np.abs(t[last + 6] - t[last]).mean()
    assert result["models"]["persistence"]["mae"] == pytest.approx(persistence, abs=1e-4)
    assert result["models"]["persistence"]["skill"] == 0.0
    # The model's MAE from rnnkit predict's table on the same file (same windows, same scaler).
    table = predict_file(run, [str(now)], "GRU(4)")
    pred = table["predicted T (degC)"].to_numpy()[: len(last)]
    mae = np.abs(pred - t[last + 6]).mean()
    assert result["models"]["GRU(4)"]["mae"] == pytest.approx(mae, abs=1e-4)
    assert result["models"]["GRU(4)"]["skill"] == pytest.approx(1 - mae / persistence, abs=1e-5)


def test_the_cli_prints_a_table_per_file_and_refuses_a_file_without_the_columns(tmp_path, capsys):
    train = write_jena_csv(tmp_path / "then.csv", days=40)
    run = tmp_path / "run"
    run_experiment(parse_config(tiny_config(train)), run, **quiet)
    a, b = write_jena_csv(tmp_path / "a.csv", days=10, seed=1), write_jena_csv(tmp_path / "b.csv", days=11, seed=2)
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data", str(a), "--data", str(b)]) == 0
    text = capsys.readouterr().out
    assert text.startswith("a.csv: 240 rows") and "\nb.csv: 264 rows" in text
    assert text.count("persistence") == 2 and text.count("GRU(4)") == 2
    bad = write_jena_csv(tmp_path / "bad.csv", days=10, columns=("T (degC)",))
    assert main(["evaluate", str(run), "--data", str(bad)]) == 2
    err = capsys.readouterr().err
    assert "the run's models need the columns ['p (mbar)']" in err and len(err.strip().splitlines()) == 1
