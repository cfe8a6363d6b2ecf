"""Split-conformal prediction intervals around any point forecaster (``[intervals] method = "conformal"``).

Calibrated on a held-out part (a run's validation part; a backtest fold's calibration part): with n
calibration windows and their absolute errors ``e_1 <= ... <= e_n`` (data units, one set per forecast
step), the interval of level ``a`` around a forecast ``f`` is

    [f − r_a, f + r_a],   r_a = e_k,   k = ceil((n + 1) · a)

(the finite-sample correction: for exchangeable errors the coverage is at least ``a``, and at most
``a + 1 / (n + 1)``). A level whose ``k`` exceeds ``n`` needs more calibration windows and is refused.

``update = "rolling"`` (online recalibration, ``window = W``): the radius of the forecast made at a
window's last row t is the same quantile of the last W absolute errors *known at t*: the calibration
part's (all known: it lies before) followed by the scored part's own forecasts whose target row is
<= t, in order of target row (``rolling_radius``). It follows a change in the errors' size (a shift
between periods, the seasons) at the price of exchangeability: no finite-sample guarantee.

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
UPDATES = ("static", "rolling")


def percent(level: float) -> str:
    """``"80"`` for 0.8, ``"97.5"`` for 0.975: the level as its keys and columns name it."""
    return f"{100 * level:g}"


@dataclass
class Calibration:
    """Conformal radii: ``radius[i, p]`` for level ``levels[i]`` at output position p (split conformal).

    ``n``: the calibration windows. Positions are the model's outputs per window, flattened (one for a
    one-step forecast, K for a K-step one: each step has its own radius). ``update = "rolling"``:
    ``residuals`` holds the last ``window`` calibration absolute errors in order of target row,
    ``(<= window, positions)``, with which the online radii start (``radii``).
    """

    levels: list[float]
    radius: np.ndarray  # (levels, positions), data units
    n: int
    update: str = "static"
    window: int | None = None
    residuals: np.ndarray | None = None  # rolling: (<= window, positions), data units

    def radii(
        self, point: np.ndarray, truth: np.ndarray | None = None, clock: tuple[Any, Any] | None = None
    ) -> np.ndarray:
        """The radius of each forecast, ``(levels, windows, positions)``, around ``point`` ``(windows, positions)``
        (fewer positions than calibrated: the last ones). Rolling: from ``truth`` (NaN where unknown) and
        ``clock = (last_rows, target_rows)`` of the same windows (``clock_of``), errors known at forecast time only."""
        point = np.asarray(point, dtype=float).reshape(len(point), -1)
        positions = point.shape[1]
        if self.update == "static":
            return np.broadcast_to(self.radius[:, -positions:][:, None, :], (len(self.levels), len(point), positions))
        if truth is None or clock is None:
            raise RnnkitError(
                "intervals: rolling intervals need the windows' truth and rows (the errors known "
                "when each forecast is made)"
            )
        truth = np.asarray(truth, dtype=float).reshape(point.shape)
        last_rows, target_rows = clock
        target_rows = np.asarray(target_rows).reshape(len(point), -1)[:, -positions:]
        return rolling_radius(
            self.levels,
            self.window,
            self.residuals[:, -positions:],
            np.abs(truth - point),
            target_rows,
            np.asarray(last_rows).reshape(-1),
        )

    def bounds(
        self, point: np.ndarray, truth: np.ndarray | None = None, clock: tuple[Any, Any] | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(lower, upper)``, each ``(levels, windows, positions)``, around ``point`` ``(windows, positions)``
        (fewer positions than calibrated: the last ones, e.g. a per-step model's last step); rolling: ``radii``."""
        point = np.asarray(point, dtype=float).reshape(len(point), -1)
        r = self.radii(point, truth, clock)
        return point[None] - r, point[None] + r

    def to_dict(self) -> dict[str, Any]:
        d = {"levels": list(self.levels), "n": self.n, "radius": self.radius.tolist(), "update": self.update}
        if self.update == "rolling":
            d.update(window=self.window, residuals=self.residuals.tolist())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = FILE) -> Calibration:
        try:
            levels = [float(a) for a in d["levels"]]
            radius = np.asarray(d["radius"], dtype=float)
            n = int(d["n"])
            update = str(d.get("update", "static"))
            rolling = update == "rolling"
            window = int(d["window"]) if rolling else None
            residuals = np.asarray(d["residuals"], dtype=float) if rolling else None
        except (KeyError, TypeError, ValueError) as e:
            raise RnnkitError(f"{where}: not a conformal calibration ({type(e).__name__}: {e})") from None
        if radius.ndim != 2 or radius.shape[0] != len(levels) or not np.isfinite(radius).all():
            raise RnnkitError(f"{where}: the radii must be finite, one row per level, got shape {radius.shape}")
        if update not in UPDATES:
            raise RnnkitError(f"{where}: update must be one of {list(UPDATES)}, got {update!r}")
        if rolling and (
            residuals.ndim != 2
            or residuals.shape[1] != radius.shape[1]
            or len(residuals) == 0
            or not np.isfinite(residuals).all()
            or window < 1
        ):
            raise RnnkitError(
                f"{where}: the rolling residuals must be finite, one column per position, got shape {residuals.shape}"
            )
        return cls(levels, radius, n, update, window, residuals)


def _ranks(levels: list[float], n: int) -> list[int]:
    """``ceil((n + 1) a)`` per level; refused (bad input) where it exceeds ``n``."""
    ks = [math.ceil((n + 1) * a - 1e-9) for a in levels]  # 1e-9: (n + 1) · a is a whole number in exact arithmetic
    for a, k in zip(levels, ks):
        if k > n or n == 0:
            need = math.ceil(a / (1 - a) - 1e-9)
            raise RnnkitError(
                f"intervals.levels: a {percent(a)}% conformal interval needs at least {need} "
                f"calibration windows, got {n}"
            )
    return ks


def rolling_radius(
    levels: list[float], window: int, past: np.ndarray, errors: np.ndarray, known_at: np.ndarray, made_at: np.ndarray
) -> np.ndarray:
    """Online conformal radii, ``(levels, forecasts, positions)``: the ``ceil((w + 1) a)``-th smallest of the last
    ``w <= window`` absolute errors known when each forecast is made.

    Args:
        past: ``(m, positions)`` errors known before every forecast (the calibration part's), oldest first.
        errors: ``(forecasts, positions)`` the scored forecasts' own absolute errors (NaN: truth never known).
        known_at: ``(forecasts, positions)`` when each error becomes known: its target row.
        made_at: ``(forecasts,)`` when each forecast is made: its window's last input row (same clock).

    An error is used for the forecast made at t only if ``known_at <= t``: a truth not yet observed at
    forecast time never enters its radius.

    Example:
        >>> # two forecasts made at rows 11 and 12, whose truths are known at rows 12 and 13
        >>> rolling_radius([0.5], 3, np.array([[1.0], [2.0], [3.0]]), np.array([[9.0], [9.0]]),
        ...                np.array([[12], [13]]), np.array([11, 12])).tolist()  # 2nd smallest of {1, 2, 3}, {2, 3, 9}
        [[[2.0], [3.0]]]
    """
    past = np.asarray(past, dtype=float).reshape(len(past), -1)
    errors = np.asarray(errors, dtype=float).reshape(len(errors), -1)
    known_at = np.asarray(known_at).reshape(errors.shape)
    made_at = np.asarray(made_at).reshape(-1)
    out = np.empty((len(levels), len(made_at), errors.shape[1]))
    for p in range(errors.shape[1]):
        seen = np.isfinite(errors[:, p])
        order = np.argsort(known_at[seen, p], kind="stable")
        times = known_at[seen, p][order]
        pool = np.concatenate([past[:, p], errors[seen, p][order]])  # oldest first
        known = len(past) + np.searchsorted(times, made_at, side="right")  # errors known when each is made
        counts, which = np.unique(known, return_inverse=True)
        values = np.empty((len(levels), len(counts)))
        for j, c in enumerate(counts):
            recent = pool[max(0, c - window) : c]
            ks = _ranks(levels, len(recent))
            values[:, j] = np.partition(recent, [k - 1 for k in ks])[[k - 1 for k in ks]]
        out[:, :, p] = values[:, which.reshape(-1)]
    return out


def clock_of(windows: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(last_rows, target_rows)`` of windows: when each forecast is made and when its truth is known (rows of
    one series, in time order; ``target_rows`` ``(windows, positions)``)."""
    last = windows.last_rows.numpy()
    return last, windows.target_rows.numpy().reshape(len(last), -1)


def calibrate(
    point: np.ndarray,
    truth: np.ndarray,
    levels: list[float],
    update: str = "static",
    window: int | None = None,
    known_at: np.ndarray | None = None,
) -> Calibration:
    """Split-conformal radii from calibration forecasts and truths (data units, ``(n, positions)``).

    A level needs ``n >= ceil(a / (1 − a))`` windows (else ``ceil((n + 1) a) > n``): refused as bad input.
    ``update = "rolling"`` also keeps the last ``window`` errors in order of ``known_at`` (their target rows;
    default: the windows' order), the start of the online radii.
    """
    point = np.asarray(point, dtype=float).reshape(len(point), -1)
    truth = np.asarray(truth, dtype=float).reshape(point.shape)
    n = len(point)
    errors = np.abs(truth - point)  # (n, positions)
    ks = _ranks(levels, n)
    radius = np.sort(errors, axis=0)[[k - 1 for k in ks]]
    if update == "static":
        return Calibration(list(levels), radius, n)
    if update != "rolling" or window is None or window < 1:
        raise RnnkitError(
            f"intervals: update must be 'static', or 'rolling' with a window >= 1, got {update!r} (window {window})"
        )
    if known_at is not None:
        order = np.argsort(np.asarray(known_at).reshape(errors.shape), axis=0, kind="stable")
        errors = np.take_along_axis(errors, order, axis=0)
    return Calibration(list(levels), radius, n, "rolling", window, errors[-window:])


def interval_scores(
    cal: Calibration, point: np.ndarray, truth: np.ndarray, clock: tuple[Any, Any] | None = None
) -> dict[str, float]:
    """Coverage (share of targets inside, over every window and step) and mean width (data units) per level.
    ``clock``: the windows' ``(last_rows, target_rows)`` (``clock_of``), which rolling intervals need."""
    point = np.asarray(point, dtype=float).reshape(len(point), -1)
    truth = np.asarray(truth, dtype=float).reshape(point.shape)
    lower, upper = cal.bounds(point, truth, clock)
    out: dict[str, float] = {}
    for i, a in enumerate(cal.levels):
        inside = (truth >= lower[i]) & (truth <= upper[i])
        out[f"conformal_{percent(a)}_coverage"] = float(inside.mean())
        out[f"conformal_{percent(a)}_width"] = float((upper[i] - lower[i]).mean())
    return out


def forecasts(
    model: Any, windows: Any, *, scale: float, offset: float, point: Callable[[Any], Any] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``(forecast, truth)`` of ``model`` on ``windows`` in data units, ``(windows, positions)`` each.
    ``point``: the point forecast of the model's output (default: the output itself; a quantile model's median)."""
    from rnnkit.training import predict

    output = predict(model, windows, 1024)
    output = point(output) if point is not None else output
    n = len(output)
    pred = output.detach().double().numpy().reshape(n, -1) * scale + offset
    truth = windows.y.double().numpy().reshape(n, -1) * scale + offset
    return pred, truth


def conformal_scores(
    model: Any,
    calibration: Any,
    test: Any,
    levels: list[float],
    *,
    scale: float,
    offset: float,
    point: Callable[[Any], Any] | None = None,
    update: str = "static",
    window: int | None = None,
) -> tuple[Calibration, dict[str, float]]:
    """Calibrate ``model`` on the windows ``calibration`` and score its intervals on the windows ``test``.

    The function a backtest calls per fold (its calibration part, its test part); a run calls it with
    its validation and test parts. Returns the calibration and ``{conformal_<pct>_coverage,
    conformal_<pct>_width}`` on ``test``. ``update = "rolling"``: online radii over ``test`` (its own errors known
    at each forecast, after the last ``window`` of ``calibration``'s; ``calibration`` lies before ``test``).

    Example::

        cal, scores = conformal_scores(model, fold.windows["val"], fold.windows["test"], [0.8, 0.9],
                                       scale=fold.scale, offset=fold.offset)
        scores["conformal_80_coverage"]
    """
    cal = calibrate(
        *forecasts(model, calibration, scale=scale, offset=offset, point=point),
        levels,
        update,
        window,
        clock_of(calibration)[1],
    )
    return cal, interval_scores(cal, *forecasts(model, test, scale=scale, offset=offset, point=point), clock_of(test))


def run_scores(config: Any, model: Any, prepared: Any, point: Callable[[Any], Any] | None = None) -> dict[str, Any]:
    """A run's interval scores of one model (none without ``[intervals]``): calibrated on validation, scored
    on test (``conformal_<pct>_coverage_test``, ``..._width_test``), and the calibration (``conformal``)."""
    if getattr(config, "intervals", None) is None:
        return {}
    spec = config.intervals
    cal, scores = conformal_scores(
        model,
        prepared.windows["val"],
        prepared.windows["test"],
        spec.levels,
        scale=prepared.scale,
        offset=prepared.offset,
        point=point,
        update=spec.update,
        window=spec.window,
    )
    return {**{f"{k}_test": v for k, v in scores.items()}, "conformal": cal.to_dict()}


def kept(result: dict[str, Any]) -> dict[str, Any]:
    """The interval keys of a model's result that ``metrics.json`` keeps."""
    return {k: v for k, v in result.items() if k.startswith("conformal")}


def document(config: Any) -> dict[str, Any]:
    """What ``metrics.json`` says of the intervals (nothing without ``[intervals]``)."""
    if getattr(config, "intervals", None) is None:
        return {}
    spec = config.intervals
    return {
        "intervals": {
            "method": spec.method,
            "levels": list(spec.levels),
            "update": spec.update,
            **({"window": spec.window} if spec.update == "rolling" else {}),
            "calibrated_on": "validation",
            "scored_on": "test",
        }
    }


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
    if spec.get("update") == "rolling":
        return [
            f"intervals: conformal ({levels}), recalibrated online: each forecast's radius from the last "
            f"{spec['window']:,} errors known when it is made (validation's, then test's own), per forecast "
            f"step; coverage and width on test; the starting errors in {FILE}"
        ]
    return [
        f"intervals: split conformal ({levels}), calibrated on the validation windows (per forecast step), "
        f"coverage and width on test; radii in {FILE}"
    ]


def write(folder: str | Path, metrics: dict[str, Any]) -> Path | None:
    """``RUN/intervals.json``: the method, levels and each model's radii (from ``metrics["models"]``)."""
    from rnnkit.io import write_json_atomic

    if not metrics.get("intervals"):
        return None
    models = {name: m["conformal"] for name, m in metrics.get("models", {}).items() if "conformal" in m}
    path = Path(folder) / FILE
    write_json_atomic(
        path, {**metrics["intervals"], "target": metrics.get("target"), "units": metrics.get("units"), "models": models}
    )
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


def add_columns(
    table: Any,
    cal: Calibration | None,
    predicted: dict[str, np.ndarray],
    truth: np.ndarray | None = None,
    clock: tuple[Any, Any] | None = None,
) -> Any:
    """``table`` with ``lower``/``upper`` columns per level beside each predicted column (``rnnkit predict``).
    Rolling: ``truth`` ``(windows, columns)`` (NaN where the file does not hold it) and the windows' ``clock``."""
    if cal is None:
        return table
    point = np.stack(list(predicted.values()), axis=1)  # (windows, columns): one per forecast step
    lower, upper = cal.bounds(point, truth, clock)
    for i, a in enumerate(cal.levels):
        for j, column in enumerate(predicted):
            what = column.removeprefix("predicted ")
            table[f"lower {what} {percent(a)}%"] = lower[i, :, j]
            table[f"upper {what} {percent(a)}%"] = upper[i, :, j]
    return table


__all__ = [
    "Calibration",
    "add_columns",
    "calibrate",
    "clock_of",
    "conformal_scores",
    "interval_scores",
    "read",
    "rolling_radius",
    "write",
]
