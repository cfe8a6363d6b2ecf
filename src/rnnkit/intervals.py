"""Split-conformal prediction intervals around any point forecaster (``[intervals] method = "conformal"``).

Calibrated on a held-out part (a run's validation part; a backtest fold's calibration part): with n
calibration windows and their absolute errors ``e_1 <= ... <= e_n`` (data units, one set per forecast
step), the interval of level ``a`` around a forecast ``f`` is

    [f − r_a, f + r_a],   r_a = e_k,   k = ceil((n + 1) · a)

(the finite-sample correction: for exchangeable errors the coverage is at least ``a``, and at most
``a + 1 / (n + 1)``). A level whose ``k`` exceeds ``n`` needs more calibration windows and is refused.

A run with ``[intervals]`` scores every model and baseline this way: ``conformal_<pct>_coverage_test``
and ``conformal_<pct>_width_test`` (test only; the validation part calibrated them), and writes the
radii to ``RUN/intervals.json``, which ``rnnkit predict`` (``lower``/``upper`` columns) and
``rnnkit evaluate RUN --data FILE`` (coverage on new data) read back.

Example:
    >>> import numpy as np
    >>> cal = calibrate(np.zeros((9, 1)), np.arange(1.0, 10.0).reshape(9, 1), [0.8])
    >>> cal.radius.tolist()     # k = ceil(10 · 0.8) = 8: the 8th smallest of the errors 1 … 9
    [[8.0]]
    >>> interval_scores(cal, np.zeros((4, 1)), np.array([[1.0], [-8.0], [8.5], [3.0]]))
    {'conformal_80_coverage': 0.75, 'conformal_80_width': 16.0}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rnnkit.errors import RnnkitError

FILE = "intervals.json"


def percent(level: float) -> str:
    """``"80"`` for 0.8, ``"97.5"`` for 0.975: the level as its keys and columns name it."""
    return f"{100 * level:g}"


@dataclass
class Calibration:
    """The radii of split-conformal intervals: ``radius[i, p]`` for level ``levels[i]`` at output position p.

    ``n``: the calibration windows. Positions are the model's outputs per window, flattened (one for a
    one-step forecast, K for a K-step one: each step has its own radius).
    """

    levels: list[float]
    radius: np.ndarray  # (levels, positions), data units
    n: int

    def bounds(self, point: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)``, each ``(levels, windows, positions)``, around ``point`` ``(windows, positions)``
        (fewer positions than calibrated: the last ones, e.g. a per-step model's last step)."""
        point = np.asarray(point, dtype=float).reshape(len(point), -1)
        r = self.radius[:, -point.shape[1]:][:, None, :]
        return point[None] - r, point[None] + r

    def to_dict(self) -> dict[str, Any]:
        return {"levels": list(self.levels), "n": self.n, "radius": self.radius.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = FILE) -> Calibration:
        try:
            levels = [float(a) for a in d["levels"]]
            radius = np.asarray(d["radius"], dtype=float)
            n = int(d["n"])
        except (KeyError, TypeError, ValueError) as e:
            raise RnnkitError(f"{where}: not a conformal calibration ({type(e).__name__}: {e})") from None
        if radius.ndim != 2 or radius.shape[0] != len(levels) or not np.isfinite(radius).all():
            raise RnnkitError(f"{where}: the radii must be finite, one row per level, got shape {radius.shape}")
        return cls(levels, radius, n)


def calibrate(point: np.ndarray, truth: np.ndarray, levels: list[float]) -> Calibration:
    """Split-conformal radii from calibration forecasts and truths (data units, ``(n, positions)``).

    A level needs ``n >= ceil(a / (1 − a))`` windows (else ``ceil((n + 1) a) > n``): refused as bad input.
    """
    point = np.asarray(point, dtype=float).reshape(len(point), -1)
    truth = np.asarray(truth, dtype=float).reshape(point.shape)
    n = len(point)
    errors = np.sort(np.abs(truth - point), axis=0)  # (n, positions)
    radius = []
    for a in levels:
        k = math.ceil((n + 1) * a - 1e-9)  # 1e-9: (n + 1) · a is a whole number in exact arithmetic
        if k > n or n == 0:
            need = math.ceil(a / (1 - a) - 1e-9)
            raise RnnkitError(f"intervals.levels: a {percent(a)}% conformal interval needs at least {need} "
                              f"calibration windows, got {n}")
        radius.append(errors[k - 1])
    return Calibration(list(levels), np.stack(radius), n)


def interval_scores(cal: Calibration, point: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Coverage (share of targets inside, over every window and step) and mean width (data units) per level."""
    point = np.asarray(point, dtype=float).reshape(len(point), -1)
    truth = np.asarray(truth, dtype=float).reshape(point.shape)
    lower, upper = cal.bounds(point)
    out: dict[str, float] = {}
    for i, a in enumerate(cal.levels):
        inside = (truth >= lower[i]) & (truth <= upper[i])
        out[f"conformal_{percent(a)}_coverage"] = float(inside.mean())
        out[f"conformal_{percent(a)}_width"] = float((upper[i] - lower[i]).mean())
    return out


def forecasts(model: Any, windows: Any, *, scale: float, offset: float,
              point: Callable[[Any], Any] | None = None) -> tuple[np.ndarray, np.ndarray]:
    """``(forecast, truth)`` of ``model`` on ``windows`` in data units, ``(windows, positions)`` each.
    ``point``: the point forecast of the model's output (default: the output itself; a quantile model's median)."""
    from rnnkit.training import predict

    output = predict(model, windows, 1024)
    output = point(output) if point is not None else output
    n = len(output)
    pred = output.detach().double().numpy().reshape(n, -1) * scale + offset
    truth = windows.y.double().numpy().reshape(n, -1) * scale + offset
    return pred, truth


def conformal_scores(model: Any, calibration: Any, test: Any, levels: list[float], *, scale: float, offset: float,
                     point: Callable[[Any], Any] | None = None) -> tuple[Calibration, dict[str, float]]:
    """Calibrate ``model`` on the windows ``calibration`` and score its intervals on the windows ``test``.

    The function a backtest calls per fold (its calibration part, its test part); a run calls it with
    its validation and test parts. Returns the calibration and ``{conformal_<pct>_coverage,
    conformal_<pct>_width}`` on ``test``.

    Example::

        cal, scores = conformal_scores(model, fold.windows["val"], fold.windows["test"], [0.8, 0.9],
                                       scale=fold.scale, offset=fold.offset)
        scores["conformal_80_coverage"]
    """
    cal = calibrate(*forecasts(model, calibration, scale=scale, offset=offset, point=point), levels)
    return cal, interval_scores(cal, *forecasts(model, test, scale=scale, offset=offset, point=point))


def run_scores(config: Any, model: Any, prepared: Any, point: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A run's interval scores of one model (none without ``[intervals]``): calibrated on validation, scored
    on test (``conformal_<pct>_coverage_test``, ``..._width_test``), and the calibration (``conformal``)."""
    if getattr(config, "intervals", None) is None:
        return {}
    cal, scores = conformal_scores(model, prepared.windows["val"], prepared.windows["test"], config.intervals.levels,
                                   scale=prepared.scale, offset=prepared.offset, point=point)
    return {**{f"{k}_test": v for k, v in scores.items()}, "conformal": cal.to_dict()}


def kept(result: dict[str, Any]) -> dict[str, Any]:
    """The interval keys of a model's result that ``metrics.json`` keeps."""
    return {k: v for k, v in result.items() if k.startswith("conformal")}


def document(config: Any) -> dict[str, Any]:
    """What ``metrics.json`` says of the intervals (nothing without ``[intervals]``)."""
    if getattr(config, "intervals", None) is None:
        return {}
    return {"intervals": {"method": config.intervals.method, "levels": list(config.intervals.levels),
                          "calibrated_on": "validation", "scored_on": "test"}}


def table_columns(m: dict[str, Any], units: str) -> dict[str, Any]:
    """The console table's columns of one model: coverage and width on test per level."""
    columns: dict[str, Any] = {}
    for key in m:
        if key.startswith("conformal_") and key.endswith("_coverage_test"):
            pct = key.split("_")[1]
            columns[f"{pct}% cov. test"] = m[key]
            columns[f"{pct}% width ({units})"] = m[f"conformal_{pct}_width_test"]
    return columns


def notes(metrics: dict[str, Any]) -> list[str]:
    """The line under the table that says how the intervals were made."""
    spec = metrics.get("intervals")
    if not spec:
        return []
    levels = ", ".join(f"{percent(a)}%" for a in spec["levels"])
    return [f"intervals: split conformal ({levels}), calibrated on the validation windows (per forecast step), "
            f"coverage and width on test; radii in {FILE}"]


def write(folder: str | Path, metrics: dict[str, Any]) -> Path | None:
    """``RUN/intervals.json``: the method, levels and each model's radii (from ``metrics["models"]``)."""
    from rnnkit.io import write_json_atomic

    if not metrics.get("intervals"):
        return None
    models = {name: m["conformal"] for name, m in metrics.get("models", {}).items() if "conformal" in m}
    path = Path(folder) / FILE
    write_json_atomic(path, {**metrics["intervals"], "target": metrics.get("target"), "units": metrics.get("units"),
                             "models": models})
    return path


def read(folder: str | Path, name: str) -> Calibration | None:
    """The calibration of model ``name`` saved in a run folder (None when the run has no intervals)."""
    from rnnkit.io import read_json

    path = Path(folder) / FILE
    if not path.is_file():
        return None
    saved = read_json(path, "interval calibration")
    models = saved.get("models") if isinstance(saved, dict) else None
    if not isinstance(models, dict) or name not in models:
        raise RnnkitError(f"{path}: holds no calibration of the model {name!r}")
    return Calibration.from_dict(models[name], str(path))


def add_columns(table: Any, cal: Calibration | None, predicted: dict[str, np.ndarray]) -> Any:
    """``table`` with ``lower``/``upper`` columns per level beside each predicted column (``rnnkit predict``)."""
    if cal is None:
        return table
    point = np.stack(list(predicted.values()), axis=1)  # (windows, columns): one per forecast step
    lower, upper = cal.bounds(point)
    for i, a in enumerate(cal.levels):
        for j, column in enumerate(predicted):
            what = column.removeprefix("predicted ")
            table[f"lower {what} {percent(a)}%"] = lower[i, :, j]
            table[f"upper {what} {percent(a)}%"] = upper[i, :, j]
    return table


__all__ = ["Calibration", "add_columns", "calibrate", "conformal_scores", "interval_scores", "read", "write"]
