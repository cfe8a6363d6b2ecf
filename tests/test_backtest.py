"""Rolling-origin backtests (rnnkit.backtest, [backtest], rnnkit backtest): the folds a config makes (by year on the
embedded record, expanding and sliding windows, refit = false), the leak tests (a fold's test rows never reach its
training, its scaler or its validation windows), resume, the files, and the bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers import one_line_error, write_jena_csv
from rnnkit.backtest import backtest_table, fold_config, plan_folds, run_backtest
from rnnkit.data import Standardizer
from rnnkit.tasks import load_config, parse_config, task_for
from rnnkit.tasks.series import load_frame

ROOT = Path(__file__).parents[1]
quiet = {"progress": False, "log": lambda line: None}


def tiny(csv: Path, **backtest) -> dict:
    """A backtest of one tiny GRU (1 epoch) and two baselines on ``csv``: 3 test folds of 10 days by default."""
    return {
        "name": "tiny_backtest",
        "data": {"paths": [str(csv)]},
        "windows": {"sequence_length": 24, "horizon": 6},
        "training": {"epochs": 1, "batch_size": 64, "seed": 0},
        "baselines": ["persistence", "linear"],
        "models": [{"name": "GRU(4)", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}],
        "backtest": backtest or {"folds": 3, "length": "10d"},
    }


def write_toml(path: Path, raw: dict) -> Path:
    from rnnkit.config import config_toml

    path.write_text(config_toml(parse_config(raw)), encoding="utf-8")
    return path


# --- the folds ----------------------------------------------------------------------------------------


def test_by_year_on_the_record_makes_the_test_years_2013_to_2016_with_the_year_before_as_validation():
    config = load_config(ROOT / "configs" / "jena_backtest.toml")
    frame = load_frame(config)
    folds = plan_folds(config, frame)
    index = frame.index
    assert [f.label for f in folds] == ["2013", "2014", "2015", "2016"]
    assert [f.test[1] - f.test[0] for f in folds] == [8760, 8774, 8760, 8710]  # the record's rows per year
    assert [f.val[1] - f.val[0] for f in folds] == [8784, 8760, 8774, 8760]  # 2012 .. 2015
    for fold, year in zip(folds, range(2013, 2017)):
        assert index[fold.test[0]].year == year and index[fold.test[0] - 1].year == year - 1
        assert index[fold.test[1] - 1].year == year and (fold.test[1] == len(index) or index[fold.test[1]].year > year)
        assert (
            f"{index[fold.test[0]]:%Y-%m-%d}" == f"{year}-01-01"
            and f"{index[fold.test[1] - 1]:%Y-%m-%d}" == f"{year}-12-31"
        )
        assert index[fold.val[0]].year == year - 1 and fold.val[1] == fold.test[0]
        assert fold.train == (0, fold.val[0])  # expanding: every row before the validation year
    assert sum(f.test[1] - f.test[0] for f in folds) == (index.year >= 2013).sum()


def test_expanding_and_sliding_training_spans_and_refit_false(tmp_path):
    csv = write_jena_csv(tmp_path / "d.csv", days=90)  # 2,160 hourly rows
    frame = load_frame(parse_config(tiny(csv)))
    expanding = plan_folds(parse_config(tiny(csv, folds=3, length=240, validation=120)), frame)
    # 3 x 240 rows that end with the data
    assert [f.test for f in expanding] == [(1440, 1680), (1680, 1920), (1920, 2160)]
    assert [f.val for f in expanding] == [(1320, 1440), (1560, 1680), (1800, 1920)]
    assert [f.train for f in expanding] == [(0, 1320), (0, 1560), (0, 1800)]
    sliding = plan_folds(
        parse_config(tiny(csv, folds=3, length=240, validation=120, window="sliding", span=600)), frame
    )
    assert [f.train for f in sliding] == [(840, 1320), (1080, 1560), (1320, 1800)]  # span 600 = 480 training + 120
    assert [f.val for f in sliding] == [f.val for f in expanding]
    days = plan_folds(parse_config(tiny(csv, folds=3, length="10d", window="sliding", span="30d")), frame)
    assert [f.test for f in days] == [f.test for f in expanding]  # 10 days of hourly rows = 240 rows
    assert [(f.train, f.val) for f in days] == [((a - 720, a - 240), (a - 240, a)) for a in (1440, 1680, 1920)]
    once = plan_folds(parse_config(tiny(csv, folds=3, length=240, refit=False)), frame)
    assert {(f.train, f.val) for f in once} == {((0, 1200), (1200, 1440))}  # every fold scored by fold 1's training
    assert [f.test for f in once] == [f.test for f in expanding]


# --- leaks ----------------------------------------------------------------------------------------------


def test_a_folds_test_rows_never_reach_its_scaler_or_its_training_and_validation_windows(tmp_path):
    # Poison every row from fold 2's test start on with huge values: fold 2's scaler (fit on its training rows),
    # its training and validation windows, and the fit baselines must be exactly what the clean data give.
    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    raw = tiny(csv, folds=3, length=240, validation=120)
    clean = load_frame(parse_config(raw))
    fold = plan_folds(parse_config(raw), clean)[1]
    poisoned = clean.copy()
    poisoned.iloc[fold.test[0] :] = 1e6
    path = tmp_path / "poisoned.csv"
    out = poisoned.copy()
    out.insert(0, "Date Time", poisoned.index.strftime("%d.%m.%Y %H:%M:%S"))
    out.to_csv(path, index=False)
    tasks = {}
    for name, source in (("clean", csv), ("poisoned", path)):
        config = fold_config(parse_config({**raw, "data": {"paths": [str(source)]}}), fold, 3)
        task = task_for(config)
        task.prepare()
        tasks[name] = task
    expected = Standardizer().fit(clean.iloc[fold.train[0] : fold.train[1]])
    for task in tasks.values():
        assert np.allclose(task.scaler.mean, expected.mean) and np.allclose(task.scaler.std, expected.std)
        p = task.prepared
        for part, (start, stop) in (("train", fold.train), ("val", fold.val), ("test", fold.test)):
            w = p.windows[part]
            # row positions in the series: every input and target row of a part's windows lies inside that part
            assert int(w.target_rows.max()) + start < stop and int(w.last_rows.min()) - 23 + start >= start
            if part != "test":
                assert int(w.target_rows.max()) + start < fold.test[0]
    a, b = tasks["clean"].prepared, tasks["poisoned"].prepared
    for part in ("train", "val"):
        assert torch_equal(a.windows[part].x, b.windows[part].x) and torch_equal(a.windows[part].y, b.windows[part].y)
    assert not torch_equal(a.windows["test"].x, b.windows["test"].x)  # the poison is there, in test only
    lin_a, lin_b = tasks["clean"].baselines()["linear"], tasks["poisoned"].baselines()["linear"]
    assert all(torch_equal(x, y) for x, y in zip(lin_a.state_dict().values(), lin_b.state_dict().values()))


def torch_equal(a, b) -> bool:
    import torch

    return bool(torch.equal(a, b))


def test_poisoned_test_rows_leave_every_validation_score_of_the_backtest_unchanged(tmp_path):
    # End to end: the last fold's test rows poisoned, every fold's validation MAE (the GRU trained with a fixed
    # seed, the baselines fit) is the same; only the last fold's test scores change.
    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    raw = tiny(csv, folds=2, length=240)
    frame = load_frame(parse_config(raw))
    last = plan_folds(parse_config(raw), frame)[-1]
    poisoned = frame.copy()
    poisoned.iloc[last.test[0] :] += 50.0
    path = tmp_path / "poisoned.csv"
    out = poisoned.copy()
    out.insert(0, "Date Time", poisoned.index.strftime("%d.%m.%Y %H:%M:%S"))
    out.to_csv(path, index=False)
    docs = {
        name: run_backtest(parse_config({**raw, "data": {"paths": [str(p)]}}), tmp_path / name, **quiet)
        for name, p in (("clean", csv), ("poisoned", path))
    }
    for a, b in zip(docs["clean"]["folds"], docs["poisoned"]["folds"]):
        for model in a["models"]:
            assert a["models"][model]["mae_val"] == pytest.approx(b["models"][model]["mae_val"], abs=1e-9)
    first_a, first_b = docs["clean"]["folds"][0]["models"], docs["poisoned"]["folds"][0]["models"]
    assert all(first_a[m]["mae"] == pytest.approx(first_b[m]["mae"], abs=1e-9) for m in first_a)
    assert (
        docs["poisoned"]["folds"][-1]["models"]["GRU(4)"]["mae"] > docs["clean"]["folds"][-1]["models"]["GRU(4)"]["mae"]
    )


# --- the run, its files and resume ------------------------------------------------------------------------


def test_backtest_csv_and_json_agree_with_each_other_and_with_the_folds_runs(tmp_path, capsys):
    from rnnkit.cli import main

    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    raw = tiny(csv)
    raw["intervals"] = {"levels": [0.8], "update": "static"}
    config = write_toml(tmp_path / "bt.toml", raw)
    out = tmp_path / "bt"
    assert main(["backtest", str(config), "--output", str(out), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "fold 1/3 test 2020-03-01..2020-03-11: training 1 model and 2 baselines" in printed
    assert "fold 3/3 test 2020-03-21..2020-03-31" in printed
    assert f"written: {out}/: backtest.csv, backtest.json, backtest.png, config.json, report.html, run.json" in printed
    document = json.loads((out / "backtest.json").read_text())
    assert backtest_table(document) in printed
    table = pd.read_csv(out / "backtest.csv")
    assert len(table) == 3 * 3 and list(table["model"].unique()) == ["persistence", "linear", "GRU(4)"]
    assert {"train_start", "validation_end", "test_start", "test_end", "mae", "rmse", "skill"} <= set(table.columns)
    assert "conformal_80_coverage" in table.columns and "conformal_80_width" in table.columns
    for name, rows in table.groupby("model"):
        summary = document["summary"][name]
        assert rows["mae"].mean() == pytest.approx(summary["mae"]["mean"], rel=1e-12)
        assert rows["mae"].std(ddof=1) == pytest.approx(summary["mae"]["sd"], rel=1e-9)
        assert rows["rmse"].mean() == pytest.approx(summary["rmse"]["mean"], rel=1e-12)
        assert rows["conformal_80_coverage"].mean() == pytest.approx(summary["conformal_80_coverage"]["mean"])
        for fold, row in zip(document["folds"], rows.itertuples()):
            metrics = json.loads((out / f"fold_{fold['fold']:02d}" / "metrics.json").read_text())
            assert row.mae == pytest.approx(metrics["models"][name]["mae_test"], rel=1e-12)
            assert row.skill == pytest.approx(metrics["models"][name]["skill_test"], rel=1e-12)
            assert row.test_start == fold["periods"]["test"][0]
    assert (table.loc[table["model"] == "persistence", "skill"] == 0).all()
    report = (out / "report.html").read_text()
    assert "data:image/png;base64," in report and "fold_01/report.html" in report


def test_resume_skips_finished_folds_and_continues_the_interrupted_one(tmp_path):
    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    config = parse_config(tiny(csv))
    out = tmp_path / "bt"
    lines: list[str] = []
    first = run_backtest(config, out, progress=False, log=lines.append)
    assert sum(line.startswith("training GRU(4)") for line in lines) == 3  # one training per fold
    # fold 2 interrupted before it finished (no metrics.json, its model's files kept); fold 3 never started
    (out / "fold_02" / "metrics.json").unlink()
    import shutil

    shutil.rmtree(out / "fold_03")
    lines.clear()
    again = run_backtest(config, out, resume=True, progress=False, log=lines.append)
    assert "fold 1/3 test 2020-03-01..2020-03-11: finished in the earlier run, read back" in lines
    assert any(line.startswith("fold 2/3") and "resuming the interrupted fold" in line for line in lines)
    assert "GRU(4): finished in the earlier run, read back" in lines  # fold 2's model, as train --resume does
    assert sum(line.startswith("training GRU(4)") for line in lines) == 1  # fold 3 only
    assert again["summary"]["GRU(4)"]["mae"]["mean"] == pytest.approx(first["summary"]["GRU(4)"]["mae"]["mean"])
    lines.clear()
    run_backtest(config, out, resume=True, progress=False, log=lines.append)
    assert sum(line.startswith("training") for line in lines) == 0
    assert sum("finished in the earlier run" in line for line in lines) == 3


def test_refit_false_trains_once_and_scores_every_fold_with_fold_1s_models(tmp_path):
    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    lines: list[str] = []
    document = run_backtest(
        parse_config(tiny(csv, folds=3, length=240, refit=False)), tmp_path / "bt", progress=False, log=lines.append
    )
    assert sum(line.startswith("training GRU(4)") for line in lines) == 1
    vals = {f["models"]["GRU(4)"]["mae_val"] for f in document["folds"]}
    assert len(vals) == 1  # one validation part: fold 1's
    assert len({f["models"]["GRU(4)"]["mae"] for f in document["folds"]}) == 3
    assert not (tmp_path / "bt" / "fold_02" / "models").exists()


# --- bad input ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "backtest, fragments",
    [
        ({"by": "year", "window": "rolling"}, ["'backtest.window'", "'rolling'"]),
        ({"folds": 0, "length": 240}, ["'backtest.folds'", "greater than or equal to 1"]),
        ({"folds": 3, "length": "3x"}, ["'backtest.length'", "'365d'", "'3x'"]),
        ({"folds": 3, "length": 2.5}, ["'backtest.length'", "2.5"]),
        ({"folds": 3}, ["backtest.length: folds = N needs"]),
        ({"by": "year", "length": 240}, ["backtest.length: by = 'year'"]),
        ({"by": "year", "refit": "no"}, ["'backtest.refit' must be true or false"]),
        ({"by": "year", "folds": 2, "lenght": 3}, ["unknown key 'backtest.lenght'", "did you mean 'length'"]),
        ({"folds": 3, "length": 240, "window": "sliding"}, ["backtest.span: window = 'sliding' needs"]),
        ({"folds": 3, "length": 240, "span": 500}, ["backtest.span", "expanding"]),
        ({"folds": 3, "length": 240, "first": 2013}, ["backtest.first", "by = 'year'"]),
        ({"by": "year", "first": 2016, "last": 2013}, ["backtest.first must be <= backtest.last"]),
        ({"by": "year", "first": 1990}, ["backtest.first = 1990 is not a year of the data (2020..2020)"]),
        ({"folds": 20, "length": "10d"}, ["20 test folds of '10d' need more than the 2160 rows"]),
        (
            {"folds": 3, "length": 20, "validation": 240},
            ["backtest fold 1 (test from 2020-03-28)", "test part holds 20 rows, fewer than one window's 30"],
        ),
        ({"folds": 3, "length": 240, "window": "sliding", "span": "400d"}, ["backtest.span = '400d' reaches back"]),
    ],
)
def test_bad_backtest_settings_are_one_line_naming_the_key(tmp_path, capsys, backtest, fragments):
    import tomllib

    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    raw = tiny(csv)
    raw.pop("backtest")
    path = write_toml(tmp_path / "bad.toml", raw)
    text = path.read_text() + "\n[backtest]\n" + "\n".join(f"{k} = {toml(v)}" for k, v in backtest.items()) + "\n"
    path.write_text(text)
    tomllib.loads(text)  # the file itself is valid TOML: the backtest settings are what is refused
    one_line_error(capsys, ["backtest", path, "--output", tmp_path / "out"], *fragments)


def toml(value) -> str:
    return json.dumps(value) if not isinstance(value, bool) else str(value).lower()


def test_a_config_without_backtest_and_a_folder_of_another_run_are_one_line(tmp_path, capsys):
    csv = write_jena_csv(tmp_path / "d.csv", days=90)
    raw = tiny(csv)
    raw.pop("backtest")
    plain = write_toml(tmp_path / "plain.toml", raw)
    one_line_error(capsys, ["backtest", plain], "has no [backtest] table")
    config = write_toml(tmp_path / "bt.toml", tiny(csv))
    one_line_error(capsys, ["backtest", config, "--output", tmp_path / "none", "--resume"], "nothing to resume")
    config = write_toml(tmp_path / "bt.toml", tiny(csv))
    out = tmp_path / "out"
    from rnnkit.cli import main

    assert main(["backtest", str(config), "--output", str(out), "--quiet"]) == 0
    capsys.readouterr()
    one_line_error(capsys, ["backtest", config, "--output", out], "already holds run", "--resume")
    one_line_error(capsys, ["backtest", config, "--output", out, "--resume", "--overwrite"], "--resume", "--overwrite")
    other = write_toml(tmp_path / "other.toml", tiny(csv, folds=2, length="10d"))
    one_line_error(capsys, ["backtest", other, "--output", out, "--resume"], "of another config")


def test_backtest_takes_one_thread_per_idle_cpu_and_says_so_unless_threads_is_given(tmp_path, capsys, monkeypatch):
    import torch

    from rnnkit.cli import main
    from rnnkit.training import threads as threads_module

    config = write_toml(tmp_path / "bt.toml", tiny(write_jena_csv(tmp_path / "d.csv", days=60), folds=1, length="10d"))
    monkeypatch.delenv("OMP_NUM_THREADS")  # set by conftest: here nobody chose
    monkeypatch.setattr(threads_module, "idle_cpus", lambda sample=0.25: (1.1, 2))
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        assert main(["backtest", str(config), "--output", str(tmp_path / "a")]) == 0
        said = "training on 1 thread (1.1 of the 2 CPUs this process may use were idle); --threads N chooses"
        assert capsys.readouterr().out.splitlines()[0] == said and torch.get_num_threads() == 1
        assert main(["backtest", str(config), "--output", str(tmp_path / "b"), "--threads", "2", "--quiet"]) == 0
        assert "training on" not in capsys.readouterr().out and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
