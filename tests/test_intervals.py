"""Conformal intervals (rnnkit.intervals, [intervals] method = "conformal", update = "static" | "rolling"): the radius
by hand, coverage over seeds, the rolling radius's leak test, the run's files (intervals.json, predict's columns,
evaluate --data's coverage) and the bad input."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from helpers import one_line_error, tiny_config, write_jena_csv
from rnnkit.errors import RnnkitError
from rnnkit.experiment import evaluate_run, predict_file, run_experiment
from rnnkit.data import make_windows
from rnnkit.intervals import Calibration, calibrate, clock_of, interval_scores, rolling_radius
from rnnkit.tasks import parse_config
from rnnkit.transfer import evaluate_on_files

quiet = {"progress": False, "log": lambda line: None}


def test_the_radius_is_the_ceil_n_plus_1_level_th_smallest_error_per_step():
    errors = np.array([[5.0, 10.0], [1.0, 30.0], [4.0, 20.0], [2.0, 40.0], [3.0, 50.0]])  # 5 windows, 2 steps
    cal = calibrate(np.zeros((5, 2)), -errors, [0.5, 0.8])
    # k = ceil(6 · 0.5) = 3 and ceil(6 · 0.8) = 5: the 3rd and 5th smallest of each step's errors
    assert cal.radius.tolist() == [[3.0, 30.0], [5.0, 50.0]]
    # without the (n + 1) correction 0.8 would take ceil(5 · 0.8) = 4: the 4th smallest, 4.0
    lower, upper = cal.bounds(np.array([[1.0, 2.0]]))
    assert lower[:, 0].tolist() == [[-2.0, -28.0], [-4.0, -48.0]] and upper[:, 0].tolist() == [[4.0, 32.0], [6.0, 52.0]]


def test_a_level_too_high_for_the_calibration_windows_is_refused():
    calibrate(np.zeros((9, 1)), np.ones((9, 1)), [0.9])  # ceil(10 · 0.9) = 9 <= 9
    with pytest.raises(RnnkitError, match=r"90% conformal interval needs at least 9 calibration windows, got 8"):
        calibrate(np.zeros((8, 1)), np.ones((8, 1)), [0.9])


@pytest.mark.parametrize("seed", range(5))
def test_coverage_holds_on_exchangeable_errors_for_every_seed(seed):
    # Forecasts with heavy-tailed (t, 3 degrees of freedom) errors: 2,000 calibration, 20,000 test windows.
    # Measured over seeds 0-4: 80% coverage 0.780-0.799, 90% 0.887-0.899; margins 0.03 and 0.02.
    rng = np.random.default_rng(seed)
    point = rng.normal(size=(22000, 1))
    truth = point + rng.standard_t(3, size=(22000, 1))
    cal = calibrate(point[:2000], truth[:2000], [0.8, 0.9])
    s = interval_scores(cal, point[2000:], truth[2000:])
    assert abs(s["conformal_80_coverage"] - 0.8) <= 0.03
    assert abs(s["conformal_90_coverage"] - 0.9) <= 0.02
    assert s["conformal_90_width"] == pytest.approx(2 * cal.radius[1, 0])


def test_a_rolling_radius_uses_only_errors_whose_truth_is_known_when_the_forecast_is_made():
    # Real windows (12 rows in, the target 4 rows after the last input): forecast i is made at its last row and
    # its truth is known at its target row. Poisoning every truth not yet known at forecast i (target row > its
    # last row) must leave radius i unchanged, for every i; a truth known exactly then (target row = last row) is used.
    rng = np.random.default_rng(0)
    series = np.cumsum(rng.normal(size=(400, 1)), axis=0)
    windows = make_windows(series, 12, horizon=4)
    last_rows, target_rows = clock_of(windows)
    point = windows.x[:, -1, 0].numpy()[:, None]  # persistence
    truth = windows.y.numpy().reshape(-1, 1)
    cal = calibrate(rng.normal(size=(50, 1)), rng.normal(size=(50, 1)), [0.8, 0.9], "rolling", 20)
    radii = cal.radii(point, truth, (last_rows, target_rows))
    assert radii.shape == (2, len(windows), 1) and len(np.unique(radii[0])) > 20  # it does move
    for i in range(len(windows)):
        poisoned = np.where(target_rows > last_rows[i], 1e6, truth)
        again = cal.radii(point, poisoned, (last_rows, target_rows))
        assert np.array_equal(again[:, i], radii[:, i]), i
    # the errors of the forecasts whose truth arrives exactly at forecast i's time are in its window
    i = 100
    boundary = np.where(target_rows == last_rows[i], 1e6, truth)
    assert (cal.radii(point, boundary, (last_rows, target_rows))[1, i] > radii[1, i]).all()
    # by hand: forecast i's radius is the ceil(21 · 0.9) = 19th smallest of the last 20 errors known at its row
    known = np.abs(truth - point)[target_rows[:, 0] <= last_rows[i], 0]
    assert radii[1, i, 0] == np.sort(known[-20:])[18]


@pytest.mark.parametrize("seed", range(5))
def test_rolling_coverage_holds_after_a_shift_for_every_seed_where_static_misses(seed):
    # Heavy-tailed (t, 3) errors, 30% larger on the 20,000 scored windows than on the 4,000 calibration ones;
    # truths known 24 rows after each forecast. Measured over seeds 0-4: rolling (1,000 errors) 80% coverage
    # 0.796-0.799, 90% 0.898-0.899 (margins 0.015 and 0.01); static 0.700-0.712 and 0.827-0.840.
    rng = np.random.default_rng(seed)
    n_cal, n = 4000, 24000
    scale = np.r_[np.ones(n_cal), np.full(n - n_cal, 1.3)][:, None]
    point = rng.normal(size=(n, 1))
    truth = point + scale * rng.standard_t(3, size=(n, 1))
    last = np.arange(n) + 100
    target = (last + 24)[:, None]
    clock = (last[n_cal:], target[n_cal:])
    rolling = calibrate(point[:n_cal], truth[:n_cal], [0.8, 0.9], "rolling", 1000, target[:n_cal])
    s = interval_scores(rolling, point[n_cal:], truth[n_cal:], clock)
    assert abs(s["conformal_80_coverage"] - 0.8) <= 0.015 and abs(s["conformal_90_coverage"] - 0.9) <= 0.01, s
    static = interval_scores(calibrate(point[:n_cal], truth[:n_cal], [0.8, 0.9]), point[n_cal:], truth[n_cal:])
    assert static["conformal_80_coverage"] < 0.75 and static["conformal_90_coverage"] < 0.86


def test_a_rolling_calibration_keeps_its_last_window_of_errors_in_target_order_and_reads_back():
    errors = np.array([[5.0], [1.0], [4.0], [2.0], [3.0]])
    cal = calibrate(np.zeros((5, 1)), errors, [0.5], "rolling", 3, np.array([[10], [14], [11], [13], [12]]))
    assert cal.residuals[:, 0].tolist() == [3.0, 2.0, 1.0]  # target rows 12, 13, 14
    back = Calibration.from_dict(json.loads(json.dumps(cal.to_dict())))
    assert back.update == "rolling" and back.window == 3 and back.residuals.tolist() == cal.residuals.tolist()
    assert Calibration.from_dict({"levels": [0.5], "n": 5, "radius": [[3.0]]}).update == "static"  # older files
    with pytest.raises(RnnkitError, match="rolling intervals need the windows' truth and rows"):
        cal.bounds(np.zeros((2, 1)))


def random_walk_csv(path, seed: int, rows: int = 6000):
    """Hourly rows whose T is a random walk: persistence's errors are the sums of iid steps (exchangeable)."""
    rng = np.random.default_rng(seed)
    index = pd.date_range("2020-01-01 01:00", periods=rows, freq="h")
    frame = pd.DataFrame(
        {
            "Date Time": index.strftime("%d.%m.%Y %H:%M:%S"),
            "p (mbar)": 1000 + rng.normal(0, 2, rows),
            "T (degC)": 10 + np.cumsum(rng.normal(0, 0.5, rows)),
        }
    )
    frame.to_csv(path, index=False, float_format="%.3f")
    return path


def walk_config(csv, target_length: int = 1, update: str = "static") -> dict:
    return {
        "name": "walk",
        "data": {"paths": [str(csv)], "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 12, "horizon": 4, "target_length": target_length},
        "baselines": ["persistence", "linear"],
        "intervals": {"levels": [0.8, 0.9], "update": update},
        "output": {"report": False},
    }


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize(("update", "margins"), [("static", (0.08, 0.05)), ("rolling", (0.06, 0.04))])
def test_a_runs_test_coverage_holds_for_every_seed_per_forecast_step(tmp_path, seed, update, margins):
    # A run on a random walk, 3 steps ahead (horizons 4, 5, 6), calibrated on its 1,185 validation windows.
    # Measured over seeds 0-4 (overlapping windows: their errors are correlated, so the spread is wider
    # than independent windows'): static 80% coverage 0.783-0.858, 90% 0.899-0.938; margins 0.08 and 0.05;
    # rolling (the default window: every validation error, then test's own as they become known)
    # 80% 0.785-0.841, 90% 0.894-0.927; margins 0.06 and 0.04.
    run = tmp_path / "run"
    config = walk_config(random_walk_csv(tmp_path / "walk.csv", seed), 3, update)
    metrics = run_experiment(parse_config(config), run, **quiet)
    for name in ("persistence", "linear"):
        m = metrics["models"][name]
        assert abs(m["conformal_80_coverage_test"] - 0.8) <= margins[0], (name, m)
        assert abs(m["conformal_90_coverage_test"] - 0.9) <= margins[1], (name, m)
    saved = json.loads((run / "intervals.json").read_text())
    assert saved["levels"] == [0.8, 0.9] and saved["calibrated_on"] == "validation" and saved["update"] == update
    assert (saved["models"]["linear"]["update"] == "rolling") == (update == "rolling")
    radius = np.array(saved["models"]["persistence"]["radius"])  # (levels, steps)
    # the walk's error over h steps has spread ~ sqrt(h): each later step needs a wider interval
    assert radius.shape == (2, 3) and (np.diff(radius, axis=1) > 0).all() and (radius[1] > radius[0]).all()


@pytest.mark.parametrize("update", ["static", "rolling"])
def test_predict_writes_the_bounds_and_evaluate_data_scores_them_with_the_saved_radii(tmp_path, update):
    csv = write_jena_csv(tmp_path / "then.csv", days=40, seed=0)
    now = write_jena_csv(tmp_path / "now.csv", days=12, seed=7)
    raw = tiny_config(csv)
    raw["intervals"] = {"levels": [0.8, 0.9], "update": update, **({"window": 100} if update == "rolling" else {})}
    run = tmp_path / "run"
    metrics = run_experiment(parse_config(raw), run, **quiet)
    cal = Calibration.from_dict(json.loads((run / "intervals.json").read_text())["models"]["GRU(4)"])
    table = predict_file(run, [str(now)], "GRU(4)")
    point = table["predicted T (degC)"].to_numpy()
    radius = cal.radius[:, 0][:, None]
    if update == "rolling":  # the saved last 100 validation errors, then the file's own, known at the target time
        truth = table["true T (degC)"].to_numpy()
        made = pd.to_datetime(table["last_input_time"]).to_numpy().astype("int64")
        known = pd.to_datetime(table["target_time"]).to_numpy().astype("int64")
        radius = rolling_radius([0.8, 0.9], 100, cal.residuals, np.abs(truth - point)[:, None], known[:, None], made)[
            :, :, 0
        ]
        assert cal.window == 100 and cal.residuals.shape == (100, 1) and np.ptp(radius[0]) > 0
    for i, pct in enumerate(("80", "90")):
        assert np.allclose(table[f"lower T (degC) {pct}%"], point - radius[i])
        assert np.allclose(table[f"upper T (degC) {pct}%"], point + radius[i])
    # evaluate --data: the share of the file's targets inside those bounds
    (result,) = evaluate_on_files(run, [str(now)])
    known = table["true T (degC)"].notna().to_numpy()
    truth = table["true T (degC)"].to_numpy()[known]
    inside = (truth >= table["lower T (degC) 80%"].to_numpy()[known]) & (
        truth <= table["upper T (degC) 80%"].to_numpy()[known]
    )
    assert result["models"]["GRU(4)"]["conformal_80_coverage"] == pytest.approx(inside.mean(), abs=1e-9)
    width = table["upper T (degC) 80%"].to_numpy()[known] - table["lower T (degC) 80%"].to_numpy()[known]
    assert result["models"]["GRU(4)"]["conformal_80_width"] == pytest.approx(width.mean())
    # report.html draws the band of the best model (here the only one), both levels, widest first
    page = (run / "report.html").read_text(encoding="utf-8")
    assert page.index("GRU(4): 90% conformal interval") < page.index("GRU(4): 80% conformal interval")
    how = (
        "recalibrated online from the errors known at each forecast"
        if update == "rolling"
        else "calibrated on validation"
    )
    assert f"shaded: the conformal intervals ({how})" in page
    # evaluate RUN calibrates again on the same validation windows: the same radii and test coverage
    again = evaluate_run(run)
    for name, m in metrics["models"].items():
        assert again["models"][name]["conformal"] == m["conformal"]
        assert again["models"][name]["conformal_90_coverage_test"] == m["conformal_90_coverage_test"]


def test_a_quantile_run_reports_conformal_intervals_around_its_median_beside_its_own(tmp_path):
    csv = write_jena_csv(tmp_path / "then.csv", days=40, seed=0)
    raw = {
        "name": "q",
        "task": "quantile",
        "data": {"paths": [str(csv)], "split": [0.6, 0.2, 0.2]},
        "windows": {"sequence_length": 24, "horizon": 6},
        "training": {"epochs": 1, "batch_size": 64},
        "intervals": {"levels": [0.8]},
        "output": {"report": False},
        "models": [{"name": "GRU q", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 3}]}],
    }
    metrics = run_experiment(parse_config(raw), tmp_path / "run", **quiet)
    m = metrics["models"]["GRU q"]
    assert {"coverage_test", "conformal_80_coverage_test", "conformal_80_width_test"} <= set(m)
    from rnnkit.experiment import metrics_table

    assert "80% cov. test" in metrics_table(metrics) and "coverage test" in metrics_table(metrics)
    table = predict_file(tmp_path / "run", [str(csv)], "GRU q")
    saved = metrics["models"]["GRU q"]["conformal"]
    median = table["predicted T (degC) q0.5"].to_numpy()
    upper, lower = table["upper T (degC) q0.5 80%"] - median, median - table["lower T (degC) q0.5 80%"]
    # the default, rolling: a radius per row from the errors known by then (the first row's: validation's alone)
    assert saved["update"] == "rolling" and np.allclose(upper, lower) and (upper > 0).all()
    first = np.sort(np.array(saved["residuals"])[:, 0])[int(np.ceil(0.8 * (len(saved["residuals"]) + 1))) - 1]
    assert upper.iloc[0] == pytest.approx(first)


@pytest.mark.parametrize(
    ("intervals", "fragments"),
    [
        ({"levels": [0.9, 0.8]}, ("intervals.levels", "increasing coverage levels in (0, 1)", "[0.9, 0.8]")),
        ({"levels": [1.0]}, ("intervals.levels", "[1.0]")),
        ({"levels": []}, ("intervals.levels", "got []")),
        ({"method": "bootstrap"}, ("intervals.method", "'conformal'", "bootstrap")),
        ({"level": [0.8]}, ("unknown key 'intervals.level'", "did you mean 'levels'")),
        ({"update": "adaptive"}, ("'intervals.update' must be one of 'static', 'rolling'", "'adaptive'")),
        ({"window": 5}, ("intervals", "window must be at least 9 errors for the levels [0.8, 0.9]", "got 5")),
        ({"window": 0, "levels": [0.5]}, ("intervals", "window must be at least 1 errors", "got 0")),
    ],
)
def test_bad_intervals_are_one_line_errors(tmp_path, capsys, intervals, fragments):
    raw = tiny_config(write_jena_csv(tmp_path / "a.csv", days=10))
    raw["intervals"] = intervals
    config = tmp_path / "bad.toml"
    from rnnkit.config import ExperimentConfig, config_toml

    toml = config_toml(ExperimentConfig.model_validate({k: v for k, v in raw.items() if k != "intervals"}))
    body = "\n".join(f"{k} = {json.dumps(v)}" for k, v in intervals.items())
    config.write_text(toml + f"\n[intervals]\n{body}\n", encoding="utf-8")
    one_line_error(capsys, ["train", config, "--output", tmp_path / "run"], *fragments)


def test_a_window_with_static_intervals_warns_that_it_does_nothing():
    from rnnkit.config import IntervalsConfig

    with pytest.warns(UserWarning, match="intervals.window = 100 does nothing with update = 'static'"):
        IntervalsConfig.model_validate({"update": "static", "window": 100})
    assert (
        IntervalsConfig().update == "rolling" and IntervalsConfig().window == 2160
    )  # the default, chosen on validation


def test_intervals_on_a_task_without_point_forecasts_or_too_few_windows_are_one_line_errors(tmp_path, capsys):
    config = tmp_path / "tagging.toml"
    config.write_text('task = "tagging"\n[data]\ndataset = "teddy"\n[intervals]\nlevels = [0.8]\n', encoding="utf-8")
    one_line_error(capsys, ["train", config], "intervals: task = 'tagging' has no point forecast", "'regression'")
    with pytest.raises(RnnkitError, match="a 99.9% conformal interval needs at least 999 calibration windows"):
        raw = tiny_config(write_jena_csv(tmp_path / "a.csv", days=20))
        raw["intervals"] = {"levels": [0.999]}
        run_experiment(parse_config(raw), tmp_path / "run", **quiet)
