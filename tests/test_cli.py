"""The command line: commands work, and bad input is one line on stderr with exit code 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

from helpers import tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.datasets import jena_climate

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def toml_of(config: dict) -> str:
    """A small TOML writer for the test configs (tables, arrays of tables, inline layer tables)."""

    def value(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    lines = [f"{k} = {value(v)}" for k, v in config.items() if not isinstance(v, dict) and k != "models"]
    for k, v in config.items():
        if isinstance(v, dict):
            lines += [f"[{k}]", *[f"{kk} = {value(vv)}" for kk, vv in v.items()]]
    for model in config.get("models", []):
        lines += ["[[models]]", *[f"{k} = {value(v)}" for k, v in model.items()]]
    text = "\n".join(lines) + "\n"
    assert tomllib.loads(text) == config
    return text


@pytest.fixture
def setup(tmp_path):
    csv = write_jena_csv(tmp_path / "hourly.csv")
    config = tmp_path / "tiny.toml"
    config.write_text(toml_of(tiny_config(csv)))
    return tmp_path, csv, config


def one_line_error(capsys, argv, *fragments):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_train_evaluate_predict(setup, capsys):
    tmp, csv, config = setup
    run = tmp / "run"
    assert main(["train", str(config), "--output", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "persistence" in out and "GRU(4)" in out and "MAE test (degC)" in out
    stored = json.loads((run / "metrics.json").read_text())
    # "best" means best (issue 20, part 4): the best baseline beside the best model, a line when it wins
    baselines = {n: m["mae_val"] for n, m in stored["models"].items() if m["kind"] == "baseline"}
    first = min(baselines, key=baselines.get)
    assert stored["best_baseline"] == first and stored["best"] == "GRU(4)"
    model_val = stored["models"]["GRU(4)"]["mae_val"]
    assert (
        f"best baseline by validation MAE: {first} ({baselines[first]:.3f}, best model GRU(4) {model_val:.3f})"
    ) in out
    assert ("a baseline wins: " in out) == (baselines[first] < model_val)
    # written: (issue 20, part 7) names every file of the folder and of each model's folder, read from the disk
    lines = out.splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("written: "))
    assert lines[at] == f"written: {run}/: " + ", ".join(sorted(p.name for p in run.iterdir() if p.is_file()))
    assert {"config.json", "scaler.json", "run.json", "report.html", "metrics.json"} <= set(
        lines[at].split(": ")[2].split(", ")
    )
    model_files = sorted(p.name + "/" * p.is_dir() for p in (run / "models" / "gru_4").iterdir())
    assert lines[at + 1] == f"  models/: gru_4/ ({', '.join(model_files)})" and "model.safetensors" in model_files
    assert [p.name for p in (run / "models").iterdir()] == ["gru_4"] and len(lines) == at + 2
    assert main(["evaluate", str(run)]) == 0
    table = capsys.readouterr().out
    assert f"{stored['models']['GRU(4)']['mae_test']:.3f}" in table
    assert f"best baseline by validation MAE: {first}" in table
    assert "'seconds' is each model's training time, read from the run" in table
    new = write_jena_csv(tmp / "new.csv", days=3, seed=3)
    assert main(["predict", str(run), "--data", str(new), "--output", str(tmp / "p.csv")]) == 0
    printed = capsys.readouterr().out
    assert "49 predictions written" in printed
    assert (tmp / "p.csv").read_text().splitlines()[0] == (
        "model,last_input_time,target_time,predicted T (degC),true T (degC),persistence T (degC)"
    )
    # the truth is the file's row at the target time (NaN past its end), persistence the last input's value
    got = pd.read_csv(tmp / "p.csv", parse_dates=["last_input_time", "target_time"])
    series = jena_climate(str(new))["T (degC)"]
    assert (got["model"] == "GRU(4)").all()
    assert got["persistence T (degC)"].to_numpy() == pytest.approx(series.loc[got["last_input_time"]].to_numpy())
    known = got["target_time"].isin(series.index)
    assert 0 < known.sum() < len(got) and got["true T (degC)"].isna().to_numpy().tolist() == (~known).tolist()
    assert got["true T (degC)"][known].to_numpy() == pytest.approx(series.loc[got["target_time"][known]].to_numpy())
    mae = (got["predicted T (degC)"] - got["true T (degC)"])[known].abs().mean()
    assert f"score on the {known.sum()} windows whose target is in the file: GRU(4) MAE {mae:.3f}" in printed


def test_predict_with_a_stateful_model_is_refused_in_one_line(tmp_path, capsys):
    # issue 22: was "internal error ... stateful layer holds states for batch size 4, got a batch of ..."
    csv = write_jena_csv(tmp_path / "hourly.csv")
    config = tmp_path / "stateful.toml"
    stateful = {
        "name": "stateful GRU(4)",
        "layers": [{"type": "GRU", "units": 4, "stateful": True}, {"type": "Dense", "units": 1}],
        "training": {"batch_size": 4, "shuffle": False, "stateful": True, "epochs": 1},
    }
    config.write_text(toml_of(tiny_config(csv, baselines=["persistence"], models=[stateful])))
    run = tmp_path / "run"
    assert main(["train", str(config), "--output", str(run), "--quiet"]) == 0
    capsys.readouterr()
    one_line_error(
        capsys,
        ["predict", str(run), "--data", str(csv), "--model", "stateful GRU(4)"],
        "predict: the model 'stateful GRU(4)' is stateful",
        "--model NAME",
    )


def test_train_with_epochs_override_and_resume_of_a_finished_run(setup, capsys):
    tmp, _, config = setup
    run = tmp / "run"
    assert main(["train", str(config), "--output", str(run), "--epochs", "1", "--quiet"]) == 0
    assert json.loads((run / "models" / "gru_4" / "result.json").read_text())["epochs_run"] == 1
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--epochs", "1", "--quiet"]) == 0
    assert "GRU(4): finished in the earlier run, read back" in capsys.readouterr().out


def test_train_threads_sets_torchs_thread_count_for_the_run_and_gives_the_same_scores(setup, capsys):
    import torch

    tmp, _, config = setup
    before = torch.get_num_threads()
    try:
        assert main(["train", str(config), "--output", str(tmp / "one"), "--threads", "1", "--quiet"]) == 0
        assert torch.get_num_threads() == 1
        torch.set_num_threads(2)
        assert main(["train", str(config), "--output", str(tmp / "two"), "--quiet"]) == 0
        assert torch.get_num_threads() == 2  # no --threads, OMP_NUM_THREADS set (conftest): torch's count stands
    finally:
        torch.set_num_threads(before)
    one, two = (json.loads((tmp / r / "metrics.json").read_text())["models"]["GRU(4)"] for r in ("one", "two"))
    assert one["mae_val"] == pytest.approx(two["mae_val"], rel=1e-5)
    one_line_error(capsys, ["train", str(config), "--output", str(tmp / "zero"), "--threads", "0"], "--threads")


def test_train_and_resume_take_one_thread_per_idle_cpu_and_say_so_unless_the_user_chose(setup, capsys, monkeypatch):
    import torch

    from rnnkit.training import threads as threads_module

    tmp, _, config = setup
    said = "training on {} ({:.1f} of the 2 CPUs this process may use were idle); --threads N chooses"
    monkeypatch.delenv("OMP_NUM_THREADS")  # set by conftest: here nobody chose
    idle = {"cpus": 1.0}
    monkeypatch.setattr(threads_module, "idle_cpus", lambda sample=0.25: (idle["cpus"], 2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["train", str(config), "--output", str(tmp / "busy"), "--epochs", "1"]) == 0
        lines = capsys.readouterr().out.splitlines()
        assert lines[0] == said.format("1 thread", 1.0) and lines[1] == f"run folder: {tmp / 'busy'}"
        assert torch.get_num_threads() == 1  # the other CPU is busy: one thread
        idle["cpus"] = 2.0
        assert main(["train", "--resume", str(tmp / "busy"), "--epochs", "2"]) == 0
        assert capsys.readouterr().out.splitlines()[0] == said.format("2 threads", 2.0)
        assert torch.get_num_threads() == 2
        assert main(["train", str(config), "--output", str(tmp / "quiet"), "--epochs", "1", "--quiet"]) == 0
        assert "training on" not in capsys.readouterr().out and torch.get_num_threads() == 2  # chosen, not said
        idle["cpus"] = 1.0
        assert main(["train", str(config), "--output", str(tmp / "mine"), "--epochs", "1", "--threads", "2"]) == 0
        assert "training on" not in capsys.readouterr().out and torch.get_num_threads() == 2  # --threads wins
        monkeypatch.setenv("OMP_NUM_THREADS", "2")
        assert main(["train", str(config), "--output", str(tmp / "omp"), "--epochs", "1"]) == 0
        assert "training on" not in capsys.readouterr().out and torch.get_num_threads() == 2  # so does OMP_NUM_THREADS
    finally:
        torch.set_num_threads(before)


def test_summary_and_windows(setup, capsys):
    tmp, _, config = setup
    assert main(["summary", str(CONFIGS / "course_05a.toml"), "--features", "14"]) == 0
    assert "Total params: 513" in capsys.readouterr().out
    assert main(["windows", str(config)]) == 0
    out = capsys.readouterr().out
    assert "window 0: inputs 2020-01-01 01:00 to 2020-01-02 00:00 (24 rows), target 2020-01-02 06:00" in out


def test_missing_config(capsys, tmp_path):
    one_line_error(capsys, ["train", str(tmp_path / "nope.toml")], "config file not found")


def test_unknown_key(setup, capsys):
    tmp, _, config = setup
    config.write_text(config.read_text().replace("[windows]", "[windows]\nhorizn = 3"))
    one_line_error(capsys, ["train", str(config)], "unknown key 'windows.horizn' (did you mean 'horizon'?)")


def test_wrong_type(setup, capsys):
    tmp, _, config = setup
    config.write_text(config.read_text().replace("epochs = 2", 'epochs = "two"'))
    one_line_error(capsys, ["train", str(config)], "'training.epochs' must be an integer, got 'two'")


def test_data_path_that_does_not_exist(setup, capsys):
    tmp, _, config = setup
    one_line_error(capsys, ["train", str(config), "--data", str(tmp / "missing.csv")], "missing.csv: no such file")


def test_predict_with_data_that_does_not_fit(setup, capsys):
    tmp, _, config = setup
    run = tmp / "run"
    assert main(["train", str(config), "--output", str(run), "--quiet"]) == 0
    other = write_jena_csv(tmp / "other.csv", days=3, columns=("T (degC)",))
    one_line_error(capsys, ["predict", str(run), "--data", str(other)], "it lacks the columns ['p (mbar)']")


def test_evaluate_something_that_is_not_a_run(capsys, tmp_path):
    one_line_error(capsys, ["evaluate", str(tmp_path)], "is not an rnnkit run folder: config.json is missing")


def test_unknown_command_and_missing_argument(capsys):
    one_line_error(capsys, ["trian"], "No such command 'trian'")
    one_line_error(capsys, ["train"], "give a CONFIG file, or --resume RUN")


def test_the_console_script_prints_no_traceback(tmp_path):
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    result = subprocess.run(
        [sys.executable, "-m", "rnnkit.cli", "train", str(tmp_path / "x.toml")],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"rnnkit: error: config file not found: {tmp_path / 'x.toml'}"
