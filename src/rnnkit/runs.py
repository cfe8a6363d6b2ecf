"""The run folder and the per-model loop that every task shares (a piece of the runner; imports no task).

A task says what differs: how to build a model from its spec, which data it trains on, how
a model is scored and what a trained model's file records. This module does the rest, the
same way for every task::

    out = start_run(output, config, scaler)                    # config.json (+ scaler.json)
    results = baseline_results(baselines, score_baseline)      # kind "baseline", 0 s
    trained = train_models(config, specs, out, build=..., data=..., score=..., metadata=..., summary=...)
    finish_run(out, document(results | trained.results), trained.histories, loss_name)

With ``[output] tensorboard = true``, ``tensorboard/<slug>/`` holds each model's TensorBoard events
(the columns of its ``history.csv`` per epoch, its weights' histograms).

Per model, under ``models/<slug>/``: ``checkpoint/`` (the Trainer's), ``model.safetensors`` +
``model.json``, ``history.csv`` and ``result.json`` (the scores, ``epochs_run`` and the
history, so that ``resume`` reads a finished model back instead of training it again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig
from rnnkit.data import Standardizer
from rnnkit.errors import RnnkitError
from rnnkit.io import load_weights, read_json, save_model, write_json_atomic, write_text_atomic
from rnnkit.results import read_trained, slug
from rnnkit.tasks import TASKS, parse_config, task_class, task_for
from rnnkit import rundir
from rnnkit.training import Trainer
from rnnkit.training.hooks import Hook
from rnnkit.training.trainer import History

Log = Callable[[str], None]
# A model's scores, given its resolved [training] (the regression path scores stateful models on streams).
Score = Callable[[nn.Module, TrainingConfig], dict[str, Any]]


def count_values(model: nn.Module) -> int:
    """Learned or fitted numbers of a model: its parameters and fitted buffers (0 for persistence)."""
    return int(sum(t.numel() for t in model.state_dict().values()))


def start_run(
    output: str | Path,
    config: ExperimentConfig,
    scaler: Any = None,
    data_used: dict[str, Any] | None = None,
    *,
    resume: bool = False,
    overwrite: bool = False,
    log: Log | None = None,
) -> Path:
    """Claim the run folder (:func:`rnnkit.rundir.claim`: identity first, lock), then write the
    resolved ``config.json`` (and ``scaler.json`` when given).

    ``data_used`` (the files read and their resolution) goes into ``config.json`` as its own
    top-level table ``data_used``, which loading the config again leaves out. ``resume`` continues
    only the run the folder holds; ``overwrite`` replaces the run a folder holds.
    """
    out = Path(output)
    resolved = config.to_dict()
    saved = _saved_config(out, resolved) if resume else None
    rundir.claim(out, resolved, resume=resume, overwrite=overwrite, log=log, saved=saved)
    write_json_atomic(out / "config.json", {**config.to_dict(), **({"data_used": data_used} if data_used else {})})
    if scaler is not None:
        write_json_atomic(out / "scaler.json", scaler.to_dict())
    return out


def _saved_config(folder: Path, resolved: dict[str, Any]) -> dict[str, Any] | None:
    """The run's ``config.json`` as saved (without ``data_used``) when it resolves to ``resolved``:
    a run saved before a setting existed lacks that setting's default, and so has another hash
    (:func:`rnnkit.rundir.claim`'s ``saved``). None when there is no such file or it differs."""
    path = folder / "config.json"
    if not path.is_file():
        return None
    try:
        raw = read_json(path, "run config")
        raw.pop("data_used", None)
        same = parse_config(dict(raw), source=str(path)).to_dict() == resolved
    except (RnnkitError, OSError, ValueError, AttributeError):
        return None  # not a config of ours: the identity check refuses the folder as before
    return raw if same else None


def baseline_results(
    baselines: dict[str, nn.Module], score: Callable[[nn.Module], dict[str, Any]]
) -> dict[str, dict[str, Any]]:
    """The result of each fitted baseline: ``{params, **score(model), train_seconds: 0.0, kind: "baseline"}``."""
    return {
        name: {"params": count_values(model), **score(model), "train_seconds": 0.0, "kind": "baseline"}
        for name, model in baselines.items()
    }


@dataclass
class Trained:
    """What :func:`train_models` gives back, per model name in spec order."""

    results: dict[str, dict[str, Any]]  # params, scores, train_seconds, kind "model", epochs_run
    histories: dict[str, History]
    models: dict[str, nn.Module]  # trained or read back, in training mode
    training: dict[str, TrainingConfig]  # the resolved [training] of each


def train_models(
    config: ExperimentConfig,
    specs: Iterable[ModelConfig],
    out: Path,
    *,
    build: Callable[[ModelConfig], nn.Module],
    data: Callable[[TrainingConfig], tuple[Any, Any]],
    score: Score,
    metadata: Callable[[ModelConfig], dict[str, Any]],
    summary: Callable[[dict[str, Any]], str],
    trainer_options: dict[str, Any] | None = None,
    describe_epoch: Callable[[TrainingConfig], Callable[[dict[str, Any]], str] | None] | None = None,
    epochs: int | None = None,
    resume: bool = False,
    progress: bool | None = None,
    log: Log = print,
    write: bool = True,
    model_hooks: Callable[[ModelConfig], list[Hook]] | None = None,
    device: str | None = None,
) -> Trained:
    """Seed, build, train (or read back), score and save every model of ``specs`` under ``out/models/``.

    Args:
        config: the run's config (``training_for(spec)`` gives each model's settings).
        specs: the models to train, in order.
        out: the run folder.
        build: spec -> an untrained model (called right after seeding, so initial weights repeat).
        data: resolved [training] -> ``(train, val)`` for :meth:`Trainer.fit`.
        score: ``(model, training)`` -> the model's scores (merged into its result).
        metadata: spec -> what ``model.json`` records besides the architecture.
        summary: result -> the log line after training, e.g. ``"MAE val 2.370, test 2.657 degC"``.
        trainer_options: default None: more keyword arguments of :class:`Trainer` (``class_weight``).
        describe_epoch: default None: resolved [training] -> the reading added to each epoch's
            progress line (e.g. the validation MAE in data units), or None.
        epochs: default None: the config's; else every model trains this many epochs.
        resume: default False: read back the models with a ``result.json``; continue the one
            with a checkpoint; train the others.
        progress, log: the Trainer's progress output (None: a bar on a terminal, a line per epoch
            elsewhere; False: none) and the line logger.
        write: default True: write the model files (False: a torchrun rank other than 0, which trains
            alike and reads the folder, but leaves the writing to rank 0).
        model_hooks: default None: spec -> more training-loop hooks for that model (a sweep's pruning).
        device: default None: each model's ``[training] device``; else every model trains there
            (``--device``: not a setting of the run, so a run resumes on another device).

    A model trains on its device and comes back to the CPU, where the task scores it and its files
    are written (the tasks' scoring feeds host tensors; the run's files hold CPU tensors anyway).
    """
    trained = Trained({}, {}, {}, {})
    for spec in specs:
        model_dir = out / "models" / slug(spec.name)
        training = config.training_for(spec)
        if spec.members:  # an ensemble of models trained above: nothing to train
            trained.results[spec.name] = ensemble_result(
                spec,
                trained,
                model_dir,
                training,
                score=score,
                metadata=metadata,
                summary=summary,
                log=log,
                write=write,
            )
            trained.training[spec.name] = training
            continue
        settings = training.model_dump()
        if epochs is not None:
            settings["epochs"] = epochs
        if settings["stateful"]:  # row b of batch k+1 continues row b of batch k: the order is the data
            settings["shuffle"] = False
        if device is not None:
            settings["device"] = device
        events = out / "tensorboard" / slug(spec.name)
        hooks: list[Hook] = []
        if (
            config.output.tensorboard and write
        ):  # each epoch's record as it ends (a resumed fit writes the folder again)
            from rnnkit.training.tensorboard import TensorBoardHook

            hooks.append(TensorBoardHook(events))
        if model_hooks is not None:
            hooks += model_hooks(spec)
        trainer = Trainer.from_config(
            TrainingConfig.model_validate(settings),
            **(trainer_options or {}),
            progress=progress,
            describe_epoch=describe_epoch(training) if describe_epoch is not None else None,
            hooks=hooks,
            checkpoint_dir=model_dir / "checkpoint",
        )
        torch.manual_seed(trainer.seed)  # the initial weights repeat too, not only the training
        model = build(spec)
        result_file = model_dir / "result.json"
        if resume and result_file.is_file():
            result = json.loads(result_file.read_text(encoding="utf-8"))
            load_weights(model_dir / "model.safetensors", model)
            trained.histories[spec.name] = History(result.pop("history"))
            if config.output.tensorboard and write:  # finished earlier: its events from its history
                from rnnkit.training.tensorboard import write_history

                write_history(trained.histories[spec.name], events, model)
            log(f"{spec.name}: finished in the earlier run, read back")
        else:
            where = "" if trainer.device.type == "cpu" else f", on {trainer.device}"
            where += "" if trainer.precision == "fp32" else f", {trainer.precision}"
            log(f"training {spec.name} ({count_values(model):,} parameters, {trainer.epochs} epochs{where})")
            train, val = data(training)
            checkpoint = model_dir / "checkpoint"
            resume_this = resume and checkpoint.is_dir() and any(checkpoint.iterdir())
            started = time.perf_counter()
            history = trainer.fit(model, train=train, val=val, resume=resume_this)
            seconds = time.perf_counter() - started
            model.to("cpu")  # scored and written on the host (a no-op after CPU training)
            result = {
                "params": count_values(model),
                **score(model, training),
                "train_seconds": seconds,
                "kind": "model",
                "epochs_run": len(history),
            }
            if write:
                save_model(model, model_dir / "model", metadata=metadata(spec))
                write_text_atomic(model_dir / "history.csv", history.to_csv())
                write_json_atomic(result_file, {**result, "history": history.epochs})
            trained.histories[spec.name] = history
            log(f"  {spec.name}: {summary(result)} ({seconds:.1f} s)")
        trained.results[spec.name] = result
        trained.models[spec.name] = model
        trained.training[spec.name] = training
    return trained


def ensemble_result(
    spec: ModelConfig,
    trained: Trained,
    model_dir: Path,
    training: TrainingConfig,
    *,
    score: Score,
    metadata: Callable[[ModelConfig], dict[str, Any]],
    summary: Callable[[dict[str, Any]], str],
    log: Log,
    write: bool,
) -> dict[str, Any]:
    """Build the ensemble ``spec`` from its trained members (``trained.models``), score and save it like a model.

    Its ``train_seconds`` is the sum of its members'; ``members`` lists them; it has no history.
    """
    from rnnkit.models.ensemble import Ensemble

    model = Ensemble([trained.models[m] for m in spec.members], names=spec.members)
    seconds = sum(trained.results[m]["train_seconds"] for m in spec.members)
    result = {
        "params": count_values(model),
        **score(model, training),
        "train_seconds": seconds,
        "kind": "model",
        "epochs_run": 0,
        "members": list(spec.members),
    }
    if write:
        model_dir.mkdir(parents=True, exist_ok=True)
        save_model(model, model_dir / "model", metadata={**metadata(spec), "members": list(spec.members)})
        write_json_atomic(model_dir / "result.json", {**result, "history": []})
    log(f"ensemble {spec.name} (the mean of {', '.join(spec.members)}): {summary(result)}")
    trained.models[spec.name] = model
    return result


def saved_model_results(
    config: ExperimentConfig,
    specs: Iterable[ModelConfig],
    stored: dict[str, Any],
    score: Score,
    load: Callable[[str], nn.Module],
) -> dict[str, dict[str, Any]]:
    """Score the saved models of a run again (``load(name)`` reads one back); ``train_seconds`` from ``stored``."""
    results: dict[str, dict[str, Any]] = {}
    for spec in specs:
        model = load(spec.name)
        seconds = stored.get("models", {}).get(spec.name, {}).get("train_seconds", float("nan"))
        results[spec.name] = {
            "params": count_values(model),
            **score(model, config.training_for(spec)),
            "train_seconds": seconds,
            "kind": "model",
        }
    return results


def histories_csv(histories: dict[str, History]) -> str:
    """One table of the loss per epoch of every model: a ``model`` column, then the history's columns."""
    frames = [h.to_frame().assign(model=name) for name, h in histories.items() if len(h)]
    if not frames:
        return "model,epoch\n"
    table = pd.concat(frames, ignore_index=True)
    return table[["model", *[c for c in table.columns if c != "model"]]].to_csv(index=False)


def finish_run(out: Path, metrics: dict[str, Any], histories: dict[str, History], loss_name: str) -> None:
    """Write ``metrics.json``, ``history.csv`` and (when a model trained) ``learning_curves.png``."""
    write_json_atomic(out / "metrics.json", metrics)
    write_text_atomic(out / "history.csv", histories_csv(histories))
    if histories:
        from rnnkit import plots

        plots.plot_history(histories, out / "learning_curves.png", loss_name=loss_name)


# --- reading a run folder back --------------------------------------------------------------------


def load_run(run: str | Path) -> tuple[ExperimentConfig, Standardizer | None, dict[str, Any]]:
    """The config, scaler and metrics of a run folder (no scaler for a task that scales nothing, e.g. tagging)."""
    folder = Path(run)
    if not folder.is_dir():
        raise RnnkitError(f"run folder not found: {folder}")
    try:
        raw = read_json(folder / "config.json", "run config")
        raw.pop("data_used", None)  # what the run read: a record, not a setting
        scaler_file = folder / "scaler.json"
        name = raw.get("task", "regression")
        scaled = name not in TASKS or task_class(name).scaled  # an unknown task is refused by parse_config below
        scaler = Standardizer.from_dict(read_json(scaler_file, "scaler")) if scaled else None
    except FileNotFoundError as e:
        raise RnnkitError(f"{folder} is not an rnnkit run folder: {Path(e.filename).name} is missing") from None
    except RnnkitError as e:
        if str(e).startswith("a scaler"):
            raise RnnkitError(f"{scaler_file}: {e}") from None
        raise
    config = parse_config(raw, source=str(folder / "config.json"))
    metrics_file = folder / "metrics.json"
    metrics = read_json(metrics_file, "run metrics") if metrics_file.is_file() else {}
    return config, scaler, metrics


def load_trained(run: str | Path, name: str | None = None) -> tuple[str, nn.Module, dict[str, Any]]:
    """A trained model of a run (the best on validation when ``name`` is None), rebuilt by the run's task."""
    config, _, _ = load_run(run)
    return read_trained(run, task_for(config), name)
