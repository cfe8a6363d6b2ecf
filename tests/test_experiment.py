"""The run pipeline: leak-free parts, baselines by hand, the run folder, resume, evaluate and predict."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from helpers import tiny_config, write_jena_csv
from rnnkit.tasks import parse_config
from rnnkit.errors import RnnkitError
from rnnkit.experiment import evaluate_run, load_trained, predict_file, run_experiment
from rnnkit.tasks.regression import seasonal_persistence
from rnnkit.tasks.series import load_frame, prepare
from rnnkit.io import read_safetensors
from rnnkit.training import Trainer

quiet = {"progress": False, "log": lambda line: None}


@pytest.fixture
def csv(tmp_path):
    return write_jena_csv(tmp_path / "hourly.csv")


def raw_t(csv_path) -> np.ndarray:
    return pd.read_csv(csv_path)["T (degC)"].to_numpy()


def test_parts_do_not_leak_and_the_scaler_sees_training_rows_only(tmp_path):
    # Two files with a gap between them: each segment is split 60/20/20 in time.
    a = write_jena_csv(tmp_path / "a.csv", days=20, seed=1)
    b = tmp_path / "b.csv"
    frame_b = pd.read_csv(write_jena_csv(tmp_path / "b0.csv", days=20, seed=2))
    frame_b["Date Time"] = (
        pd.to_datetime(frame_b["Date Time"], format="%d.%m.%Y %H:%M:%S") + pd.Timedelta(days=60)
    ).dt.strftime("%d.%m.%Y %H:%M:%S")
    frame_b.to_csv(b, index=False)
    config = parse_config(tiny_config(a, data={"paths": [str(a), str(b)]}))
    prepared = prepare(config, load_frame(config))
    assert [len(p) for p in prepared.parts["train"]] == [288, 288]
    val_times = np.concatenate([p.index.to_numpy() for p in prepared.parts["val"]])
    test_times = np.concatenate([p.index.to_numpy() for p in prepared.parts["test"]])
    train_index = np.concatenate([p.index.to_numpy() for p in prepared.parts["train"]])
    w = prepared.windows["train"]
    used = train_index[np.concatenate([w.start_rows.numpy(), w.target_rows.numpy()])]
    assert not np.isin(used, val_times).any() and not np.isin(used, test_times).any()
    # Every training target lies in the same segment as its window, horizon rows after the last input.
    assert (train_index[w.target_rows.numpy()] - train_index[w.last_rows.numpy()] == np.timedelta64(6, "h")).all()
    train_raw = pd.concat([load_frame(config).loc[p.index] for p in prepared.parts["train"]])
    np.testing.assert_allclose(prepared.scaler.mean, train_raw.mean().to_numpy(), rtol=1e-9)


def test_baselines_equal_hand_computed_values(csv, tmp_path):
    metrics = run_experiment(parse_config(tiny_config(csv)), tmp_path / "run", **quiet)
    t = raw_t(csv)
    n = len(t)
    test = t[int(0.6 * n) + int(0.2 * n) :]
    last = np.arange(23, len(test) - 6)
    persistence = np.abs(test[last + 6] - test[last]).mean()
    seasonal = np.abs(test[last + 6] - test[last + 6 - 24]).mean()  # same hour the day before the target
    mean = np.abs(test[last + 6] - t[: int(0.6 * n)][29:].mean()).mean()  # mean of the training targets
    m = metrics["models"]
    assert m["persistence"]["mae_test"] == pytest.approx(persistence, abs=1e-4)
    assert m["seasonal_persistence"]["mae_test"] == pytest.approx(seasonal, abs=1e-4)
    assert m["mean"]["mae_test"] == pytest.approx(mean, abs=1e-4)
    assert m["persistence"]["skill_test"] == 0.0
    assert m["seasonal_persistence"]["skill_test"] == pytest.approx(1 - seasonal / persistence, abs=1e-5)
    # On a daily cycle 6 h ahead, "same time yesterday" beats "same as now" by far.
    assert seasonal < 0.5 * persistence


def test_seasonal_persistence_uses_the_latest_day_in_the_window(csv):
    config = parse_config(tiny_config(csv, windows={"sequence_length": 48, "horizon": 30}))
    prepared = prepare(config, load_frame(config))
    model = seasonal_persistence(prepared)
    x = prepared.windows["test"].x
    # Target 30 h after the last input: one day back is still after the window, so two days back: row T-1-(48-30).
    torch.testing.assert_close(model(x), x[:, 48 - 1 - 18, prepared.target_index : prepared.target_index + 1])


def test_run_folder_holds_everything(csv, tmp_path):
    out = tmp_path / "run"
    metrics = run_experiment(parse_config(tiny_config(csv)), out, **quiet)
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == json.loads(json.dumps(metrics))
    assert on_disk["target"] == "T (degC)" and on_disk["units"] == "degC"
    assert set(on_disk["models"]) == {"persistence", "seasonal_persistence", "mean", "linear", "GRU(4)"}
    for entry in on_disk["models"].values():
        assert {"params", "mae_val", "mae_test", "rmse_test", "skill_test", "train_seconds"} <= set(entry)
        assert entry["rmse_test"] >= entry["mae_test"] > 0
    assert on_disk["models"]["GRU(4)"]["params"] == 3 * (4 * 2 + 4 * 4 + 2 * 4) + 5  # GRU(4) on 2 features + Dense(1)
    assert on_disk["models"]["linear"]["params"] == 24 * 2 + 1
    config = json.loads((out / "config.json").read_text())
    assert config["training"]["epochs"] == 2 and config["windows"]["horizon"] == 6
    assert set(json.loads((out / "scaler.json").read_text())) == {"columns", "mean", "std"}
    history = pd.read_csv(out / "history.csv")
    assert list(history["model"]) == ["GRU(4)", "GRU(4)"] and list(history["epoch"]) == [1, 2]
    for png in ("learning_curves.png", "predictions.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tensors, _ = read_safetensors(out / "models" / "gru_4" / "model.safetensors")
    assert sum(t.numel() for t in tensors.values()) == on_disk["models"]["GRU(4)"]["params"]


def test_evaluate_reproduces_the_stored_scores(csv, tmp_path):
    out = tmp_path / "run"
    stored = run_experiment(parse_config(tiny_config(csv)), out, **quiet)
    again = evaluate_run(out)
    for name, entry in stored["models"].items():
        assert again["models"][name]["mae_test"] == pytest.approx(entry["mae_test"], abs=1e-6)
        assert again["models"][name]["mae_val"] == pytest.approx(entry["mae_val"], abs=1e-6)


def test_an_interrupted_run_resumes_to_the_same_weights(csv, tmp_path, monkeypatch):
    config = parse_config(tiny_config(csv, training={"epochs": 4}))
    run_experiment(config, tmp_path / "whole", **quiet)

    original = Trainer._train_epoch
    calls = {"n": 0}

    def stop_in_epoch_3(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trainer, "_train_epoch", stop_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        run_experiment(config, tmp_path / "cut", **quiet)
    monkeypatch.setattr(Trainer, "_train_epoch", original)
    assert not (tmp_path / "cut" / "metrics.json").exists()
    resumed = run_experiment(config, tmp_path / "cut", resume=True, **quiet)

    whole, _ = read_safetensors(tmp_path / "whole" / "models" / "gru_4" / "model.safetensors")
    cut, _ = read_safetensors(tmp_path / "cut" / "models" / "gru_4" / "model.safetensors")
    assert whole.keys() == cut.keys()
    assert all(torch.equal(whole[k], cut[k]) for k in whole)
    assert (
        resumed["models"]["GRU(4)"]["mae_test"]
        == json.loads((tmp_path / "whole" / "metrics.json").read_text())["models"]["GRU(4)"]["mae_test"]
    )


def test_predict_on_new_data(csv, tmp_path):
    out = tmp_path / "run"
    run_experiment(parse_config(tiny_config(csv)), out, **quiet)
    new = write_jena_csv(tmp_path / "new.csv", days=3, seed=5)
    table = predict_file(out, [str(new)])
    assert len(table) == 3 * 24 - 24 + 1
    assert (table["target_time"] - table["last_input_time"] == pd.Timedelta(hours=6)).all()
    # The same numbers by hand: scale with the run's scaler, run the model, undo the scaling.
    name, model, _ = load_trained(out)
    frame = pd.read_csv(new, index_col=0)
    scaler = json.loads((out / "scaler.json").read_text())
    z = (frame.to_numpy() - np.array(scaler["mean"])) / np.array(scaler["std"])
    x = torch.tensor(np.stack([z[i : i + 24] for i in range(len(z) - 23)]), dtype=torch.float32)
    with torch.no_grad():
        expected = model(x).numpy().reshape(-1) * scaler["std"][1] + scaler["mean"][1]
    np.testing.assert_allclose(table["predicted T (degC)"], expected, rtol=1e-5)


def test_predict_finds_the_truth_by_its_time_across_a_gap(csv, tmp_path):
    """The truth beside a prediction is the file's row at the target time: a gap between the last input
    and the target moves that row off `horizon` rows on (it was left blank there), and only a target
    time the file does not hold (inside the gap, past its end) has no truth."""
    out = tmp_path / "run"
    run_experiment(parse_config(tiny_config(csv)), out, **quiet)
    whole = pd.read_csv(write_jena_csv(tmp_path / "whole.csv", days=3, seed=5))
    new = tmp_path / "gap.csv"
    whole.drop(index=[40, 41, 42]).to_csv(new, index=False)  # rows k = 0 ... 71 at 01:00 + k h, 3 h missing
    t = pd.Series(whole["T (degC)"].to_numpy(), index=pd.date_range("2020-01-01 01:00", periods=72, freq="h"))
    table = predict_file(out, [str(new)])
    k_last = [*range(23, 40), *range(66, 72)]  # windows of 24 rows never across the gap: 17 before it, 6 after
    assert ((table["last_input_time"] - t.index[0]) // pd.Timedelta(hours=1)).tolist() == k_last
    truth = table.set_index((table["target_time"] - t.index[0]) // pd.Timedelta(hours=1))["true T (degC)"]
    held = [k for k in range(29, 46) if k not in (40, 41, 42)]  # targets k_last + 6 that the file holds
    assert truth.loc[held].tolist() == t.iloc[held].tolist()  # 43, 44, 45 lie after the gap: found by time
    assert truth.drop(index=held).isna().all() and sorted(truth.drop(index=held).index) == [40, 41, 42, *range(72, 78)]
    assert table.attrs["score"].startswith("score on the 14 windows whose target is in the file: GRU(4) MAE ")


def test_predict_refuses_data_without_the_models_columns(csv, tmp_path):
    out = tmp_path / "run"
    run_experiment(parse_config(tiny_config(csv)), out, **quiet)
    other = write_jena_csv(tmp_path / "other.csv", days=3, columns=("T (degC)",))
    with pytest.raises(RnnkitError, match=r"does not fit the model 'GRU\(4\)': it lacks the columns \['p \(mbar\)'\]"):
        predict_file(out, [str(other)])


def test_a_pickle_given_as_a_model_never_runs(csv, tmp_path):
    out = tmp_path / "run"
    run_experiment(parse_config(tiny_config(csv)), out, **quiet)
    marker = tmp_path / "marker"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    (out / "models" / "gru_4" / "model.safetensors").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(RnnkitError, match="not a safetensors file"):
        load_trained(out)
    assert not marker.exists()


def test_a_series_too_short_for_the_config_stops_with_what_is_missing(tmp_path):
    short = write_jena_csv(tmp_path / "short.csv", days=3)
    config = parse_config(tiny_config(short, windows={"sequence_length": 48, "horizon": 24}))
    with pytest.raises(
        RnnkitError,
        match=r"the training part \(43 rows of 72\) yields no window: .* needs 72 rows.*needs a longer series",
    ):
        prepare(config, load_frame(config))


def test_features_must_exist_and_the_target_is_kept(csv):
    config = parse_config(tiny_config(csv, data={"features": ["p (mbar)"]}))
    assert list(load_frame(config).columns) == ["p (mbar)", "T (degC)"]
    bad = parse_config(tiny_config(csv, data={"features": ["wv (m/s)"]}))
    with pytest.raises(RnnkitError, match=r"names columns the data does not have: \['wv \(m/s\)'\]"):
        load_frame(bad)
    with pytest.raises(RnnkitError, match="target column 'Tx' is not in the data"):
        load_frame(parse_config(tiny_config(csv, data={"target": "Tx"})))


def test_a_run_off_a_terminal_logs_a_line_per_epoch_with_the_validation_mae_in_data_units(csv, tmp_path, capsys):
    config = parse_config(tiny_config(csv, training={"epochs": 3, "loss": "mae"}))
    run_experiment(config, tmp_path / "run", progress=None, log=lambda line: None)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("epoch ")]
    history = pd.read_csv(tmp_path / "run" / "models" / "gru_4" / "history.csv")
    scale = float(json.loads((tmp_path / "run" / "scaler.json").read_text())["std"][1])  # T (degC) is column 1
    assert len(lines) == 3
    for line, val_loss in zip(lines, history["val_loss"], strict=True):
        assert f", val MAE {val_loss * scale:.3f} degC; " in line  # MAE loss in scaled units x std = MAE in degC


def test_a_segment_shorter_than_one_window_is_left_out_of_the_per_segment_split(tmp_path):
    # A stray row between two files (a half-hour step, as in the record) is a segment that no window fits:
    # it is left out, and the two real segments split exactly as without it.
    a = write_jena_csv(tmp_path / "a.csv", days=20, seed=1)
    frame_b = pd.read_csv(write_jena_csv(tmp_path / "b0.csv", days=20, seed=2))
    stamps = pd.to_datetime(frame_b["Date Time"], format="%d.%m.%Y %H:%M:%S")
    frame_b["Date Time"] = (stamps + pd.Timedelta(days=60)).dt.strftime("%d.%m.%Y %H:%M:%S")
    b = tmp_path / "b.csv"
    frame_b.to_csv(b, index=False)
    stray = frame_b.iloc[:1].copy()
    stray["Date Time"] = (stamps.iloc[:1] + pd.Timedelta(days=40, minutes=30)).dt.strftime("%d.%m.%Y %H:%M:%S")
    c = tmp_path / "stray.csv"
    stray.to_csv(c, index=False)
    config_two = parse_config(tiny_config(a, data={"paths": [str(a), str(b)]}))
    two = prepare(config_two, load_frame(config_two))
    config = parse_config(tiny_config(a, data={"paths": [str(a), str(c), str(b)]}))
    frame = load_frame(config)
    assert len(frame) == len(two.frame) + 1
    three = prepare(config, frame)
    for part in ("train", "val", "test"):
        assert [len(p) for p in three.parts[part]] == [len(p) for p in two.parts[part]]
        torch.testing.assert_close(three.windows[part].x, two.windows[part].x, rtol=0, atol=0)


def test_written_lines_list_the_folder_as_it_is_on_disk(tmp_path):
    from rnnkit.experiment import written_lines

    run = tmp_path / "run"
    for name in (
        "models/gru_4/model.json",
        "models/gru_4/checkpoint/checkpoint.safetensors",
        "models/lstm_8/model.json",
        "models/lstm_8/checkpoint/checkpoint.safetensors",
        "scaler.json",
        "report.html",
        ".lock",
        "b.csv",
    ):
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_text("")
    assert written_lines(run) == (
        f"written: {run}/: b.csv, report.html, scaler.json\n  models/: gru_4/, lstm_8/ (each: checkpoint/, model.json)"
    )
    (run / "models/lstm_8/history.csv").write_text("")  # the models' folders differ: each is listed
    (run / "plots").mkdir()
    assert written_lines(run).splitlines()[1:] == [
        "  models/: gru_4/ (checkpoint/, model.json), lstm_8/ (checkpoint/, history.csv, model.json)",
        "  plots/: (empty)",
    ]


def test_a_course_run_predicts_on_the_embedded_record_read_as_every_command_reads_it(tmp_path):
    """A course config reads rows by position (gaps = "ignore"), so its run saw the embedded record's
    24 repeated stamps; predict refused the file for them. It reads a new file as evaluate --data and
    rnnkit data do: the stamps de-duplicated, no window across a gap, the same rows and scores."""
    import rnnkit as rk
    from rnnkit.datasets.jena import EMBEDDED_JENA
    from rnnkit.transfer import evaluate_on_files

    config = {
        "name": "course_like",
        "data": {
            "source": "record",
            "step": 6,
            "gaps": "ignore",
            "split": [0.64, 0.16, 0.2],
            "split_per_segment": False,
            "split_by": "windows",
            "features": ["T (degC)", "p (mbar)"],
        },
        "windows": {"sequence_length": 24, "shift": 24, "horizon": 24},
        "training": {"epochs": 1, "batch_size": 64, "seed": 0},
        "baselines": ["persistence"],
        "models": [{"name": "GRU(2)", "layers": [{"type": "GRU", "units": 2}, {"type": "Dense", "units": 1}]}],
    }
    out = tmp_path / "run"
    run_experiment(parse_config(config), out, **quiet)
    frame = rk.datasets.jena_climate(EMBEDDED_JENA)  # what rnnkit data reads: 70,068 rows
    assert len(frame) == 70_068 and frame.index.is_unique
    table = predict_file(out, [str(EMBEDDED_JENA)])
    assert list(table.columns) == [
        "model",
        "last_input_time",
        "target_time",
        "predicted T (degC)",
        "true T (degC)",
        "persistence T (degC)",
    ]
    assert (table["model"] == "GRU(2)").all() and len(table) < len(frame) - 23
    t = frame["T (degC)"]
    np.testing.assert_allclose(table["persistence T (degC)"], t.loc[table["last_input_time"]].to_numpy(), atol=1e-4)
    known = table["true T (degC)"].notna().to_numpy()  # the file holds a row at the target time
    assert (known == table["target_time"].isin(frame.index).to_numpy()).all() and known.sum() > len(table) - 24 * 20
    truth = t.loc[table["target_time"][known]].to_numpy()
    np.testing.assert_allclose(table["true T (degC)"][known], truth, atol=1e-4)
    # evaluate --data scores the windows whose target lies in the inputs' own stretch (no gap between)
    rows_between = frame.index.get_indexer(table["target_time"]) - frame.index.get_indexer(table["last_input_time"])
    stretch = known & (rows_between == 24)
    assert 0 < (known & ~stretch).sum() < 100  # across the record's few gaps: a truth too, found by its time
    scored = evaluate_on_files(out, [str(EMBEDDED_JENA)])[0]  # evaluate --data: the same rows and windows
    assert scored["rows"] == len(frame) and scored["windows"] == stretch.sum()
    mae = float(np.abs(table["predicted T (degC)"][stretch] - t.loc[table["target_time"][stretch]].to_numpy()).mean())
    assert mae == pytest.approx(scored["models"]["GRU(2)"]["mae"], rel=1e-5)
