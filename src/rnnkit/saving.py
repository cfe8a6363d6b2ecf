"""Saved models and runs read back: ``rk.load_model(path)`` and ``rk.load_run(RUN)``.

A model file is the pair ``<stem>.safetensors`` + ``<stem>.json`` that ``model.save(stem)`` and a
run's ``models/<name>/model`` both write (:func:`rnnkit.io.save_model`). The JSON names the
model's class; only the classes below are rebuilt from it (an allow-list: reading a file imports
nothing it names and runs no code of its own).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from torch import nn

if TYPE_CHECKING:
    import pandas as pd

from rnnkit import baselines as bl
from rnnkit.errors import RnnkitError
from rnnkit.io import load_weights, read_model_json
from rnnkit.models.ensemble import Ensemble
from rnnkit.models.forecasters import AutoregressiveForecaster, Seq2SeqForecaster
from rnnkit.models.generators import CharRNN
from rnnkit.models.sequential import Sequential
from rnnkit.models.series_embedding import SeriesEmbedding


def _inner(config: dict[str, Any]) -> nn.Module:
    inner = config.get("model")
    if not isinstance(inner, dict):
        raise ValueError("the wrapped model has no saved architecture")
    return Sequential.from_config(inner)


# class name in model.json -> config -> model with fresh weights
BUILDERS: dict[str, Callable[[dict[str, Any]], nn.Module]] = {
    "rnnkit.models.sequential.Sequential": Sequential.from_config,
    "rnnkit.models.forecasters.AutoregressiveForecaster": AutoregressiveForecaster.from_config,
    "rnnkit.models.forecasters.Seq2SeqForecaster": Seq2SeqForecaster.from_config,
    "rnnkit.models.generators.CharRNN": CharRNN.from_config,
    "rnnkit.baselines.ResidualTarget": lambda c: bl.ResidualTarget(_inner(c), c["target_index"]),
    "rnnkit.baselines.StepResidualTarget": lambda c: bl.StepResidualTarget(_inner(c), c["target_index"]),
    "rnnkit.baselines.MultiStepResidualTarget": lambda c: bl.MultiStepResidualTarget(
        _inner(c), c["target_index"], c["output_shape"]
    ),
    "rnnkit.models.series_embedding.SeriesEmbedding": lambda c: SeriesEmbedding(_inner(c), c["series"], c["dim"]),
    "rnnkit.models.ensemble.Ensemble": lambda c: Ensemble.from_config(c, _member),
}


def _member(description: dict[str, Any]) -> nn.Module:
    """An ensemble's member from its ``{"class", "config"}``, by the same allow-list."""
    cls = str(description.get("class", ""))
    if cls not in BUILDERS or not isinstance(description.get("config"), dict):
        raise ValueError(f"an ensemble member of class {cls!r} cannot be rebuilt")
    return BUILDERS[cls](description["config"])


def load_model(filepath: str | Path) -> nn.Module:
    """A model saved by ``model.save(filepath)`` (or a run's ``models/<name>/model``), with its weights,
    compiled again with the settings it was saved with, in inference mode (Keras's ``load_model``).

    Args:
        filepath: the stem (``"gru"`` for ``gru.safetensors`` + ``gru.json``), or either file's path.

    Example::

        model.save("gru")
        again = rk.load_model("gru")
        assert (again.predict(x) == model.predict(x)).all()
    """
    description = read_model_json(filepath)
    cls = str(description.get("class", ""))
    config = description.get("config")
    if cls not in BUILDERS:
        raise RnnkitError(
            f"load_model cannot rebuild a model of class {cls!r} (it rebuilds "
            f"{', '.join(sorted(c.rsplit('.', 1)[1] for c in BUILDERS))}); "
            "a run's models read back with rk.load_run(RUN)"
        )
    if not isinstance(config, dict):
        raise RnnkitError(f"{filepath}: the model description holds no architecture (config)")
    try:
        model = BUILDERS[cls](config)
    except (TypeError, ValueError, KeyError) as e:
        raise RnnkitError(f"{filepath}: the model description of class {cls} does not build: {e}") from None
    stem = Path(filepath)
    stem = stem.with_suffix("") if stem.suffix in (".safetensors", ".json") else stem
    load_weights(stem.with_suffix(".safetensors"), model)
    compiled = (description.get("metadata") or {}).get("compile")
    if isinstance(compiled, dict) and callable(getattr(model, "compile", None)):
        model.compile(
            **compiled["training"], metrics=compiled.get("metrics") or None, quantiles=compiled.get("quantiles")
        )
    model.eval()
    return model


@dataclass
class Run:
    """A trained run read back (:func:`load_run`)."""

    models: dict[str, nn.Module]  # every trained model by name, compiled with its [training], in inference mode
    best: str | None  # the run's best model on validation (metrics.json), None before the run finished
    scaler: Any  # the Standardizer fit on the training split (None for a task that scales nothing)
    windows: Any  # the run's [windows] settings (sequence_length, shift, horizon, ...)
    config: Any  # the whole resolved ExperimentConfig
    metrics: dict[str, Any]  # metrics.json ({} before the run finished)
    folder: Path | None = None  # the run folder it was read from

    def forecasts(self, part: str = "test", names: list[str] | None = None) -> pd.DataFrame:
        """The run's forecasts on ``part`` (``"train"``, ``"val"`` or ``"test"``) of its own data, read
        again as the run read them, beside the truth and persistence, in data units: ``target_time``,
        ``true TARGET``, ``persistence TARGET`` and a column per model (a task's ``forecasts``).

        Args:
            part: default ``"test"``.
            names: default None: every model of the run that forecasts window by window (a stateful
                one reads contiguous streams, and is left out unless named, which is refused).

        Example::

            run = rk.load_run("runs/course_05a")
            table = run.forecasts("test")
            table.plot(x="target_time", y=["true T (degC)", "persistence T (degC)", run.best])
        """
        from rnnkit.tasks import task_for

        task = task_for(self.config)
        if not task.draws_forecasts:
            raise RnnkitError(f"{self.folder}: task = {task.name!r} has no point forecasts to set beside the truth")
        stateless = [
            n for n, m in self.models.items() if not any(getattr(x, "stateful", False) is True for x in m.modules())
        ]
        chosen = stateless if names is None else list(names)
        unknown = [n for n in chosen if n not in self.models]
        if unknown:
            raise RnnkitError(f"{self.folder}: no model {unknown[0]!r} in the run (it has {', '.join(self.models)})")
        task.prepare()
        if self.scaler is not None:
            task.check_same_data(self.scaler, self.folder)
        return task.forecasts({n: self.models[n] for n in chosen}, part)


def load_run(run: str | Path) -> Run:
    """The models, scaler and windows settings of a run folder (``rnnkit train``'s output).

    Example::

        run = rk.load_run("runs/course_05a")
        model = run.models[run.best]
        x = run.scaler.transform(frame)      # scale new rows as the run did, then make_windows(x, **...)
        run.windows.sequence_length, model.predict(windows)
        run.forecasts("test")                # target_time, truth, persistence, each model, in degC
    """
    from rnnkit.runs import load_run as read_run
    from rnnkit.runs import load_trained
    from rnnkit.tasks import task_for

    config, scaler, metrics = read_run(run)
    task = task_for(config)
    models: dict[str, nn.Module] = {}
    for spec in task.specs():
        name, model, _ = load_trained(run, spec.name)
        training = config.training_for(spec)
        if callable(getattr(model, "compile", None)):
            # the pinball loss needs the run's levels (from its config); class weights need the data, left out
            quantiles = task.trainer_options().get("quantiles") if training.loss == "pinball" else None
            model.compile(**training.model_dump(), quantiles=quantiles)
        models[name] = model
    return Run(
        models=models,
        best=metrics.get("best"),
        scaler=scaler,
        windows=config.windows,
        config=config,
        metrics=metrics,
        folder=Path(run),
    )
