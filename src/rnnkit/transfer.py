"""A trained run scored on other data files: does the past teach the present?

``rnnkit evaluate RUN --data FILE...`` reads each file with the run's data settings (columns,
derived features, step; gaps always respected: a window never spans a gap), scales it with the
run's training statistics, cuts every window the file holds, and scores persistence and each
saved model of the run on the same windows, in data units; a run with ``[intervals]`` also gives the
coverage and width of each model's conformal intervals there, with the radii calibrated in the run
(``RUN/intervals.json``, the last forecast step's; rolling ones recalibrated online on the file's own
errors, each forecast's radius from those whose truth was known when it was made). The station's half-year exports
(``mpi_roof*.csv``) carry the benchmark's 14 columns under the same names (the loader reads
them from the 22), so a model trained on the 2009-2016 record runs on them as it is.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np


from rnnkit.data import make_windows
from rnnkit.errors import RnnkitError
from rnnkit.results import format_table
from rnnkit.training import predict


def _last(values):
    """The last forecast step of a multi-step output or target; one-step values unchanged."""
    return values[:, -1] if values.dim() == 2 and values.shape[1] > 1 else values.reshape(len(values), -1)[:, 0]


def evaluate_on_files(run: str | Path, data_paths: list[str]) -> list[dict[str, Any]]:
    """Persistence and every saved (not stateful) model of ``run``, scored on each file of ``data_paths``.

    Returns:
        One entry per file: ``{"file", "rows", "first", "last", "windows", "models": {name: {"mae",
        "rmse", "skill"}}}`` (MAE/RMSE in the target's units, skill against persistence on the same windows;
        with the run's intervals also ``conformal_<pct>_coverage`` and ``conformal_<pct>_width`` per level).
    """
    from rnnkit import intervals
    from rnnkit.runs import load_run, load_trained
    from rnnkit.tasks.regression import NAIVE_DENSE
    from rnnkit.tasks.series import load_frame, reading_new_files, units_of

    config, scaler, _ = load_run(run)
    if scaler is None or config.task != "regression" or config.windows.return_sequences:
        raise RnnkitError(f"{run}: evaluating on other files needs a one-target regression run")
    config = reading_new_files(config)
    specs = ([NAIVE_DENSE] if "naive_dense" in config.baselines else []) + list(config.models)
    names = [s.name for s in specs if not config.training_for(s).stateful]
    models = {name: load_trained(run, name)[1] for name in names}
    calibrations = (
        {name: intervals.read(run, name) for name in ["persistence", *names]}
        if (Path(run) / intervals.FILE).is_file()
        else {}
    )
    w = config.windows
    ti = scaler.column_index(config.data.target)
    out = []
    for path in data_paths:
        frame = load_frame(config, [path])
        missing = [c for c in scaler.columns if c not in frame.columns]
        if missing:
            raise RnnkitError(f"{path}: the run's models need the columns {missing}, which the file does not have")
        frame = frame[list(scaler.columns)]
        try:
            windows = make_windows(
                scaler.transform(frame),
                w.sequence_length,
                shift=1,
                sampling_rate=w.sampling_rate,
                horizon=w.horizon,
                target_length=w.target_length,
                targets=config.data.target,
                known_future=w.known_future,
            )
        except ValueError as e:
            raise RnnkitError(f"{path}: no window fits ({e})") from None
        truth = _last(windows.y).numpy() * scaler.std[ti] + scaler.mean[ti]
        persistence = windows.x[:, -1, ti].numpy() * scaler.std[ti] + scaler.mean[ti]
        scores = {"persistence": _scores(persistence, truth, persistence)}
        for name, model in models.items():
            pred = _last(predict(model, windows, 1024)).detach().numpy() * scaler.std[ti] + scaler.mean[ti]
            scores[name] = _scores(pred, truth, persistence)
        for name, cal in calibrations.items():  # the run's radii, around the forecasts made here
            point = (
                persistence
                if name == "persistence"
                else _last(predict(models[name], windows, 1024)).detach().numpy() * scaler.std[ti] + scaler.mean[ti]
            )
            last_rows, target_rows = intervals.clock_of(windows)  # rolling: the file's own errors known by then
            scores[name].update(
                intervals.interval_scores(
                    cal, point.reshape(-1, 1), truth.reshape(-1, 1), (last_rows, target_rows[:, -1:])
                )
            )
        out.append(
            {
                "file": Path(path).name,
                "rows": len(frame),
                "first": str(frame.index[0]),
                "last": str(frame.index[-1]),
                "windows": len(windows),
                "units": units_of(config.data.target),
                "resolution": frame.attrs.get("resolution"),
                "models": scores,
            }
        )
    return out


def _scores(pred: np.ndarray, truth: np.ndarray, persistence: np.ndarray) -> dict[str, float]:
    mae = float(np.abs(pred - truth).mean())
    base = float(np.abs(persistence - truth).mean())
    return {
        "mae": mae,
        "rmse": float(np.sqrt(((pred - truth) ** 2).mean())),
        "skill": 1.0 - mae / base if base else 0.0,
    }


def transfer_table(results: list[dict[str, Any]]) -> str:
    """The text ``rnnkit evaluate RUN --data FILE...`` prints: one table per file."""
    blocks = []
    for r in results:
        units = r["units"] or "units"
        rows = [
            {
                "model": name,
                f"MAE ({units})": s["mae"],
                f"RMSE ({units})": s["rmse"],
                "skill": f"{100 * s['skill']:+.1f}%",
                **{_interval_column(k, units): v for k, v in s.items() if k.startswith("conformal_")},
            }
            for name, s in r["models"].items()
        ]
        blocks.append(
            f"{r['file']}: {r['rows']:,} rows ({r['first']} to {r['last']}, every {r['resolution']}), "
            f"{r['windows']:,} windows\n{format_table(rows)}"
        )
    return "\n\n".join(blocks)


def _interval_column(key: str, units: str) -> str:
    """``"80% coverage"`` for ``conformal_80_coverage``, ``"80% width (degC)"`` for ``conformal_80_width``."""
    _, pct, what = key.split("_")
    return f"{pct}% {what}" + (f" ({units})" if what == "width" else "")


__all__ = ["evaluate_on_files", "transfer_table"]
