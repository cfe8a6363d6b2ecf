"""The protocol every task kind follows, and the defaults most of them share.

The runner (:mod:`rnnkit.experiment`) drives every kind the same way::

    task = task_for(config)                # the registry: config.task -> the Task subclass
    task.prepare(data_paths)               # read and prepare the data; task.scaler (or None)
    out = start_run(output, task.config, task.scaler, task.data_used())
    log(task.describe())
    baselines = task.baselines()           # fitted baselines, scored like the models
    results = baseline_results(baselines, task.score)
    trained = train_models(task.config, task.specs(), out, build=task.build, data=task.train_data,
                           score=task.score, metadata=task.metadata, summary=task.summary, ...)
    metrics = task.document(results | trained.results)
    finish_run(out, metrics, trained.histories, task.loss_name)
    task.finish(out, baselines, trained, metrics)   # extra files (e.g. the predictions plot)

and reads a run folder back with :meth:`Task.rebuild`, :meth:`Task.predict_table`,
:meth:`Task.table` and :meth:`Task.report`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
from torch import nn

from rnnkit.config import ExperimentConfig, ModelConfig, TrainingConfig
from rnnkit.errors import RnnkitError
from rnnkit.layers.recurrent import RECURRENT_LAYERS
from rnnkit.models import Sequential
from rnnkit.results import best_lines


def losses_of(config: ExperimentConfig) -> list[tuple[str, str]]:
    """``(key, loss)`` of [training] and of every model that sets its own loss."""
    return [("training.loss", config.training.loss)] + [
        (f"models[{i}].training.loss", m.training.loss)
        for i, m in enumerate(config.models)
        if m.training.loss is not None
    ]


def check_one_recurrent_layer(config: ExperimentConfig, builds: str, example_units: int) -> None:
    """Each model of ``config`` is one recurrent layer with its units only, e.g. ``[{type = "GRU", units = 32}]``:
    the task builds the rest around it (``builds`` says what, for the message)."""
    for i, model in enumerate(config.models):
        layers = model.layers
        layer = layers[0] if len(layers) == 1 else {}
        units = layer.get("units")
        if (
            layer.get("type") not in RECURRENT_LAYERS
            or set(layer) != {"type", "units"}
            or isinstance(units, bool)
            or not isinstance(units, int)
            or units < 1
        ):
            raise ValueError(
                f"models[{i}].layers: {builds} around one recurrent layer, given as "
                f'[{{type = "GRU", units = {example_units}}}] (type {", ".join(RECURRENT_LAYERS)}; units only), '
                f"got {layers}"
            )


def stateful_anywhere(config: ExperimentConfig) -> bool:
    return config.training.stateful or any(m.training.stateful for m in config.models)


def default_loss_and_baselines(config: ExperimentConfig, loss: str, baselines: tuple[str, ...]) -> None:
    """Fill in a task's own loss and baselines where the config leaves them out."""
    if "loss" not in config.training.model_fields_set:
        config.training = config.training.model_copy(update={"loss": loss})
    if "baselines" not in config.model_fields_set:
        config.baselines = list(baselines)


def require_loss(config: ExperimentConfig, loss: str) -> None:
    for key, chosen in losses_of(config):
        if chosen != loss:
            raise ValueError(f"{key} must be {loss!r} when task = {config.task!r}, got {chosen!r}")


def check_baselines(config: ExperimentConfig, allowed: tuple[str, ...]) -> None:
    wrong = [b for b in config.baselines if b not in allowed]
    if wrong:
        raise ValueError(f"baselines for task = {config.task!r} must be among {list(allowed)}, got {wrong}")


def refuse_residual_and_stateful(config: ExperimentConfig) -> None:
    """Tasks with no residual target (a change from the last input) and no stateful path."""
    residual = (config.windows is not None and config.windows.residual) or any(m.residual for m in config.models)
    if residual:
        raise ValueError(
            f"residual: a residual target (change from the last input) needs task = 'regression', "
            f"got residual = true with task = {config.task!r}"
        )
    if stateful_anywhere(config):
        raise ValueError(f"training.stateful: stateful training has no {config.task} path yet, got true")


class Task:
    """One task kind: its data, models, baselines, scores, tables and predictions.

    Class attributes:
        name: the registry name (``config.task``).
        scaled: whether a run stores ``scaler.json`` (a series scaled on its training part).
        best_key, lowest: the validation score that picks the best model, and whether lower is better.
        settings_key: the config's table of this task's own settings (``[classification]``...), if any.
        baseline_names: the names ``baselines = [...]`` may hold for this task (the config accepts
            the names of every registered task; :meth:`check_config` keeps its own).
        fills_placeholders: whether its layer specs may say ``input_dim = "vocabulary"`` and
            ``units = "tags"`` (filled in from its corpus before a model is built).
        own_table: whether the report shows the task's own score table (:meth:`table`) rather than
            the series one (MAE / RMSE / skill of every model beside the published numbers).
        draws_forecasts: whether the report draws the best model's point forecasts on test weeks.
        reads_known_future: whether its models take ``windows.known_future`` columns (the registry
            refuses the key for the other tasks).
        point_forecasts: whether its models forecast a series in data units, so that ``[intervals]`` (conformal
            intervals) and ensembles (``members = [...]``: the mean of models) apply (the registry refuses both elsewhere).
    """

    name: ClassVar[str] = ""
    scaled: ClassVar[bool] = True
    best_key: ClassVar[str] = ""
    lowest: ClassVar[bool] = False
    settings_key: ClassVar[str | None] = None
    baseline_names: ClassVar[tuple[str, ...]] = ()
    fills_placeholders: ClassVar[bool] = False
    own_table: ClassVar[bool] = False
    draws_forecasts: ClassVar[bool] = False
    reads_known_future: ClassVar[bool] = False
    point_forecasts: ClassVar[bool] = False  # [intervals] and ensembles (models with members) apply

    # --- the config (called by ExperimentConfig's validator through the registry) -------------------
    @classmethod
    def check_config(cls, config: ExperimentConfig) -> None:
        """Check (and fill in) this task's part of a config whose ``task`` names it; raise ValueError.

        The message names the dotted key first (``windows.target_length: ...``), or says ``missing
        key '...'``; the config turns it into one line. By default there is nothing to check.
        """

    @classmethod
    def check_absent(cls, config: ExperimentConfig) -> None:
        """Refuse this task's own settings in a config of another task (called for every other registered task)."""
        if cls.settings_key and getattr(config, cls.settings_key, None) is not None:
            raise ValueError(f"{cls.settings_key}: settings need task = {cls.name!r}, got task = {config.task!r}")

    def __init__(self, config: ExperimentConfig) -> None:
        self.config = config
        self.scaler: Any = None

    # --- the data ---------------------------------------------------------------------------------
    def prepare(self, data_paths: list[str] | None = None) -> None:
        """Read and prepare the data of ``self.config`` (``data_paths`` instead of the config's files)."""
        raise NotImplementedError

    def data_used(self) -> dict[str, Any] | None:
        """The files read and their resolution, recorded in config.json and metrics.json (None: nothing read)."""
        return None

    def describe(self) -> str:
        """Lines logged before training: what the data hold and how they were cut."""
        raise NotImplementedError

    def check_same_data(self, scaler: Any, run: str | Path) -> None:
        """Refuse data that differ from a run's (``evaluate``): by default nothing to compare."""

    # --- the models ---------------------------------------------------------------------------------
    def specs(self) -> list[ModelConfig]:
        """The models a run trains, in order."""
        return list(self.config.models)

    def baselines(self) -> dict[str, nn.Module]:
        """The fitted baselines, scored by :meth:`score` like the models."""
        raise NotImplementedError

    def build(self, spec: ModelConfig) -> nn.Module:
        """An untrained model of ``spec`` for these data (its output shape checked)."""
        raise NotImplementedError

    def rebuild(self, description: dict[str, Any]) -> nn.Module:
        """A model from the ``model.json`` a run saved (architecture only; weights are loaded after)."""
        config = description.get("config")
        cls = str(description.get("class", ""))
        if isinstance(config, dict) and cls == "rnnkit.models.ensemble.Ensemble":  # each member by this task
            from rnnkit.models.ensemble import Ensemble

            return Ensemble.from_config(config, self.rebuild)
        if not isinstance(config, dict) or not cls.endswith(".Sequential"):
            raise RnnkitError(f"cannot rebuild a model of class {cls} for task = {self.name!r}")
        return Sequential.from_config(config)

    def train_data(self, training: TrainingConfig) -> tuple[Any, Any]:
        """``(train, val)`` for :meth:`rnnkit.training.Trainer.fit` under a model's resolved [training]."""
        raise NotImplementedError

    def trainer_options(self) -> dict[str, Any]:
        """More keyword arguments of the Trainer (e.g. ``class_weight``)."""
        return {}

    def describe_epoch(self, training: TrainingConfig) -> Any:
        """``record -> str``: the task's reading of a training epoch for the progress line (None: none)."""
        return None

    def scored(self, model: nn.Module, target_index: int) -> nn.Module:
        """A trained model as its scores and plots read it (the target's forecast; input column
        ``target_index``). By default the model itself; a model that forecasts more columns than the
        target (the autoregressive forecaster) gives a view of the target's."""
        return model

    def metadata(self, spec: ModelConfig) -> dict[str, Any]:
        """What a trained model's ``model.json`` records besides its architecture."""
        return {"name": spec.name, "task": self.name}

    # --- scores and documents ------------------------------------------------------------------------
    def score(self, model: nn.Module, training: TrainingConfig | None = None) -> dict[str, Any]:
        """The scores of a model or baseline on the validation and test parts."""
        raise NotImplementedError

    def summary(self, result: dict[str, Any]) -> str:
        """The log line after a model trained, from its result."""
        raise NotImplementedError

    @property
    def loss_name(self) -> str:
        """The loss as the learning-curves plot names it."""
        return self.config.training.loss

    def document(self, results: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The content of ``metrics.json`` from every model's and baseline's result."""
        raise NotImplementedError

    def finish(self, out: Path, baselines: dict[str, nn.Module], trained: Any, metrics: dict[str, Any]) -> None:
        """Write the task's extra files once the run is scored (by default none)."""

    # --- reading runs back ---------------------------------------------------------------------------
    @classmethod
    def table(cls, metrics: dict[str, Any]) -> str:
        """The comparison table of a metrics document."""
        raise NotImplementedError

    @classmethod
    def report(cls, metrics: dict[str, Any]) -> list[str]:
        """Lines printed after the table: the model chosen on validation and its test scores."""
        best = metrics["models"].get(metrics.get("best")) if metrics.get("best") else None
        lines = [cls.best_line(metrics["best"], best)] if best else []
        return lines + best_lines(metrics, cls.best_key, lowest=cls.lowest) if cls.best_key else lines

    @classmethod
    def best_line(cls, name: str, scores: dict[str, Any]) -> str:
        """The report's line on the model chosen on validation (``scores``: its metrics)."""
        return f"\nbest by validation: {name}"

    def predict_table(
        self,
        run: str | Path,
        scaler: Any,
        name: str,
        model: nn.Module,
        description: dict[str, Any],
        data_paths: list[str],
    ) -> pd.DataFrame:
        """A trained model's predictions on new data files, one row per window."""
        raise RnnkitError(f"{run} is a {self.name} run: it has no predictions on a data file")

    def forecasts(self, models: dict[str, nn.Module], part: str = "test") -> pd.DataFrame:
        """Trained models' point forecasts on ``part`` of the prepared data, beside the truth and persistence."""
        raise RnnkitError(f"task = {self.name!r} has no point forecasts to set beside the truth")

    def summaries(self, features: int | None = None) -> str:
        """The summary table of every model of the config."""
        raise NotImplementedError

    def describe_windows(self, data_paths: list[str] | None = None) -> str:
        """What the windowing of the config produces."""
        raise RnnkitError(f"task = {self.name!r} has no windows")
