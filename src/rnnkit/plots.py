"""Figures, drawn with matplotlib's Agg backend (no display needed) and saved atomically as PNG.

This is the only module that imports matplotlib.
"""

from __future__ import annotations

import io
import os
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, overload

import matplotlib

matplotlib.use("Agg")  # files only: never open a window, work on machines without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from rnnkit.errors import RnnkitError  # noqa: E402
from rnnkit.io import write_bytes_atomic  # noqa: E402

PathLike = str | os.PathLike[str]


@overload
def _save(fig: Any, path: None, dpi: int = 110) -> str: ...
@overload
def _save(fig: Any, path: PathLike, dpi: int = 110) -> Path: ...
def _save(fig: Any, path: PathLike | None, dpi: int = 110) -> Path | str:
    if path is None:  # the figure as SVG text, for pages that inline it (rnnkit.report)
        text = io.StringIO()
        with matplotlib.rc_context({"svg.hashsalt": "rnnkit", "svg.fonttype": "path"}):
            fig.savefig(text, format="svg", bbox_inches="tight", metadata={"Date": None})
        plt.close(fig)
        return text.getvalue()
    # Render to memory first, then one atomic write: a reader never sees half a PNG.
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(fig)
    return write_bytes_atomic(path, buffer.getvalue())


def _history_columns(history: Any) -> dict[str, list[float]]:
    # History, list of per-epoch dicts, or a DataFrame: all become {column: values}.
    if hasattr(history, "epochs") and isinstance(history.epochs, list):
        records = history.epochs
    elif hasattr(history, "to_dict") and hasattr(history, "columns"):
        records = history.to_dict("records")
    elif isinstance(history, Sequence):
        records = list(history)
    else:
        raise RnnkitError(
            f"history must be a History, a list of per-epoch dicts or a DataFrame, got {type(history).__name__}"
        )
    if not records:
        raise RnnkitError("history must hold at least one epoch, got none")
    keys = [k for k in ("loss", "val_loss") if any(r.get(k) is not None for r in records)]
    if "loss" not in keys:
        raise RnnkitError("history must have a 'loss' column")
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(records)]
    return {"epoch": epochs, **{k: [np.nan if r.get(k) is None else r[k] for r in records] for k in keys}}


@overload
def plot_history(history: Any, path: None, *, title: str = ..., loss_name: str = ...) -> str: ...
@overload
def plot_history(history: Any, path: PathLike, *, title: str = ..., loss_name: str = ...) -> Path: ...
def plot_history(
    history: Any, path: PathLike | None, *, title: str = "Learning curves", loss_name: str = "loss"
) -> Path | str:
    """Learning curves: training and validation loss per epoch, for one model or several.

    Args:
        history: a :class:`rnnkit.training.History`, a list of per-epoch dicts, a DataFrame
            with ``epoch``/``loss``/``val_loss``, or a dict ``{model name: history}``.
        path: the PNG to write (atomically); None: return the figure as SVG text instead.
        title: the figure title.
        loss_name: the y-axis label (e.g. ``"MSE (scaled)"``).

    Returns:
        The path written (the SVG text when ``path`` is None).

    Example:
        >>> plot_history(trainer.fit(model, train, val), "run/learning_curves.png")  # doctest: +SKIP
    """
    return _save(history_figure(history, title=title, loss_name=loss_name), path)


def history_figure(history: Any, *, title: str = "Learning curves", loss_name: str = "loss") -> Any:
    """The figure of :func:`plot_history`, not yet saved.

    Several models: the legend goes below the axes, in columns, never wider than them. The y-axis
    is fit to the epochs after the first when the first epoch's loss would take most of it (a
    note in the corner gives the first epoch's value that is off the scale).
    """
    histories = dict(history) if isinstance(history, Mapping) else {"": history}
    if not histories:
        raise RnnkitError("history must hold at least one model, got an empty dict")
    fig, ax = plt.subplots(figsize=(10, 4.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    first, later, epochs = [], [], 0
    for i, (name, h) in enumerate(histories.items()):
        cols = _history_columns(h)
        color = colors[i % len(colors)]
        prefix = f"{name}: " if name else ""
        ax.plot(cols["epoch"], cols["loss"], "-o", color=color, markersize=3, label=f"{prefix}training")
        if "val_loss" in cols:
            ax.plot(cols["epoch"], cols["val_loss"], "--s", color=color, markersize=3, label=f"{prefix}validation")
        epochs = max(epochs, len(cols["epoch"]))
        for key in ("loss", "val_loss"):
            values = np.asarray(cols.get(key, []), dtype=float)
            first += [v for v in values[:1] if np.isfinite(v)]
            later += [v for v in values[1:] if np.isfinite(v)]
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
    ax.set_ylabel(loss_name)
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if epochs >= 3 and first:  # with two epochs, clipping the first would leave single points
        low, high = min(later), max(later)
        spread = high - low if high > low else abs(high) * 0.1 or 1.0
        if max(first) > high + spread:  # the first epoch would squash the later ones into the bottom of the axes
            ax.set_ylim(low - 0.08 * spread, high + 0.15 * spread)
            ax.text(
                0.01,
                0.98,
                f"epoch 1 off the scale (up to {max(first):.4g})",
                transform=ax.transAxes,
                va="top",
                ha="left",
                fontsize="small",
                color="#57606a",
                bbox={"facecolor": "white", "edgecolor": "none", "alpha": 0.85, "pad": 2},
            )
    if len(histories) == 1:
        ax.legend(fontsize="small", loc="upper right")
    else:  # below the axes, in as many columns as fit their width
        longest = max(len(label) for label in ax.get_legend_handles_labels()[1])
        columns = max(1, min(len(histories) * 2, int(110 // max(longest + 6, 1))))
        ax.legend(
            fontsize="small",
            loc="upper center",
            bbox_to_anchor=(0.5, -0.2),
            ncol=columns,
            borderaxespad=0,
            frameon=False,
        )
    fig.tight_layout()
    return fig


@overload
def plot_predictions(
    times: Any,
    truth: Any,
    predictions: Mapping[str, Any],
    path: None,
    *,
    persistence: Any = ...,
    title: str = ...,
    units: str = ...,
    bands: Mapping[str, Any] | None = ...,
) -> str: ...
@overload
def plot_predictions(
    times: Any,
    truth: Any,
    predictions: Mapping[str, Any],
    path: PathLike,
    *,
    persistence: Any = ...,
    title: str = ...,
    units: str = ...,
    bands: Mapping[str, Any] | None = ...,
) -> Path: ...
def plot_predictions(
    times: Any,
    truth: Any,
    predictions: Mapping[str, Any],
    path: PathLike | None,
    *,
    persistence: Any = None,
    title: str = "Predictions against the truth",
    units: str = "",
    bands: Mapping[str, Any] | None = None,
) -> Path | str:
    """The truth and each model's predictions over a test period, with persistence drawn too.

    Args:
        times: x positions, one per target (timestamps or numbers), length n.
        truth: the true values, length n (data units).
        predictions: ``{model name: values of length n}``.
        path: the PNG to write (atomically); None: return the figure as SVG text instead.
        persistence: persistence's predictions, length n, drawn dotted (default ``None``).
        title: the figure title.
        units: the y-axis label, e.g. ``"T (degC)"``.
        bands: ``{label: (lower, upper)}``, each of length n: intervals drawn as shaded bands, the first
            the lightest (default ``None``; e.g. the conformal 90% and 80% intervals, rnnkit.intervals).

    Returns:
        The path written (the SVG text when ``path`` is None).

    Example:
        >>> plot_predictions(t, y, {"GRU": y_gru}, "run/predictions.png", persistence=y_pers, units="T (degC)")  # doctest: +SKIP
    """
    x = np.asarray(times)
    y = np.asarray(truth, dtype=float).reshape(-1)
    if x.shape[0] != y.shape[0]:
        raise RnnkitError(f"times and truth must have the same length, got {x.shape[0]} and {y.shape[0]}")
    series = dict(predictions)
    checked = {**series, **({"persistence": persistence} if persistence is not None else {})}
    for name, values in checked.items():
        n = np.asarray(values).reshape(-1).shape[0]
        if n != y.shape[0]:
            raise RnnkitError(f"predictions[{name!r}] must have {y.shape[0]} values like truth, got {n}")
    fig, ax = plt.subplots(figsize=(10, 4))
    for i, (label, (low, high)) in enumerate((bands or {}).items()):
        low, high = np.asarray(low, dtype=float).reshape(-1), np.asarray(high, dtype=float).reshape(-1)
        if low.shape != y.shape or high.shape != y.shape:
            raise RnnkitError(
                f"bands[{label!r}] must be two arrays of {y.shape[0]} values like truth, got "
                f"{low.shape[0]} and {high.shape[0]}"
            )
        ax.fill_between(x, low, high, color="tab:blue", alpha=0.12 + 0.1 * i, linewidth=0, label=label)
    ax.plot(x, y, color="black", linewidth=1.6, label="truth")
    if persistence is not None:
        ax.plot(
            x, np.asarray(persistence, dtype=float).reshape(-1), ":", color="gray", linewidth=1.2, label="persistence"
        )
    for name, values in series.items():
        ax.plot(x, np.asarray(values, dtype=float).reshape(-1), linewidth=1.0, label=name)
    ax.set_title(title)
    ax.set_ylabel(units)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    fig.autofmt_xdate()
    return _save(fig, path)


def plot_series(df: Any, columns: Sequence[str] | None, path: str | os.PathLike[str], *, title: str = "") -> Path:
    """A time series, one panel per column, with no line drawn across a gap in the timestamps.

    Args:
        df: a DataFrame with a DatetimeIndex (e.g. from :func:`rnnkit.datasets.jena_climate`).
        columns: the columns to draw; None draws ``"T (degC)"`` if present, else the first column.
        path: the PNG to write (atomically).
        title: the figure title (default: none).

    Returns:
        The path written.

    Example:
        >>> plot_series(jena_climate(), ["T (degC)", "p (mbar)"], "series.png")  # doctest: +SKIP
    """
    from rnnkit.data import segments  # local import: plots stays importable on its own

    if columns is None:
        columns = ["T (degC)"] if "T (degC)" in df.columns else [df.columns[0]]
    columns = list(columns)
    missing = [c for c in columns if c not in df.columns]
    if not columns or missing:
        raise RnnkitError(f"columns must name columns of the data {list(df.columns)}, got {columns}")
    fig, axes = plt.subplots(len(columns), 1, figsize=(10, 2.4 * len(columns)), sharex=True, squeeze=False)
    for ax, col in zip(axes[:, 0], columns, strict=True):
        for a, b in segments(df):
            ax.plot(df.index[a:b], df[col].to_numpy()[a:b], linewidth=0.6, color="C0")
        ax.set_ylabel(col)
        ax.grid(True, alpha=0.3)
    if title:
        axes[0, 0].set_title(title)
    fig.autofmt_xdate()
    return _save(fig, path)


@overload
def plot_gradient_flow(curves: Mapping[str, Any], path: None, *, title: str = ..., ylabel: str = ...) -> str: ...
@overload
def plot_gradient_flow(curves: Mapping[str, Any], path: PathLike, *, title: str = ..., ylabel: str = ...) -> Path: ...
def plot_gradient_flow(
    curves: Mapping[str, Any],
    path: PathLike | None,
    *,
    title: str = "Gradient reaching each input step",
    ylabel: str = "‖∂L/∂x_t‖ / ‖∂L/∂x_T‖",
) -> Path | str:
    """The vanishing-gradient picture: one curve per model of ‖∂L/∂x_t‖ against the step t, log scale.

    Args:
        curves: ``{model name: values (time,)}``, e.g. :meth:`rnnkit.diagnostics.GradientPicture.relative`.
        path: the PNG to write (atomically); None: return the figure as SVG text instead.
        title: the figure title.
        ylabel: the y-axis label.

    Returns:
        The path written (the SVG text when ``path`` is None).

    Example:
        >>> plot_gradient_flow({"SimpleRNN": g_rnn, "LSTM": g_lstm}, "gradients.png")  # doctest: +SKIP
    """
    series = {name: np.asarray(values, dtype=float).reshape(-1) for name, values in dict(curves).items()}
    if not series:
        raise RnnkitError("curves must hold at least one model, got an empty dict")
    for name, values in series.items():
        if values.size == 0 or not np.isfinite(values).all() or (values < 0).any():
            raise RnnkitError(f"curves[{name!r}] must hold finite values >= 0, got {values.size} values")
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, values in series.items():
        # Exact zeros have no place on a log axis: draw them at the smallest positive value.
        floor = values[values > 0].min() if (values > 0).any() else 1e-300
        ax.plot(np.arange(1, values.size + 1), np.maximum(values, floor), linewidth=1.6, label=name)
    ax.set_yscale("log")
    ax.set_xlabel("input step t (the model's output follows step T)")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    return _save(fig, path)


@overload
def plot_step_errors(
    errors: Mapping[str, Sequence[float]], path: None, *, title: str = ..., units: str = ...
) -> str: ...
@overload
def plot_step_errors(
    errors: Mapping[str, Sequence[float]], path: PathLike, *, title: str = ..., units: str = ...
) -> Path: ...
def plot_step_errors(
    errors: Mapping[str, Sequence[float]],
    path: PathLike | None,
    *,
    title: str = "Error per forecast step",
    units: str = "",
) -> Path | str:
    """MAE of each forecast step (step 1 first), one line per model.

    Args:
        errors: ``{model name: [MAE of step 1, step 2, ...]}``.
        path: the PNG to write (atomically); None: return the figure as SVG text instead.
        title: the figure title.
        units: the units of the error, e.g. ``"degC"``.

    Example:
        >>> plot_step_errors({"GRU": [0.5, 0.9, 1.2]}, None).startswith("<?xml")
        True
    """
    if not errors:
        raise RnnkitError("errors must hold at least one model, got none")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, per_step in errors.items():
        values = np.asarray(per_step, dtype=float).reshape(-1)
        ax.plot(np.arange(1, len(values) + 1), values, "-o", markersize=3, label=name)
    ax.set_xlabel("forecast step")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"MAE ({units})" if units else "MAE")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def plot_backtest(
    scores: Mapping[str, Sequence[float]],
    labels: Sequence[str],
    path: str | os.PathLike[str] | None,
    *,
    title: str = "Test MAE per backtest fold",
    units: str = "",
) -> Any:
    """A backtest's test score of each fold (``labels``, in time order), one line per model.

    Args:
        scores: ``{model name: [score of fold 1, fold 2, ...]}``.
        labels: each fold's name on the x axis (its test year, or ``fold 1`` ...).
        path: the PNG to write (atomically); None: return the figure as SVG text instead.
        title: the figure title.
        units: the units of the score, e.g. ``"degC"``.

    Example:
        >>> plot_backtest({"persistence": [2.6, 2.5], "GRU": [2.2, 2.3]}, ["2015", "2016"], None).startswith("<?xml")
        True
    """
    if not scores:
        raise RnnkitError("scores must hold at least one model, got none")
    fig, ax = plt.subplots(figsize=(8, 3.6))
    x = np.arange(len(labels))
    for name, values in scores.items():
        ax.plot(x, np.asarray(values, dtype=float).reshape(-1), "-o", markersize=4, label=name)
    ax.set_xticks(x)
    ax.set_xticklabels(list(labels))
    ax.set_xlabel("test fold")
    ax.set_ylabel(f"test MAE ({units})" if units else "test MAE")
    ax.set_title(title)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    return _save(fig, path)


def plot_sweep(study: Any, folder: str | os.PathLike[str], metric: str) -> list[Path]:
    """A sweep's plots, drawn by Optuna's matplotlib visualisation: ``history.png`` (the value of each
    trial and the best so far), ``importances.png`` (fANOVA importance of each parameter, from two
    finished trials and two parameters on) and ``slice.png`` (the value against each parameter).
    Returns the files written (a plot that the study cannot support yet is left out)."""
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as views

    folder = Path(folder)
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    names = {name for t in complete for name in t.params}
    drawings: list[tuple[str, Callable[..., Any]]] = [("history.png", views.plot_optimization_history)]
    if len(complete) >= 2 and len(names) >= 2:
        drawings.append(("importances.png", views.plot_param_importances))
    if complete and names:
        drawings.append(("slice.png", views.plot_slice))
    written = []
    for name, draw in drawings:
        # Optuna's plots set the ggplot style (kept to these figures); a parameter with one value so far
        # makes matplotlib warn about its axis' identical limits, which it widens: nothing to fix.
        with matplotlib.rc_context(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Attempting to set identical low and high xlims")
            axes = draw(study, target_name=metric)
            first = axes.flat[0] if isinstance(axes, np.ndarray) else axes
            figure = first.get_figure()
            figure.suptitle(f"{study.study_name}: {name.removesuffix('.png')}")
            written.append(_save(figure, folder / name))
    return written
