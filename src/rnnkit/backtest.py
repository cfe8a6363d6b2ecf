"""Rolling-origin backtests: a config's ``[backtest]``, run by ``rnnkit backtest CONFIG``.

A run is scored on one test period; a backtest scores every model and baseline of a config on
several, each forecast from its own past. The test folds come from ``[backtest]``
(:class:`~rnnkit.config.BacktestConfig`): each calendar year (``by = "year"``), or ``folds = N``
consecutive blocks of ``length`` that end with the data. For each fold:

- its **training span** is every row before the test fold (``window = "expanding"``) or the ``span``
  just before it (``"sliding"``); the span's last ``validation`` rows are the fold's validation part
  (which picks the best epoch and calibrates ``[intervals]``), the rest its training part;
- the fold is an ordinary run (:func:`rnnkit.experiment.run_experiment`) with those parts given as
  row ranges (``data.parts``): the scaler is fit on the fold's training rows only, and each part's
  windows are cut from its own rows, so no window crosses a fold boundary;
- ``refit = false`` trains once, on the first fold's training span, and scores every later fold's
  test part with those models (and that scaler).

A backtest folder holds::

    config.json, run.json   the backtest's resolved config and identity (resume continues only it)
    fold_01/ ...            one run folder per fold (refit = false: folds 2.. hold scores only)
    backtest.csv            one row per fold and model: periods, MAE, RMSE, skill, interval coverage
    backtest.json           the same, with the mean and sd (over folds) of each model's scores
    backtest.png            the test MAE of each fold, one line per model
    report.html             the folds, the scores and the figure on one page

``resume=True`` skips the folds that finished (their ``metrics.json``) and continues the one that
was interrupted as ``rnnkit train --resume`` does.

Example::

    from rnnkit.backtest import run_backtest
    from rnnkit.tasks import load_config

    document = run_backtest(load_config("configs/jena_backtest.toml"), "runs/jena_backtest")
    document["summary"]["persistence"]["mae"]        # {"mean": ..., "sd": ..., "folds": [...]}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnkit import rundir
from rnnkit.config import BacktestConfig, ExperimentConfig, RowParts, duration_hours
from rnnkit.errors import RnnkitError
from rnnkit.io import read_json, write_json_atomic, write_text_atomic
from rnnkit.results import format_table
from rnnkit.runs import Log

FORMAT = "rnnkit-backtest"
# The scores of a fold's metrics.json that the backtest keeps, by the name its table gives them.
SCORES = {"mae": "mae_test", "rmse": "rmse_test", "skill": "skill_test", "mae_val": "mae_val"}
DATE = "%Y-%m-%d"


@dataclass(frozen=True)
class Fold:
    """One fold: its parts as row ranges ``[start, stop)`` by position in the series read."""

    number: int
    label: str  # the test year ("2013"), or "fold 1"
    train: tuple[int, int]
    val: tuple[int, int]
    test: tuple[int, int]

    def parts(self) -> RowParts:
        return RowParts(train=list(self.train), val=list(self.val), test=list(self.test))

    def periods(self, index: pd.Index) -> dict[str, list[str]]:
        """The first and last timestamp of each part (``YYYY-MM-DD HH:MM``)."""
        return {
            part: [f"{pd.Timestamp(index[a]):%Y-%m-%d %H:%M}", f"{pd.Timestamp(index[b - 1]):%Y-%m-%d %H:%M}"]
            for part, (a, b) in (("train", self.train), ("validation", self.val), ("test", self.test))
        }

    def span(self, index: pd.Index, part: str = "test") -> str:
        """``2013-01-01..2013-12-31``: a part's first and last dates."""
        a, b = {"train": self.train, "validation": self.val, "test": self.test}[part]
        return f"{pd.Timestamp(index[a]):{DATE}}..{pd.Timestamp(index[b - 1]):{DATE}}"


def backtest_settings(config: ExperimentConfig, source: str = "config") -> BacktestConfig:
    """The config's ``[backtest]``; a config without one, or of a task the backtest cannot score, is refused."""
    if config.backtest is None:
        raise RnnkitError(
            f'{source} has no [backtest] table: add one, e.g. [backtest] by = "year" (each calendar year a test '
            'fold) or folds = 4 with length = "365d" (docs/guides/backtest.md)'
        )
    if config.task != "regression":
        raise RnnkitError(
            f"{source}: [backtest] scores forecasts of a series (task = 'regression'), got task = {config.task!r}"
        )
    if config.search is not None:
        raise RnnkitError(f"{source}: [backtest] and [search] exclude each other: a sweep's trials are single runs")
    return config.backtest


def _rows_before(index: pd.DatetimeIndex, stop: int, length: int | str) -> int:
    """The first row of the ``length`` (rows, or a duration) that ends just before row ``stop`` (may be < 0)."""
    hours = duration_hours(length)
    if hours is None:
        return stop - int(length)
    start_time = index[stop] - pd.Timedelta(hours=hours)
    if start_time < index[0]:
        return -1
    return _rows_through(index[:stop], start_time - pd.Timedelta(1, "ns"))


def _rows_through(index: pd.Index, time: pd.Timestamp) -> int:
    """How many leading rows end at ``time``: one past the last row at or before it (0 when none is).

    By position, so a series read by position whose clock steps back now and then (the record's two
    repeated days) still splits where its time passes ``time`` for the last time.
    """
    at_or_before = np.flatnonzero(index.to_numpy() <= np.datetime64(time))
    return int(at_or_before[-1]) + 1 if len(at_or_before) else 0


def plan_folds(config: ExperimentConfig, frame: pd.DataFrame) -> list[Fold]:
    """The folds of ``config.backtest`` on the series ``frame`` (rows as :func:`rnnkit.tasks.series.load_frame` reads).

    Raises:
        RnnkitError: the settings do not fit the data (a year that is not in it, a fold whose training,
            validation or test part is too short for one window), named in one line.
    """
    from rnnkit.tasks.series import window_span

    b = backtest_settings(config)
    index = frame.index
    if not isinstance(index, pd.DatetimeIndex):
        raise RnnkitError("backtest: the series needs timestamps to cut folds in time")
    n = len(frame)
    tests: list[tuple[str, int, int]] = []  # label, start, stop
    previous_year: dict[int, int] = {}  # test start -> the start of the calendar year before (by = "year")
    if b.by == "year":
        years = index.year.to_numpy()
        if (np.diff(years) < 0).any():
            raise RnnkitError(
                "backtest: by = 'year' needs the rows in time order, but a year comes back after the next"
            )
        available = sorted({int(y) for y in years})
        for key in ("first", "last"):
            year = getattr(b, key)
            if year is not None and year not in available:
                raise RnnkitError(
                    f"backtest.{key} = {year} is not a year of the data ({available[0]}..{available[-1]})"
                )
        first = b.first if b.first is not None else (available[1] if len(available) > 1 else available[0])
        last = b.last if b.last is not None else available[-1]
        chosen = [y for y in available if first <= y <= last]
        if b.folds is not None:
            if b.folds > len(chosen):
                raise RnnkitError(
                    f"backtest.folds = {b.folds}, but the test years {first}..{last} of the data are {len(chosen)}"
                )
            chosen = chosen[-b.folds :]
        for year in chosen:
            start, stop = int(np.searchsorted(years, year, "left")), int(np.searchsorted(years, year, "right"))
            tests.append((str(year), start, stop))
            previous_year[start] = int(np.searchsorted(years, year - 1, "left"))
    else:
        hours = duration_hours(b.length)
        if hours is None:
            bounds = [n - (b.folds - k) * int(b.length) for k in range(b.folds + 1)]
        else:
            ends = [index[-1] - (b.folds - k) * pd.Timedelta(hours=hours) for k in range(b.folds + 1)]
            bounds = [_rows_through(index, t) for t in ends]
            bounds[0] = bounds[0] if ends[0] >= index[0] else -1
        if bounds[0] <= 0:
            raise RnnkitError(
                f"backtest: {b.folds} test folds of {b.length!r} need more than the {n} rows of the data "
                "(no row is left before the first fold to train on)"
            )
        tests = [(f"fold {k}", bounds[k - 1], bounds[k]) for k in range(1, b.folds + 1)]
    need = window_span(config)
    folds: list[Fold] = []
    for number, (label, start, stop) in enumerate(tests, 1):
        year = f"year {label}, " if b.by == "year" else ""
        where = f"backtest fold {number} (test {year}from {pd.Timestamp(index[start]):{DATE}})"
        if b.validation is not None:
            val_start = _rows_before(index, start, b.validation)
        elif b.by == "year":
            val_start = previous_year[start]
        else:
            val_start = _rows_before(index, start, b.length)
        if b.window == "sliding":
            train_start = _rows_before(index, start, b.span)
            if train_start < 0:
                raise RnnkitError(f"{where}: backtest.span = {b.span!r} reaches back before the data's first row")
        else:
            train_start = 0
        if val_start < 0 or val_start <= train_start:
            raise RnnkitError(
                f"{where}: the validation part (backtest.validation = {b.validation!r}) leaves no training rows "
                f"before it"
            )
        parts = {"training": (train_start, val_start), "validation": (val_start, start), "test": (start, stop)}
        if number > 1 and not b.refit:  # trained once: the first fold's training and validation parts
            parts["training"], parts["validation"] = folds[0].train, folds[0].val
        for part, (a, z) in parts.items():
            if z - a < need:
                raise RnnkitError(
                    f"{where}: its {part} part holds {z - a} rows, fewer than one window's {need} "
                    "(windows.sequence_length, horizon): choose longer folds or a shorter window"
                )
        folds.append(Fold(number, label, parts["training"], parts["validation"], parts["test"]))
    return folds


def fold_config(config: ExperimentConfig, fold: Fold, folds: int) -> ExperimentConfig:
    """The run config of one fold: ``config`` without [backtest], its parts given as row ranges."""
    from rnnkit.tasks import parse_config

    raw = config.to_dict()
    raw.pop("backtest", None)
    raw["data"]["parts"] = fold.parts().model_dump()
    note = f"backtest fold {fold.number}/{folds} (test {fold.label})"
    raw["description"] = f"{config.description} [{note}]" if config.description else note
    return parse_config(raw, source=f"{config.name}: {note}")


def fold_folder(output: Path, fold: Fold) -> Path:
    return output / f"fold_{fold.number:02d}"


def finished(folder: Path, config: ExperimentConfig) -> bool:
    """Whether ``folder`` holds the finished run of ``config`` (its identity and its ``metrics.json``)."""
    identity = rundir.read_identity(folder) if folder.is_dir() else None
    return (
        identity is not None
        and identity.config_hash == rundir.config_hash(config.to_dict())
        and (folder / "metrics.json").is_file()
    )


def score_trained_fold(config: ExperimentConfig, folder: Path, trained: Path, *, resume: bool) -> dict[str, Any]:
    """``refit = false``: score the models of the run ``trained`` (the first fold) on ``config``'s parts, whose
    training and validation parts are that run's; ``folder`` gets the config, scaler and ``metrics.json``."""
    from rnnkit.experiment import with_best_baseline
    from rnnkit.runs import baseline_results, load_run, load_trained, saved_model_results, start_run
    from rnnkit.tasks import task_for

    task = task_for(config)
    task.prepare()
    _, scaler, stored = load_run(trained)
    task.check_same_data(scaler, trained)  # the same training rows: the same scaler
    resume = resume and rundir.read_identity(folder) is not None
    start_run(folder, task.config, task.scaler, task.data_used(), resume=resume)
    results = baseline_results(task.baselines(), task.score)
    results.update(
        saved_model_results(
            task.config, task.specs(), stored, task.score, load=lambda name: load_trained(trained, name)[1]
        )
    )
    metrics = with_best_baseline(task, task.document(results))
    metrics["trained_in"] = trained.name
    write_json_atomic(folder / "metrics.json", metrics)
    rundir.release(folder)
    return metrics


def run_backtest(
    config: ExperimentConfig,
    output: str | Path,
    *,
    epochs: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Log = print,
    device: str | None = None,
) -> dict[str, Any]:
    """Train and score every model and baseline of ``config`` on each fold of its ``[backtest]``.

    ``output`` becomes the backtest folder (see the module docstring); ``resume`` skips the folds that
    finished and continues the interrupted one; ``overwrite`` replaces the backtest a folder holds.
    ``epochs``, ``progress``, ``log`` and ``device`` are :func:`rnnkit.experiment.run_experiment`'s.

    Returns:
        The content of ``backtest.json``.
    """
    from rnnkit.experiment import check_devices, run_experiment
    from rnnkit.tasks import task_for
    from rnnkit.tasks.series import load_frame

    settings = backtest_settings(config)
    check_devices(config, device)
    frame = load_frame(config)
    folds = plan_folds(config, frame)
    configs = [fold_config(config, fold, len(folds)) for fold in folds]
    out = Path(output)
    if resume and not overwrite and rundir.read_identity(out) is None:
        raise RnnkitError(
            f"{out}: nothing to resume: it holds no backtest (no {rundir.RUN_FILE}); start it with "
            f"rnnkit backtest CONFIG --output {out}"
        )
    rundir.claim(out, config.to_dict(), resume=resume, overwrite=overwrite, log=log)
    write_json_atomic(out / "config.json", config.to_dict())
    log(describe_folds(config, folds, frame.index))
    specs = task_for(configs[0]).specs()
    what = f"{len(specs)} model{'s' if len(specs) != 1 else ''} and {len(config.baselines)} baselines"
    results: list[tuple[Fold, dict[str, Any]]] = []
    for fold, fold_cfg in zip(folds, configs):
        folder = fold_folder(out, fold)
        line = f"fold {fold.number}/{len(folds)} test {fold.span(frame.index)}"
        if resume and finished(folder, fold_cfg):
            log(f"{line}: finished in the earlier run, read back")
            metrics = read_json(folder / "metrics.json", "fold metrics")
        elif fold.number > 1 and not settings.refit:
            log(f"{line}: scoring the {what} of fold 1 (refit = false)")
            metrics = score_trained_fold(fold_cfg, folder, fold_folder(out, folds[0]), resume=resume)
        else:
            again = resume and rundir.read_identity(folder) is not None
            log(f"{line}: training {what}" + (" (resuming the interrupted fold)" if again else ""))
            metrics = run_experiment(
                fold_cfg, folder, epochs=epochs, resume=again, progress=progress, log=log, device=device
            )
        results.append((fold, metrics))
    document = backtest_document(config, folds, frame.index, results)
    write_outputs(out, document)
    rundir.release(out)
    return document


def describe_folds(config: ExperimentConfig, folds: list[Fold], index: pd.Index) -> str:
    """The plan: one line per fold with the periods and rows of its parts."""
    b = config.backtest
    how = f"by year ({folds[0].label}..{folds[-1].label})" if b.by == "year" else f"of {b.length!r}"
    refit = "refit on every fold" if b.refit else "trained once on fold 1"
    lines = [f"backtest: {len(folds)} test folds {how}, {b.window} training window, {refit}"]
    for fold in folds:
        rows = {p: r[1] - r[0] for p, r in (("train", fold.train), ("val", fold.val), ("test", fold.test))}
        lines.append(
            f"  fold {fold.number}: training {fold.span(index, 'train')} ({rows['train']:,} rows), validation "
            f"{fold.span(index, 'validation')} ({rows['val']:,}), test {fold.span(index)} ({rows['test']:,})"
        )
    return "\n".join(lines)


def _stats(values: list[float]) -> dict[str, Any]:
    """Mean and sample sd (ddof 1; None for one fold) of a score over the folds, and the folds' values."""
    finite = [v for v in values if v is not None and math.isfinite(v)]
    mean = float(np.mean(finite)) if finite else None
    sd = float(np.std(finite, ddof=1)) if len(finite) > 1 else None
    return {"mean": mean, "sd": sd, "folds": values}


def _coverage_keys(models: dict[str, Any]) -> list[str]:
    keys = {k for m in models.values() for k in m if k.startswith("conformal_") and k.endswith("_test")}
    return sorted(keys, key=lambda k: (float(k.split("_")[1]), k))


def backtest_document(
    config: ExperimentConfig, folds: list[Fold], index: pd.Index, results: list[tuple[Fold, dict[str, Any]]]
) -> dict[str, Any]:
    """The content of ``backtest.json``: each fold's periods and scores, and each model's mean and sd."""
    names = list(results[0][1]["models"])
    fold_docs = []
    for fold, metrics in results:
        models = {}
        for name, m in metrics["models"].items():
            scores = {key: m.get(source) for key, source in SCORES.items()}
            scores.update({k.removesuffix("_test"): m[k] for k in _coverage_keys({name: m})})
            models[name] = {"kind": m.get("kind"), **scores}
        fold_docs.append(
            {
                "fold": fold.number,
                "label": fold.label,
                "rows": {"train": list(fold.train), "validation": list(fold.val), "test": list(fold.test)},
                "periods": fold.periods(index),
                "windows": metrics.get("windows"),
                "best": metrics.get("best"),
                "models": models,
            }
        )
    keys = list(SCORES) + sorted(
        {k for f in fold_docs for m in f["models"].values() for k in m if k.startswith("conformal_")},
        key=lambda k: (float(k.split("_")[1]), k),
    )
    summary = {
        name: {
            "kind": fold_docs[0]["models"][name]["kind"],
            **{key: _stats([f["models"][name].get(key) for f in fold_docs]) for key in keys},
        }
        for name in names
    }
    return {
        "format": FORMAT,
        "config": config.name,
        "target": config.data.target,
        "units": results[0][1].get("units", ""),
        "backtest": config.backtest.model_dump(mode="json"),
        "models": names,
        "folds": fold_docs,
        "summary": summary,
        "sd": "sample standard deviation over the folds (ddof 1; null for one fold)",
    }


def backtest_rows(document: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows of ``backtest.csv``: one per fold and model."""
    rows = []
    for fold in document["folds"]:
        periods = fold["periods"]
        for name, m in fold["models"].items():
            rows.append(
                {
                    "fold": fold["fold"],
                    "label": fold["label"],
                    "train_start": periods["train"][0],
                    "train_end": periods["train"][1],
                    "validation_start": periods["validation"][0],
                    "validation_end": periods["validation"][1],
                    "test_start": periods["test"][0],
                    "test_end": periods["test"][1],
                    "test_windows": (fold.get("windows") or {}).get("test"),
                    "model": name,
                    "kind": m["kind"],
                    **{k: v for k, v in m.items() if k != "kind"},
                }
            )
    return rows


def _mean_sd(stats: dict[str, Any], digits: int = 3, percent: bool = False) -> str:
    if stats["mean"] is None:
        return "–"
    scale, unit = (100, "%") if percent else (1, "")
    text = f"{scale * stats['mean']:.{digits}f}{unit}"
    return text + (f" ± {scale * stats['sd']:.{digits}f}{unit}" if stats["sd"] is not None else "")


def backtest_table(document: dict[str, Any]) -> str:
    """The printed table: each model's test MAE on every fold, then the mean ± sd of MAE, RMSE and skill
    (and of each interval's coverage where the config has [intervals])."""
    units = document.get("units") or "units"
    rows = []
    for name in document["models"]:
        s = document["summary"][name]
        row: dict[str, Any] = {"model": name}
        for fold in document["folds"]:
            row[fold["label"]] = fold["models"][name]["mae"]
        row[f"MAE ({units}) mean ± sd"] = _mean_sd(s["mae"])
        row["RMSE mean ± sd"] = _mean_sd(s["rmse"])
        row["skill mean ± sd"] = _mean_sd(s["skill"], 1, percent=True)
        for key in (k for k in s if k.startswith("conformal_") and k.endswith("_coverage")):
            row[f"{key.split('_')[1]}% coverage"] = _mean_sd(s[key], 1, percent=True)
        rows.append(row)
    n = len(document["folds"])
    head = f"test MAE ({units}) of each fold (columns), and the mean ± sd over the {n} folds (sd: sample, ddof 1)"
    return head + "\n" + format_table(rows)


def write_outputs(out: Path, document: dict[str, Any]) -> None:
    """``backtest.csv``, ``backtest.json``, ``backtest.png`` and ``report.html`` of a backtest folder."""
    from rnnkit import plots

    write_text_atomic(out / "backtest.csv", pd.DataFrame(backtest_rows(document)).to_csv(index=False))
    write_json_atomic(out / "backtest.json", document)
    labels = [f["label"] for f in document["folds"]]
    plots.plot_backtest(
        {name: [f["models"][name]["mae"] for f in document["folds"]] for name in document["models"]},
        labels,
        out / "backtest.png",
        title=f"{document['target']}: test MAE per fold ({document['config']})",
        units=document.get("units", ""),
    )
    write_text_atomic(out / "report.html", backtest_report(out, document))


def backtest_report(out: Path, document: dict[str, Any]) -> str:
    """The backtest's ``report.html``: the folds, the scores per fold and over folds, the figure, links."""
    from rnnkit.report import CSS, _e, png_figure, table

    folds = [
        {
            "fold": f["fold"],
            "test": f["label"],
            "training": " .. ".join(f["periods"]["train"]),
            "validation": " .. ".join(f["periods"]["validation"]),
            "test period": " .. ".join(f["periods"]["test"]),
            "test windows": (f.get("windows") or {}).get("test", "–"),
            "best by validation": f.get("best") or "–",
        }
        for f in document["folds"]
    ]
    units = document.get("units") or "units"
    scores = []
    for name in document["models"]:
        s = document["summary"][name]
        row: dict[str, Any] = {"model": name}
        row.update({f["label"]: f["models"][name]["mae"] for f in document["folds"]})
        row[f"MAE ({units}) mean ± sd"] = _mean_sd(s["mae"])
        row["RMSE mean ± sd"] = _mean_sd(s["rmse"])
        row["skill mean ± sd"] = _mean_sd(s["skill"], 1, percent=True)
        for key in (k for k in s if k.startswith("conformal_") and k.endswith("_coverage")):
            row[f"{key.split('_')[1]}% coverage"] = _mean_sd(s[key], 1, percent=True)
        scores.append(row)
    classes = ["baseline" if document["summary"][n]["kind"] == "baseline" else "" for n in document["models"]]
    links = "".join(
        f"<li><a href='fold_{f['fold']:02d}/report.html'>fold {f['fold']} ({_e(f['label'])})</a></li>"
        for f in document["folds"]
        if (out / f"fold_{f['fold']:02d}" / "report.html").is_file()
    )
    b = document["backtest"]
    settings = ", ".join(f"{k} = {v!r}" for k, v in b.items() if v is not None)
    figure = png_figure(out / "backtest.png", "Test MAE of each fold, one line per model.")
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        f"<title>rnnkit backtest {_e(document['config'])}</title><style>{CSS}</style></head><body>"
        f"<h1>rnnkit backtest: {_e(document['config'])}</h1>"
        f"<p class='note'>target {_e(document['target'])}; [backtest] {_e(settings)}</p>"
        "<section id='folds'><h2>Folds</h2>" + table(folds) + "</section>"
        "<section id='scores'><h2>Scores</h2><p class='note'>Test MAE of each fold, then the mean ± sample sd "
        "over the folds.</p>" + table(scores, classes) + figure + "</section>"
        "<section id='runs'><h2>Fold runs</h2><ul>" + links + "</ul></section></body></html>\n"
    )


__all__ = ["Fold", "backtest_table", "plan_folds", "run_backtest"]
