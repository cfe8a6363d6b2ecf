"""Task kinds, found through a registry: a task name -> the module that owns it.

A config's ``task`` names its kind; :data:`TASKS` maps the name to a module whose ``TASK`` is a
:class:`~rnnkit.tasks.base.Task` subclass. That class owns everything that differs between kinds:
how the data are prepared, the models built and checked, the baselines, the scores, the
``metrics.json`` document, the tables and predictions. The runner (:mod:`rnnkit.experiment`) calls
the protocol and never asks which task it runs; it imports no task module by name.

Adding a kind is one module and one line here.

A config is read in two steps: the schema (:mod:`rnnkit.config`, which knows no task) and then
the task's own checks (:func:`check_config`). :func:`load_config` and :func:`parse_config` do both;
they are the ones to call (``rk.load_config`` is :func:`load_config`).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rnnkit.config import ExperimentConfig, check_placeholders, check_search, parse_schema, read_toml
from rnnkit.errors import RnnkitError

if TYPE_CHECKING:
    from rnnkit.tasks.base import Task

# name -> module holding ``TASK``
TASKS: dict[str, str] = {
    "regression": "rnnkit.tasks.regression",
    "classification": "rnnkit.tasks.classification",
    "tagging": "rnnkit.tasks.tagging",
    "quantile": "rnnkit.tasks.quantile",
    "many_series": "rnnkit.tasks.many_series",
    "autoregressive": "rnnkit.tasks.autoregressive",
    "seq2seq": "rnnkit.tasks.seq2seq",
    "generation": "rnnkit.tasks.generation",
}


def task_class(name: str) -> type[Task]:
    """The :class:`Task` subclass registered as ``name``.

    Example:
        >>> task_class("regression").name
        'regression'
    """
    if name not in TASKS:
        raise RnnkitError(f"task must be one of {', '.join(repr(n) for n in TASKS)}, got {name!r}")
    return import_module(TASKS[name]).TASK


def task_for(config: ExperimentConfig) -> Task:
    """The task object of a config (``config.task``), holding the config."""
    return task_class(config.task)(config)


def check_config(config: ExperimentConfig, source: str = "config") -> ExperimentConfig:
    """The task's checks of a config the schema has parsed: ``config.task`` is registered, its
    ``baselines`` are names a task offers, its placeholders are filled by a task that fills them,
    every other task refuses its own settings here (:meth:`Task.check_absent`), and the task
    checks and fills in its own part (:meth:`Task.check_config`). Returns ``config``, filled in;
    a problem is one RnnkitError line starting with ``source``.
    """
    if config.task not in TASKS:
        raise RnnkitError(f"{source}: 'task' must be one of {', '.join(repr(n) for n in TASKS)}, got {config.task!r}")
    offered = list(dict.fromkeys(n for name in TASKS for n in task_class(name).baseline_names))
    for i, baseline in enumerate(config.baselines):
        if baseline not in offered:
            raise RnnkitError(
                f"{source}: 'baselines[{i}]' must be one of {', '.join(repr(n) for n in offered)}, got {baseline!r}"
            )
    filling = [name for name in TASKS if task_class(name).fills_placeholders]
    for i, model in enumerate(config.models):
        for j, spec in enumerate(model.layers):
            check_placeholders(spec, f"{source}: models[{i}].layers[{j}]", config.task, filling)
    known = config.windows.known_future if config.windows is not None else []
    if known and not task_class(config.task).reads_known_future:
        readers = [name for name in TASKS if task_class(name).reads_known_future]
        raise RnnkitError(
            f"{source}: windows.known_future: task = {config.task!r} takes no known-future inputs "
            f"(task = {' or '.join(repr(n) for n in readers)} does), got {known}"
        )
    if not task_class(config.task).point_forecasts:  # conformal intervals and ensembles need point forecasts
        takers = " or ".join(repr(name) for name in TASKS if task_class(name).point_forecasts)
        if config.intervals is not None:
            raise RnnkitError(
                f"{source}: intervals: task = {config.task!r} has no point forecast to put intervals "
                f"around (task = {takers} has)"
            )
        ensembles = [m.name for m in config.models if m.members]
        if ensembles:
            raise RnnkitError(
                f"{source}: models {ensembles}: an ensemble averages point forecasts; task = "
                f"{config.task!r} has none (task = {takers} has)"
            )
    try:
        for name in TASKS:
            if name != config.task:
                task_class(name).check_absent(config)
        task_class(config.task).check_config(config)
    except ValueError as e:  # the message names the dotted key first (Task.check_config)
        raise RnnkitError(f"{source}: {e}") from None
    return config


def parse_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dict: the schema (:func:`rnnkit.config.parse_schema`), then the task's checks
    (:func:`check_config`), then a ``[search]`` (each end of a range must make a config that passes both).

    Example:
        >>> parse_config({"task": "tagging", "data": {"dataset": "teddy"}}).baselines
        ['majority_per_word']
    """
    config = check_config(parse_schema(raw, source), source)
    if config.search is not None:
        check_search(config, source, parse_config)
    return config


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML experiment file (:func:`parse_config`)."""
    return parse_config(read_toml(path), source=str(Path(path)))


__all__ = ["TASKS", "check_config", "load_config", "parse_config", "task_class", "task_for"]
