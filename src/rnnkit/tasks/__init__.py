"""Task kinds, found through a registry: a task name -> the module that owns it.

A config's ``task`` names its kind; :data:`TASKS` maps the name to a module whose ``TASK`` is a
:class:`~rnnkit.tasks.base.Task` subclass. That class owns everything that differs between kinds:
how the data are prepared, the models built and checked, the baselines, the scores, the
``metrics.json`` document, the tables and predictions. The runner (:mod:`rnnkit.experiment`) calls
the protocol and never asks which task it runs; it imports no task module by name.

Adding a kind is one module and one line here.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING

from rnnkit.errors import RnnkitError

if TYPE_CHECKING:
    from rnnkit.config import ExperimentConfig
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


__all__ = ["TASKS", "task_class", "task_for"]
