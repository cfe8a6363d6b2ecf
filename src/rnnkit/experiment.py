"""Experiments: a config becomes data, models, training, scores and a run folder.

This module is the runner: one skeleton for every task kind. The config's ``task`` names a
:class:`~rnnkit.tasks.base.Task` in the registry (:mod:`rnnkit.tasks`), which owns the data,
models, baselines, scores and tables; the runner calls it and never asks which kind it runs.

A run folder holds::

    config.json         the resolved config (every default filled in)
    scaler.json         the Standardizer fit on the training part
    metrics.json        {"models": {name: {params, mae_val, mae_test, rmse_test, skill_test, train_seconds}}, ...}
                        (windows.return_sequences: over every step, plus mae_last_val/test of the last step;
                        windows.target_length > 1: over every forecast step, plus mae_val/test_by_step)
    history.csv         loss per epoch of every trained model
    learning_curves.png, predictions.png
    models/<slug>/      model.safetensors + model.json, history.csv, result.json, checkpoint/
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from torch import nn

from rnnkit.config import ExperimentConfig, ModelConfig
from rnnkit.report import write_if_configured
from rnnkit.results import best_baseline
from rnnkit.rundir import release
from rnnkit.runs import (  # load_run, load_trained: read a run folder back (the CLI and export use them here)
    Log,
    baseline_results,
    finish_run,
    load_run,
    load_trained,
    saved_model_results,
    start_run,
    train_models,
)
from rnnkit.tasks import task_class, task_for
from rnnkit.training import distributed
from rnnkit.training.device import check_precision, resolve_device
from rnnkit.training.hooks import Hook


def run_experiment(
    config: ExperimentConfig,
    output: str | Path,
    *,
    data_paths: list[str] | None = None,
    epochs: int | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool | None = None,
    log: Log = print,
    model_hooks: Callable[[ModelConfig], list[Hook]] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Train and score every model and baseline of ``config``; write the run folder ``output``.

    With ``resume=True`` the models that finished are read back and the one that was
    interrupted continues from its last checkpoint (only the run the folder holds: same
    config). A folder holding another run is refused unless ``overwrite=True`` (see
    :mod:`rnnkit.rundir`). ``model_hooks(spec)`` adds training-loop hooks to a model's fit
    (a sweep's pruning). ``device`` (``--device``) trains every model there instead of each
    one's ``[training] device``; ``cuda`` without a GPU is refused here, before the folder is claimed.

    Under ``torchrun`` every rank runs this and trains its share of each batch
    (:mod:`rnnkit.training.distributed`); rank 0 alone claims and writes the folder and logs.

    Returns:
        The content of ``metrics.json``.
    """
    task = task_for(config)
    check_devices(config, device)
    task.prepare(data_paths)
    main = distributed.is_main()
    if not main:
        log, progress = _silent, False
    # the other ranks wait for rank 0's claim (and its removal of an old run) before they read a checkpoint
    distributed.on_main(
        lambda: start_run(
            output, task.config, task.scaler, task.data_used(), resume=resume, overwrite=overwrite, log=log
        )
    )
    out = Path(output)
    log(task.describe())
    baselines = task.baselines()
    results = baseline_results(baselines, task.score)
    trained = train_models(
        task.config,
        task.specs(),
        out,
        build=task.build,
        data=task.train_data,
        score=task.score,
        metadata=task.metadata,
        summary=task.summary,
        trainer_options=task.trainer_options() or None,
        describe_epoch=task.describe_epoch,
        epochs=epochs,
        resume=resume,
        progress=progress,
        log=log,
        write=main,
        model_hooks=model_hooks,
        device=device,
    )
    metrics = with_best_baseline(task, task.document({**results, **trained.results}))
    if main:
        finish_run(out, metrics, trained.histories, loss_name=task.loss_name)
        task.finish(out, baselines, trained, metrics)
        write_if_configured(out)  # report.html, unless [output] report = false
        release(out)  # the run's last file is written: another writer may have the folder now
    return metrics


def check_devices(config: ExperimentConfig, device: str | None = None) -> None:
    """Refuse, as one line, a device or precision that this machine cannot train in (``device``
    overrides every model's ``[training] device``): ``cuda`` without a GPU, ``fp16`` on a CPU."""
    for training in [config.training, *(config.training_for(spec) for spec in config.models)]:
        check_precision(training.precision, resolve_device(device or training.device))


def _silent(line: str) -> None:
    """The log of a rank other than 0: nothing (rank 0 says it once)."""


def evaluate_run(run: str | Path) -> dict[str, Any]:
    """Score the baselines and every saved model of a run again, on the run's own data and scaler."""
    config, scaler, stored = load_run(run)
    task = task_for(config)
    task.prepare()
    if scaler is not None:
        task.check_same_data(scaler, run)
    results = baseline_results(task.baselines(), task.score)
    results.update(
        saved_model_results(task.config, task.specs(), stored, task.score, load=lambda name: load_trained(run, name)[1])
    )
    return with_best_baseline(task, task.document(results))


def with_best_baseline(task: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """``metrics`` with ``best_baseline``: the baseline that the task's validation score ranks first (beside
    ``best``, the best trained model), so that a baseline that wins is said, not left out."""
    if task.best_key and "models" in metrics:
        metrics["best_baseline"] = best_baseline(metrics["models"], task.best_key, lowest=task.lowest)
    return metrics


def metrics_table(metrics: dict[str, Any]) -> str:
    """The comparison table of a metrics document, as its task draws it."""
    return task_class(metrics.get("task", "regression")).table(metrics)


def evaluate_report(metrics: dict[str, Any]) -> str:
    """What ``rnnkit evaluate`` prints: the table scored again, the best model and baseline, and which
    numbers are the training's (the seconds and parameters are read from the run, not measured again)."""
    task = task_class(metrics.get("task", "regression"))
    return "\n".join(
        [
            task.table(metrics),
            *task.report(metrics),
            "scores computed again now; 'seconds' is each model's training time, read from the run",
        ]
    )


def run_report(metrics: dict[str, Any], output: str | Path) -> str:
    """What a finished run prints: its table, the model chosen by validation, and the files written."""
    task = task_class(metrics.get("task", "regression"))
    return "\n".join([task.table(metrics), *task.report(metrics), written_lines(output)])


def written_lines(folder: str | Path) -> str:
    """What a run folder holds, read from the folder itself: its files, then a line per subfolder
    with the folders in it and their files (a folder one level deeper is named with ``/``; hidden
    files such as the lock are left out).

    Example (a regression run)::

        written: runs/a/: config.json, history.csv, learning_curves.png, metrics.json, predictions.png, report.html, run.json, scaler.json
          models/: gru_4/, naive_dense/ (each: checkpoint/, history.csv, model.json, model.safetensors, result.json)
    """
    folder = Path(folder)

    def names(path: Path) -> list[str]:
        return sorted(p.name + ("/" if p.is_dir() else "") for p in path.iterdir() if not p.name.startswith("."))

    top = names(folder)
    lines = [f"written: {folder}/: " + ", ".join(n for n in top if not n.endswith("/"))]
    for sub in (n for n in top if n.endswith("/")):
        inner = names(folder / sub)
        kept = [n for n in inner if not n.endswith("/")]
        listings = {n: names(folder / sub / n) for n in inner if n.endswith("/")}
        parts = kept[:]
        if listings and len({tuple(v) for v in listings.values()}) == 1:
            parts.append(
                ", ".join(listings)
                + f" ({'each: ' if len(listings) > 1 else ''}"
                + ", ".join(next(iter(listings.values())))
                + ")"
            )
        else:
            parts += [f"{n} ({', '.join(v)})" if v else n for n, v in listings.items()]
        lines.append(f"  {sub}: " + (", ".join(parts) or "(empty)"))
    return "\n".join(lines)


def trained_model_names(config: ExperimentConfig) -> list[str]:
    """Names of the models a run trains, in order (regression: the naive dense baseline first when asked for)."""
    return [spec.name for spec in task_for(config).specs()]


def predict_file(run: str | Path, data_paths: list[str], name: str | None = None) -> pd.DataFrame:
    """Predictions of a run's model on new data: one row per window (input end, target time, predictions).

    The columns after the times are the task's and shape's: one per forecast step of a
    multi-step run (``target_time`` is then the first step's), the class and its probabilities
    of a classification run.
    """
    config, scaler, _ = load_run(run)
    task = task_for(config)
    if scaler is None:
        return task.predict_table(run, scaler, name or "", nn.Identity(), {}, data_paths)
    name, model, description = load_trained(run, name)
    return task.predict_table(run, scaler, name, model, description, data_paths)


def model_summaries(config: ExperimentConfig, features: int | None = None) -> str:
    """The summary table of every model of a config (for inputs of (sequence_length, features))."""
    return task_for(config).summaries(features)


def describe_windows(config: ExperimentConfig, data_paths: list[str] | None = None) -> str:
    """What the windowing of a config produces, with the rows and times of some windows."""
    return task_for(config).describe_windows(data_paths)
