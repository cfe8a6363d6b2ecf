"""What the runner and the tasks both use, beneath both: the score table's text, the best-model
rule, and reading a trained model of a run folder back.

The runner (:mod:`rnnkit.runs`) calls the tasks; a task calls these. Neither is imported by this
module, so a task never reaches back up into the runner that drives it. Reading a model back takes
the task object (``task.specs()``, ``task.rebuild``) instead of asking the registry for it::

    name, model, description = read_trained(run, task)              # the best model on validation
    text = format_table([{"model": name, "mae_val": 2.5912}])
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from rnnkit.errors import RnnkitError
from rnnkit.io import load_weights, read_json, read_model_json

__all__ = ["best_model", "format_table", "read_trained", "rebuild_from_file", "slug"]


def slug(name: str) -> str:
    """The folder name of a model: ``"GRU per step"`` -> ``"gru_per_step"``.

    Example:
        >>> slug("GRU per step")
        'gru_per_step'
    """
    return re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").lower() or "model"


def best_model(models: dict[str, dict[str, Any]], key: str, *, lowest: bool = False) -> str | None:
    """The trained model (kind ``"model"``) with the highest (or ``lowest``) ``key``; None without one.

    Example:
        >>> best_model({"mean": {"kind": "baseline", "mae_val": 1.0}, "GRU": {"kind": "model", "mae_val": 2.0},
        ...             "LSTM": {"kind": "model", "mae_val": 3.0}}, "mae_val", lowest=True)
        'GRU'
    """
    trained = [n for n, m in models.items() if m["kind"] == "model"]
    if not trained:
        return None
    return (min if lowest else max)(trained, key=lambda n: models[n][key])


def best_baseline(models: dict[str, dict[str, Any]], key: str, *, lowest: bool = False) -> str | None:
    """The baseline (kind ``"baseline"``) with the highest (or ``lowest``) ``key``; None without one.

    Example:
        >>> best_baseline({"mean": {"kind": "baseline", "mae_val": 1.0}, "GRU": {"kind": "model", "mae_val": 2.0},
        ...                "persistence": {"kind": "baseline", "mae_val": 1.5}}, "mae_val", lowest=True)
        'mean'
    """
    scored = [n for n, m in models.items() if m.get("kind") == "baseline" and key in m]
    if not scored:
        return None
    return (min if lowest else max)(scored, key=lambda n: models[n][key])


def best_lines(metrics: dict[str, Any], key: str, *, lowest: bool = False) -> list[str]:
    """The lines beside the best model: the best baseline by the same validation score, and a warning
    when it beats every trained model.

    Example:
        >>> best_lines({"best": "GRU", "best_baseline": "linear", "models": {
        ...     "linear": {"kind": "baseline", "mae_val": 2.329}, "GRU": {"kind": "model", "mae_val": 2.369}}},
        ...     "mae_val", lowest=True)  # doctest: +NORMALIZE_WHITESPACE
        ['best baseline by validation MAE: linear (2.329, best model GRU 2.369)',
         'a baseline wins: linear scores better on validation than every trained model (GRU is the best of them)']
    """
    name, best, models = metrics.get("best_baseline"), metrics.get("best"), metrics.get("models", {})
    if not name or name not in models or key not in models[name]:
        return []
    what = key.removesuffix("_val").replace("_", " ").replace("mae", "MAE")
    value = models[name][key]
    if not best or best not in models or key not in models[best]:
        return [f"best baseline by validation {what}: {name} ({value:.3f})"]
    model_value = models[best][key]
    lines = [f"best baseline by validation {what}: {name} ({value:.3f}, best model {best} {model_value:.3f})"]
    if (value < model_value) if lowest else (value > model_value):
        lines.append(
            f"a baseline wins: {name} scores better on validation than every trained model ({best} is the best of them)"
        )
    return lines


def seconds(value: float) -> str:
    """A table's seconds, one decimal whatever their size (``format_table`` would give 25.903 but 107).

    Example:
        >>> seconds(25.903), seconds(107.2), seconds(0.0)
        ('25.9', '107.2', '0.0')
    """
    return f"{value:.1f}"


def format_table(rows: list[dict[str, Any]]) -> str:
    """Rows of a comparison table as text: 3 decimals, whole numbers from 100 on.

    Example:
        >>> print(format_table([{"model": "GRU", "mae": 2.5912, "params": 3489.0}]))
        model   mae  params
          GRU 2.591    3489
    """
    return pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3f}" if abs(v) < 100 else f"{v:.0f}")


def rebuild_from_file(task: Any, description: dict[str, Any], path: Path) -> nn.Module:
    """``task.rebuild(description)``, with what the file ``path`` gets wrong named as bad input.

    Everything the rebuild reads comes from the file, so an error it raises (an unknown layer
    ``class_name``, a layer built for other input features, ``layers`` that is not a list) is the
    file's: a :class:`RnnkitError` that names it, never an internal error.
    """
    try:
        return task.rebuild(description)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as e:
        what = str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"
        raise RnnkitError(f"{path}: cannot rebuild the model it describes: {what}") from None


def read_trained(run: str | Path, task: Any, name: str | None = None) -> tuple[str, nn.Module, dict[str, Any]]:
    """A trained model of the run folder ``run``, rebuilt by ``task`` (the run's task object) and its
    weights loaded: ``(name, model in eval mode, its model.json)``. ``name`` None: the run's best
    model on validation (``metrics.json``'s ``best``), else its first."""
    folder = Path(run)
    names = [spec.name for spec in task.specs()]
    if name is None:
        metrics_file = folder / "metrics.json"
        metrics = read_json(metrics_file, "run metrics") if metrics_file.is_file() else {}
        name = metrics.get("best") or (names[0] if names else None)
    if name not in names:
        raise RnnkitError(f"model {name!r} is not in the run; its models are {names}")
    stem = folder / "models" / slug(name) / "model"
    description = read_model_json(stem)
    model = rebuild_from_file(task, description, stem.with_suffix(".json"))
    load_weights(stem.with_suffix(".safetensors"), model)
    model.eval()
    return name, model, description
