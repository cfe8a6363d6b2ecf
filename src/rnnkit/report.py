"""``report.html``: one self-contained page that shows a whole run.

The page reads the run folder (config, scores, histories, saved models) and the run's data
again, and holds, in order: the data (source, rows, periods, each column's units and range),
the windowing (the first windows of each part with their rows and timestamps, and the first
window's values), each model's summary with its parameter formulas, the scores of every model
beside the baselines (and published numbers where the config names them), the learning
curves, the forecasts of the best model against the truth and persistence over chosen weeks
(with a sentence under a week that persistence wins), its test error by the target's hour of day
and month against persistence, the error per forecast step (multi-step runs), the gradient-flow
picture when the run folder holds one, the exact resolved config as TOML (folded) and links to
the run's files. Figures are inline SVG (PNG as a data: URL for a
picture already drawn); the page loads nothing from the network and runs no script.

Written at the end of every run (``[output] report = false`` turns it off) and by
``rnnkit report RUN``.

Example::

    from rnnkit.report import write_report
    write_report("runs/demo-20260101-120000")      # -> runs/demo-.../report.html
"""

from __future__ import annotations

import base64
import html
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pandas as pd

from rnnkit.errors import RnnkitError

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0 auto; max-width: 1100px;
       padding: 0 24px 48px; color: #1d232a; }
h1 { font-size: 24px; margin: 24px 0 4px; } h2 { font-size: 19px; margin: 32px 0 8px; border-bottom: 1px solid #d8dee4; }
h3 { font-size: 15px; margin: 18px 0 6px; }
table { border-collapse: collapse; margin: 8px 0; font-variant-numeric: tabular-nums; }
th, td { border: 1px solid #d0d7de; padding: 3px 9px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f5f7; } tr.best td { background: #e7f5e9; font-weight: 600; } tr.baseline td { color: #57606a; }
tr.published td { color: #6e4c00; font-style: italic; }
pre { background: #f6f8fa; padding: 10px 12px; overflow-x: auto; font-size: 12.5px; border-radius: 4px; }
figure { margin: 10px 0 18px; } figure svg, figure img { max-width: 100%; height: auto; }
.wide { overflow-x: auto; } .wide table { font-size: 12px; } .wide th, .wide td { padding: 3px 5px; }
figcaption { color: #57606a; font-size: 13px; } .note { color: #57606a; } nav a { margin-right: 12px; }
"""

SECTIONS = [
    ("data", "Data"),
    ("windows", "Windowing"),
    ("models", "Models"),
    ("scores", "Scores"),
    ("curves", "Learning curves"),
    ("forecasts", "Forecasts"),
    ("config", "Config"),
    ("files", "Files"),
]


def _e(value: Any) -> str:
    return html.escape(str(value))


def _number(value: Any, digits: int = 3) -> str:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return f"{int(value):,}"
    if isinstance(value, (float, np.floating)):
        if not np.isfinite(value):
            return "–"
        return f"{value:,.0f}" if abs(value) >= 10000 else f"{value:.{digits}f}"
    return _e(value)


def table(rows: list[dict[str, Any]], classes: list[str] | None = None) -> str:
    """An HTML table of ``rows`` (dicts with the same keys); ``classes``: a CSS class per row."""
    if not rows:
        return "<p class='note'>(none)</p>"
    head = "".join(f"<th>{_e(k)}</th>" for k in rows[0])
    body = []
    for i, row in enumerate(rows):
        cls = f" class='{classes[i]}'" if classes and classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(f"<td>{_number(v)}</td>" for v in row.values()) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def figure(svg: str, caption: str) -> str:
    start = svg.find("<svg")  # drop the XML prolog and doctype: the SVG sits inside HTML
    return f"<figure>{svg[start:]}<figcaption>{_e(caption)}</figcaption></figure>"


def png_figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f"<figure><img alt='{_e(caption)}' src='data:image/png;base64,{data}'><figcaption>{_e(caption)}</figcaption></figure>"


# --- the sections ----------------------------------------------------------------------------------


def data_section(config: Any, prepared: Any, metrics: dict[str, Any]) -> str:
    from rnnkit.tasks.series import describe_prepared, units_of

    frame = prepared.frame
    if config.data.paths:
        facts = [f"Dataset <b>{_e(config.data.dataset)}</b>, from the file(s) the config names."]
    else:
        facts = [
            f"Dataset <b>{_e(config.data.dataset)}</b>; the config names no file, so rnnkit looked in "
            "RNNKIT_DATA_DIR, then its cache, then took the record embedded in the package."
        ]
    used = metrics.get("data_used") or {}  # what the run read: files and resolution, where it records them
    if used:
        facts.append(_e(data_in_words(used)))
    step = pd.Series(frame.index).diff().median() if isinstance(frame.index, pd.DatetimeIndex) else None
    if step is not None and pd.notna(step):
        every = f"{step / pd.Timedelta(hours=1):g} h" if step < pd.Timedelta(days=2) else f"{step.days} days"
        facts.append(f"{len(frame):,} rows, one every {every}, from {frame.index[0]} to {frame.index[-1]}")
    columns = [
        {
            "column": c,
            "units": units_of(str(c)),
            "mean": float(frame[c].mean()),
            "std": float(frame[c].std()),
            "min": float(frame[c].min()),
            "max": float(frame[c].max()),
            "role": "target" if c == config.data.target else "feature",
        }
        for c in frame.columns
    ]
    return (
        "<p>"
        + "<br>".join(facts)
        + "</p>"
        + f"<pre>{_e(describe_prepared(prepared))}</pre>"
        + "<h3>Columns (data units, whole series)</h3>"
        + table(columns)
    )


def data_in_words(used: dict[str, Any]) -> str:
    """What a run read, as a sentence (from ``data_used``: files, embedded_record, file_resolution, resolution).

    Example:
        >>> data_in_words({"files": ["/x/jena_climate_2009_2016_hourly.csv.gz"], "embedded_record": True,
        ...                "file_resolution": "1 h", "resolution": "7 days"})
        'Read jena_climate_2009_2016_hourly.csv.gz (the 2009-2016 record embedded in rnnkit, every 6th 10-minute row), whose rows are 1 h apart; the run uses one row every 7 days.'
    """
    files = [Path(str(f)).name for f in used.get("files") or []]
    text = "Read " + (", ".join(files) or "no file")
    if used.get("embedded_record"):
        text += " (the 2009-2016 record embedded in rnnkit, every 6th 10-minute row)"
    step, every = used.get("file_resolution"), used.get("resolution")
    if step:
        text += f", whose rows are {step} apart"
    if every and every != step:
        text += f"; the run uses one row every {every}"
    elif every:
        text += "; the run uses every row"
    return text + "."


def windows_section(prepared: Any) -> str:
    from rnnkit.tasks.series import PART_NAMES, PARTS

    w_config = prepared.config.windows
    out = [
        f"<p>sequence_length {w_config.sequence_length}, shift {w_config.shift}, sampling_rate "
        f"{w_config.sampling_rate}, horizon {w_config.horizon}, target_length {w_config.target_length}"
        + (", residual target" if w_config.residual else "")
        + "</p>"
    ]
    rows = []
    for part in PARTS:
        w = prepared.windows[part]
        index = pd.Index(np.concatenate([p.index.to_numpy() for p in prepared.parts[part]]))
        for i in sorted({0, 1, 2, len(w) - 1} & set(range(len(w)))):
            inputs, targets = w.rows(i)
            rows.append(
                {
                    "part": PART_NAMES[part],
                    "window": i,
                    "input rows": f"{inputs[0]}–{inputs[-1]}",
                    "first input": f"{pd.Timestamp(index[inputs[0]]):%Y-%m-%d %H:%M}",
                    "last input": f"{pd.Timestamp(index[inputs[-1]]):%Y-%m-%d %H:%M}",
                    "target rows": f"{targets[0]}" + (f"–{targets[-1]}" if len(targets) > 1 else ""),
                    "target time": f"{pd.Timestamp(index[targets[0]]):%Y-%m-%d %H:%M}"
                    + (f" – {pd.Timestamp(index[targets[-1]]):%Y-%m-%d %H:%M}" if len(targets) > 1 else ""),
                }
            )
    out.append(
        "<p class='note'>Rows count within each part (training, validation, test); the last window of "
        "each part is shown too.</p>" + table(rows)
    )
    # the first training window's values, in data units: its first rows, its last row and its target
    train = prepared.parts["train"][0]
    inputs, targets = prepared.windows["train"].rows(0)
    values = prepared.scaler.inverse_transform(train) if hasattr(prepared.scaler, "inverse_transform") else None
    if values is not None:
        shown = inputs[:3] + inputs[-1:]
        sample = [
            {
                "row": r,
                "time": f"{train.index[r]:%Y-%m-%d %H:%M}",
                "is": "input",
                **{c: float(values.iloc[r][c]) for c in list(values.columns)[:6]},
            }
            for r in shown
        ]
        sample += [
            {
                "row": r,
                "time": f"{train.index[r]:%Y-%m-%d %H:%M}",
                "is": "target",
                **{c: float(values.iloc[r][c]) for c in list(values.columns)[:6]},
            }
            for r in targets[:1]
        ]
        out.append("<h3>The first training window (data units; first 6 columns)</h3>" + table(sample))
    return "".join(out)


def models_section(config: Any, features: int) -> str:
    from rnnkit.tasks import task_for

    return f"<pre>{_e(task_for(config).summaries(features))}</pre>"


def scores_section(config: Any, metrics: dict[str, Any]) -> str:
    from rnnkit.results import best_lines
    from rnnkit.tasks import task_class

    task = task_class(metrics.get("task") or "regression")  # runs written before metrics named their task
    if task.own_table:
        return f"<pre>{_e(task.table(metrics))}</pre>"
    units = metrics.get("units") or ""
    best = metrics.get("best")
    rows, classes = [], []
    for name, m in metrics.get("models", {}).items():
        row = {
            "model": name + (" (best by validation)" if name == best else ""),
            "kind": m.get("kind", ""),
            "params": m.get("params", ""),
            f"MAE val ({units})": m.get("mae_val", float("nan")),
            f"MAE test ({units})": m.get("mae_test", float("nan")),
            f"RMSE test ({units})": m.get("rmse_test", float("nan")),
            "skill test": f"{100 * m['skill_test']:+.1f}%" if "skill_test" in m else "–",
            "seconds": seconds(m.get("train_seconds")),
        }
        rows.append(row)
        classes.append("best" if name == best else "baseline" if m.get("kind") == "baseline" else "")
    entries = _published(config)
    sources = list(dict.fromkeys(entry["source"] for entry in entries))  # each source once, numbered in order
    for entry in entries:
        rows.append(
            {
                "model": f"{entry['model']} [{sources.index(entry['source']) + 1}]",
                "kind": "published",
                "params": "",
                f"MAE val ({units})": entry["mae_val"],
                f"MAE test ({units})": entry["mae_test"],
                f"RMSE test ({units})": "–",
                "skill test": "–",
                "seconds": f"compare: {entry['run_as']}" if entry["run_as"] else "–",
            }
        )
        classes.append("published")
    legend = (
        (
            "<p class='note'>Published numbers: "
            + "; ".join(f"[{i}] {_e(source)}" for i, source in enumerate(sources, 1))
            + ".</p>"
        )
        if sources
        else ""
    )
    note = (
        "<p class='note'>Skill: 1 − MAE / MAE of persistence on the same windows. The best model is chosen on "
        "the validation split; the test split is only reported.</p>"
    )
    beside = "".join(
        f"<p class='note'>{_e(line)}</p>" for line in best_lines(metrics, task.best_key, lowest=task.lowest)
    )
    return table(rows, classes) + legend + note + beside


def seconds(value: Any) -> str:
    """A training time as the console prints it: one decimal (``"25.8"``), ``"–"`` when unknown."""
    return f"{value:.1f}" if isinstance(value, (int, float)) and np.isfinite(value) else "–"


def _published(config: Any) -> list[dict[str, Any]]:
    """The config's published numbers (``[published]``: source, rows of model, run_as, mae_val, mae_test)."""
    published = getattr(config, "published", None)
    if published is None:
        return []

    def mae(value: Any) -> Any:
        if value is None:
            return "–"
        if isinstance(value, (list, tuple)):  # a range [low, high]
            return "–".join(f"{v:.2f}" for v in value)
        return f"{value:.2f}"

    return [
        {
            "model": row.model,
            "source": getattr(row, "source", None) or published.source,
            "run_as": getattr(row, "run_as", None),
            "mae_val": mae(getattr(row, "mae_val", None)),
            "mae_test": mae(getattr(row, "mae_test", None)),
        }
        for row in published.rows
    ]


def curves_section(run: Path, metrics: dict[str, Any]) -> str:
    from rnnkit import plots

    path = run / "history.csv"
    if not path.is_file():
        return "<p class='note'>No history.csv: no model trained.</p>"
    table_ = pd.read_csv(path)
    if table_.empty or "model" not in table_:
        return "<p class='note'>No model trained.</p>"
    histories = {name: group.drop(columns="model") for name, group in table_.groupby("model", sort=False)}
    svg = plots.plot_history(histories, None, loss_name="loss (scaled units)" if metrics.get("units") else "loss")
    return figure(svg, "Training (solid) and validation (dashed) loss per epoch of every trained model.")


def forecasts_section(run: Path, config: Any, prepared: Any, metrics: dict[str, Any]) -> str:
    from rnnkit import plots
    from rnnkit.runs import load_trained
    from rnnkit.tasks import task_for
    from rnnkit.tasks.regression import forecast_table
    from rnnkit.tasks.series import ahead as _ahead, rows_per_day as _rows_per_day

    test = prepared.windows["test"]
    chosen = _forecast_model(config, metrics)
    models = {chosen: load_trained(run, chosen)[1]} if chosen is not None else {}
    table = forecast_table(task_for(config), prepared, models, "test")  # what rk.load_run(RUN).forecasts() gives
    times = pd.DatetimeIndex(table["target_time"])
    truth = table[f"true {config.data.target}"].to_numpy()
    base = table[f"persistence {config.data.target}"].to_numpy()
    series: dict[str, np.ndarray] = {name: table[name].to_numpy() for name in models}
    interval_bands = conformal_bands(run, chosen, series.get(chosen), truth, intervals_clock(test))
    week = 7 * _rows_per_day(prepared)
    parts = []
    for start in _weeks(config, times, week):
        shown = (times >= start) & (times < start + pd.Timedelta(days=7))
        if not shown.any():
            parts.append(f"<p class='note'>No test target in the week from {start:%Y-%m-%d}.</p>")
            continue
        bands = {label: (low[shown], high[shown]) for label, (low, high) in interval_bands.items()}
        svg = plots.plot_predictions(
            times[shown],
            truth[shown],
            {n: v[shown] for n, v in series.items()},
            None,
            persistence=base[shown],
            units=config.data.target,
            bands=bands,
            title=f"{config.data.target}, {_ahead(prepared)} ahead: the week from {start:%Y-%m-%d}",
        )
        errors = ", ".join(f"{n} MAE {np.abs(v[shown] - truth[shown]).mean():.2f}" for n, v in series.items())
        week_persistence = float(np.abs(base[shown] - truth[shown]).mean())
        parts.append(
            figure(
                svg,
                f"Test targets of the week from {start:%Y-%m-%d} ({int(shown.sum())} windows): "
                f"{errors + ', ' if errors else ''}persistence MAE {week_persistence:.2f}"
                + intervals_caption(truth[shown], bands, (metrics.get("intervals") or {}).get("update", "static")),
            )
        )
        for name, values in series.items():
            week_model = float(np.abs(values[shown] - truth[shown]).mean())
            if week_persistence < week_model:
                parts.append(f"<p class='note'>{_e(persistence_wins(name, week_model, week_persistence, metrics))}</p>")
    if chosen is not None:
        parts.append(error_by_time(times, truth, series[chosen], base, chosen))
    by_step = {n: m["mae_test_by_step"] for n, m in metrics.get("models", {}).items() if "mae_test_by_step" in m}
    if by_step:
        parts.append(
            "<h3>Error per forecast step (test)</h3>"
            + figure(
                plots.plot_step_errors(by_step, None, units=metrics.get("units") or ""),
                "MAE of each forecast step on the test windows, every model and baseline.",
            )
        )
    return "".join(parts)


def intervals_clock(windows: Any) -> tuple[np.ndarray, np.ndarray]:
    """The windows' last rows and last step's target rows: when rolling intervals' errors are known."""
    from rnnkit import intervals

    last_rows, target_rows = intervals.clock_of(windows)
    return last_rows, target_rows[:, -1:]


def conformal_bands(
    run: Path,
    name: str | None,
    point: np.ndarray | None,
    truth: np.ndarray | None = None,
    clock: tuple[Any, Any] | None = None,
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The conformal intervals of model ``name`` around its test forecasts ``point`` (its last step), widest
    first, from the run's ``intervals.json``; none when the run has no intervals. Rolling intervals: from
    ``truth`` and the windows' ``clock`` (each radius from the errors known when its forecast is made)."""
    from rnnkit import intervals

    cal = intervals.read(run, name) if name is not None and point is not None else None
    if cal is None:
        return {}
    lower, upper = cal.bounds(point.reshape(-1, 1), None if truth is None else truth.reshape(-1, 1), clock)
    return {
        f"{name}: {intervals.percent(a)}% conformal interval": (lower[i, :, 0], upper[i, :, 0])
        for i, a in reversed(list(enumerate(cal.levels)))
    }


def intervals_caption(truth: np.ndarray, bands: dict[str, Any], update: str = "static") -> str:
    """The caption's words on the shaded intervals: how they were made, the share of the week's targets inside each."""
    if not bands:
        return ""
    covered = [
        f"{label.rsplit(': ', 1)[-1].removesuffix(' conformal interval')} "
        f"{np.mean((truth >= low) & (truth <= high)):.0%}"
        for label, (low, high) in bands.items()
    ]
    how = (
        "recalibrated online from the errors known at each forecast"
        if update == "rolling"
        else "calibrated on validation"
    )
    return f"; shaded: the conformal intervals ({how}), the week's targets inside: " + ", ".join(covered)


def persistence_wins(name: str, week_model: float, week_persistence: float, metrics: dict[str, Any]) -> str:
    """The sentence under a forecast week that persistence wins: the week's scores beside the whole test split's.

    Example:
        >>> persistence_wins("GRU", 2.35, 1.77, {"models": {"GRU": {"mae_test": 2.2, "skill_test": 0.08},
        ...                                                  "persistence": {"mae_test": 2.4}}})
        'Persistence wins this week: MAE 1.77 against 2.35 for GRU. Over the whole test split GRU scores 2.20 against persistence 2.40 (skill +8.0%): a model that is better on average still loses the weeks in which the weather holds from one day to the next.'
    """
    text = f"Persistence wins this week: MAE {week_persistence:.2f} against {week_model:.2f} for {name}."
    models = metrics.get("models", {})
    model, base = models.get(name, {}), models.get("persistence", {})
    if "mae_test" in model and "mae_test" in base:
        text += (
            f" Over the whole test split {name} scores {model['mae_test']:.2f} against persistence "
            f"{base['mae_test']:.2f}" + (f" (skill {100 * model['skill_test']:+.1f}%)" if "skill_test" in model else "")
        )
        if model["mae_test"] < base["mae_test"]:
            text += (
                ": a model that is better on average still loses the weeks in which the weather holds "
                "from one day to the next."
            )
        else:
            text += ": persistence wins on the whole test split too."
    return text


MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


def error_by_time(
    times: pd.DatetimeIndex, truth: np.ndarray, model: np.ndarray, persistence: np.ndarray, name: str
) -> str:
    """Tables of the test MAE by the target's hour of day and by its month, the model against persistence
    (a table only where the test targets fall on more than one hour, or month)."""
    times = pd.DatetimeIndex(times)
    error, base = np.abs(model - truth), np.abs(persistence - truth)
    out = []
    for title, keys, label in (
        ("hour of day", times.hour, lambda k: f"{k:02d}"),
        ("month", times.month, lambda k: MONTHS[k - 1]),
    ):
        groups = sorted(set(int(k) for k in keys))
        if len(groups) < 2:
            continue
        rows: list[dict[str, Any]] = [
            {"": "best model MAE", **{label(k): f"{error[keys == k].mean():.2f}" for k in groups}},
            {"": "persistence MAE", **{label(k): f"{base[keys == k].mean():.2f}" for k in groups}},
            {"": "test windows", **{label(k): int((keys == k).sum()) for k in groups}},
        ]
        out.append(
            f"<h3>Test error by the target's {title}</h3><div class='wide'>"
            + table(rows, ["best", "baseline", ""])
            + "</div>"
        )
    if out:
        out.insert(
            0,
            f"<p class='note'>The best model by validation ({_e(name)}) against persistence, on every "
            f"test window, grouped by the time of its target (the station's local time).{few_hours(times)}</p>",
        )
    return "".join(out)


def few_hours(times: pd.DatetimeIndex) -> str:
    """A sentence where the test targets fall on a few hours of the day only because they lie a whole number
    of days apart (windows that start every 24 hourly rows, as in the course's shift approach); else ``""``.

    Example:
        >>> few_hours(pd.DatetimeIndex(["2015-05-25 09:10", "2015-05-26 09:10", "2015-05-27 09:10", "2015-05-28 11:20"]))
        ' The test targets fall on 2 of the 24 hours only (09, 11): they lie 1 day apart, so they keep one time of day, which moves only where the rows skip or repeat a time (a gap, or rows read by position where the file misses some).'
    """
    times = pd.DatetimeIndex(times)
    hours = sorted(set(int(h) for h in times.hour))
    if not 1 < len(hours) < 24 or len(times) < 3:
        return ""
    apart = pd.Series(times).diff().dropna().dt.round("h").median()
    days = apart // pd.Timedelta(days=1)
    if days < 1 or apart % pd.Timedelta(days=1):
        return ""
    listed = ", ".join(f"{h:02d}" for h in hours)
    return (
        f" The test targets fall on {len(hours)} of the 24 hours only ({listed}): they lie {days} "
        f"day{'s' if days > 1 else ''} apart, so they keep one time of day, which moves only where the rows skip "
        "or repeat a time (a gap, or rows read by position where the file misses some)."
    )


def files_section(folder: Path, at: Path | None = None) -> str:
    """Links to the run's files (a model's checkpoint folder is left out), relative to ``at``, the
    folder the page lies in (default the run folder): the links hold when both are moved together,
    and from a page written elsewhere (``rnnkit report RUN --output PAGE``) they lead back into the run."""
    names = sorted(
        p.relative_to(folder).as_posix()
        for p in folder.rglob("*")
        if p.is_file() and not any(part.startswith(".") or part == "checkpoint" for part in p.relative_to(folder).parts)
    )
    try:
        base = "" if at is None else Path(os.path.relpath(folder.resolve(), Path(at).resolve())).as_posix() + "/"
    except ValueError:  # another drive (Windows): no relative path, the run folder's address
        base = folder.resolve().as_uri() + "/"
    base = "" if base == "./" else base
    href = (lambda n: base + quote(n)) if base.startswith("file:") else (lambda n: quote(base + n))
    items = "".join(f"<li><a href='{_e(href(n))}'>{_e(n)}</a></li>" for n in names if n != "report.html")
    where = "the run folder" if not base else f"this page ({_e(base)} is the run folder)"
    return f"<p class='note'>Links relative to {where}.</p><ul>{items}</ul>"


def _forecast_model(config: Any, metrics: dict[str, Any]) -> str | None:
    """The best model by validation that predicts windows one by one (a stateful one reads streams)."""
    from rnnkit.tasks import task_for

    stateful = {s.name for s in task_for(config).specs() if config.training_for(s).stateful}
    models = {n: m for n, m in metrics.get("models", {}).items() if m.get("kind") == "model" and n not in stateful}
    return min(models, key=lambda n: models[n]["mae_val"]) if models else None


def _weeks(config: Any, times: pd.DatetimeIndex, week: int) -> list[pd.Timestamp]:
    """The weeks to draw: ``[output] report_weeks`` (start dates), else the test part's first and middle week."""
    asked = list(getattr(config.output, "report_weeks", []) or [])
    if asked:
        return [pd.Timestamp(d) for d in asked]
    first = pd.Timestamp(times[0]).normalize()
    middle = pd.Timestamp(times[len(times) // 2]).normalize()
    return [first] if middle - first < pd.Timedelta(days=7) else [first, middle]


# --- the page --------------------------------------------------------------------------------------


def build_report(run: str | Path, at: str | Path | None = None) -> str:
    """The HTML text of the report of the run folder ``run``, whose links to the run's files lead
    there from ``at``, the folder the page is written to (default the run folder)."""
    from rnnkit.runs import load_run
    from rnnkit.tasks import task_class
    from rnnkit.tasks.series import load_frame, prepare

    folder = Path(run)
    config, scaler, metrics = load_run(folder)
    if not metrics:
        raise RnnkitError(f"{folder} has no metrics.json: the run has not finished")
    sections: dict[str, str] = {}
    prepared = None
    if config.windows is not None and task_class(config.task).scaled:  # a task on the one-series path (scaler.json)
        prepared = prepare(config, load_frame(config))
        sections["data"] = data_section(config, prepared, metrics)
        sections["windows"] = windows_section(prepared)
        sections["models"] = models_section(config, len(prepared.features))
    else:
        sections["models"] = models_section(config, 0)
    sections["scores"] = scores_section(config, metrics)
    sections["curves"] = curves_section(folder, metrics)
    if prepared is not None and task_class(config.task).draws_forecasts:
        sections["forecasts"] = forecasts_section(folder, config, prepared, metrics)
    gradients = folder / "gradients.png"
    if gradients.is_file():
        sections["forecasts"] = (
            sections.get("forecasts", "")
            + "<h3>Gradient flow</h3>"
            + png_figure(gradients, "The gradient reaching each input step (rnnkit gradients).")
        )
    # the exact config as TOML, folded: every default filled in; rnnkit train reads it back
    from rnnkit.config import config_toml

    sections["config"] = (
        "<details><summary>The resolved config as TOML (every default filled in; "
        "<code>rnnkit train</code> reads it back)</summary><pre>" + _e(config_toml(config)) + "</pre></details>"
    )
    sections["files"] = files_section(folder, None if at is None else Path(at))
    nav = " ".join(f"<a href='#{key}'>{_e(title)}</a>" for key, title in SECTIONS if key in sections)
    body = "".join(
        f"<section id='{key}'><h2>{_e(title)}</h2>{sections[key]}</section>"
        for key, title in SECTIONS
        if key in sections
    )
    description = f"<p>{_e(config.description)}</p>" if config.description else ""
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>rnnkit run {_e(config.name)}</title><style>{CSS}</style></head><body>"
        f"<h1>rnnkit run: {_e(config.name)}</h1><p class='note'>task {_e(config.task)}, folder {_e(folder.name)}"
        f"</p>{description}<nav>{nav}</nav>{body}</body></html>\n"
    )


def write_report(run: str | Path, path: str | Path | None = None) -> Path:
    """Write the report of ``run`` to ``path`` (default ``RUN/report.html``); returns the path."""
    from rnnkit.io import write_text_atomic

    target = Path(path) if path is not None else Path(run) / "report.html"
    text = build_report(run, at=target.parent)
    if not target.parent.is_dir():
        raise RnnkitError(f"cannot write the report {target}: its folder does not exist")
    return write_text_atomic(target, text)


def write_if_configured(run: str | Path) -> Path | None:
    """The end of a run: the report when the run's ``[output] report`` is on (the default)."""
    from rnnkit.runs import load_run

    config, _, _ = load_run(run)
    return write_report(run) if config.output.report else None


__all__ = ["build_report", "write_report", "write_if_configured", "table"]
