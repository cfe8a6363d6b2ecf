"""Typed experiment configs: one pydantic model per component, composed for a run.

A config is a TOML file::

    name = "demo"

    [data]
    target = "T (degC)"
    step = 6                    # keep every 6th 10-minute row: hourly
    split = [0.6, 0.2, 0.2]     # train / validation / test, in time order

    [windows]
    sequence_length = 120
    horizon = 24
    residual = true             # learn the change from the last input

    [training]
    epochs = 20

    [[models]]
    name = "GRU"
    layers = [{type = "GRU", units = 32}, {type = "Dense", units = 1}]

``[windows] return_sequences = true`` trains a target for every input step (many-to-many;
rnnkit.tasks.regression). ``[windows] target_length = K`` forecasts the next K rows from one window
(multi-step; models end with ``Dense(K)``; rnnkit.tasks.regression). ``task = "tagging"`` with ``[data] dataset = "teddy"`` and a ``[tagging]``
table tags every token of whole sentences (no ``[windows]``); its layer specs may say
``input_dim = "vocabulary"`` (Embedding) and ``units = "tags"`` (Dense), filled in from the corpus.

Unknown keys are rejected with the closest valid key; wrong types name the key and the
expected type. The resolved config (every default filled in) is saved with the run.
"""

from __future__ import annotations

import difflib
from datetime import datetime
import inspect
import json
import sys
import types
import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model, field_validator,
                      model_validator)
from pydantic_core import PydanticCustomError

from rnnkit.errors import RnnkitError
from rnnkit.training.settings import TrainingConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


__all__ = ["ClassificationConfig", "DataConfig", "ExperimentConfig", "ModelConfig", "QuantileConfig", "TaggingConfig",
           "TrainingConfig", "WindowConfig", "load_config", "parse_config"]

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DataConfig(_Strict):
    """Which series, which columns, how it is resampled and split."""

    # teddy: the tagged "Teddy Roosevelt" / "Teddy bears" sentences (rnnkit.corpora.teddy), task = "tagging" only
    # parquet: many series from a Parquet file or folder (a long table), task = "many_series" only
    dataset: Literal["jena", "sunspots", "teddy", "parquet"] = "jena"
    paths: list[str] = Field(default_factory=list)  # explicit files; empty: RNNKIT_DATA_DIR, cache, embedded record
    # Jena with no paths: "auto" reads any Jena file found (10-minute benchmark, else the station exports);
    # "record" only the 2009-2016 record: the 10-minute file where present, else the one embedded (hourly).
    source: Literal["auto", "record"] = "auto"
    # Columns read from a Jena file: the 14 benchmark ones, every one (rain (mm), raining (s), SWDR, ...), or a list.
    columns: str | list[str] = "benchmark"
    target: str = "T (degC)"
    features: list[str] | None = None  # None: every column of the file
    derived: bool | list[Literal["wind", "time"]] = False  # wind vector; sin/cos of the day and the year
    step: int = Field(1, ge=1)  # keep one row in `step` (or their mean): 6 makes 10-minute rows hourly
    how: Literal["every", "mean"] = "every"  # every step-th row (the course, Chollet) or the block's mean
    # "respect": a gap or jitter in the timestamps starts a new segment (no window spans it; "every" restarts
    # there). "ignore": rows by position, as the course's helper and Chollet's generator take them (every
    # step-th row of the whole file; windows may span the record's few gaps).
    gaps: Literal["respect", "ignore"] = "respect"
    split: list[float] = Field(default_factory=lambda: [0.7, 0.15, 0.15])
    split_per_segment: bool = True  # split each contiguous segment in time, so every part sees every season
    # "rows": split the rows, then cut windows within each part (no window crosses a boundary). "windows":
    # the course's split: windows cut from the whole series are split in order (a part's windows may reach
    # back into the part before for their inputs, never for their targets).
    split_by: Literal["rows", "windows"] = "rows"
    # dataset = "parquet" only: the series-id and time columns (default "id", "time"), and whether each series is
    # scaled with its own training statistics ("series") or all with the pooled ones ("global", the default)
    id_column: str | None = None
    time_column: str | None = None
    scaling: Literal["global", "series"] | None = None

    @field_validator("columns", mode="before")
    @classmethod
    def _columns(cls, v: Any) -> Any:
        if v in ("benchmark", "all") or (isinstance(v, list) and v and all(isinstance(c, str) for c in v)):
            return v
        raise ValueError(f"must be 'benchmark', 'all' or a non-empty list of column names, got {v!r}")

    @field_validator("split")
    @classmethod
    def _fractions(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or any(f < 0 for f in v) or v[0] <= 0 or abs(sum(v) - 1.0) > 1e-6:
            raise ValueError(f"must be three fractions (train, validation, test) >= 0 that sum to 1, got {v}")
        return v


class WindowConfig(_Strict):
    """How the series is cut into (examples, sequence_length, features): see rk.data.make_windows."""

    sequence_length: int = Field(ge=1)
    shift: int = Field(1, ge=1)
    sampling_rate: int = Field(1, ge=1)
    horizon: int = Field(1, ge=0)
    residual: bool = False  # predict the change from the last input: prediction = last value + output
    # Many-to-many: a target for every input step t (row t + horizon); the model keeps the time axis
    # (last recurrent layer return_sequences = true, then Dense(1) per step). Residual: change from x_t.
    return_sequences: bool = False
    # Multi-step: the next target_length rows (horizon, horizon + sampling_rate, ...) from one window;
    # y (examples, K, 1), models end with Dense(K) (the direct forecaster). rnnkit.tasks.regression.
    target_length: int = Field(1, ge=1)


TrainingOverrides = create_model(
    "TrainingOverrides",
    __base__=_Strict,
    **{name: (field.annotation | None, None) for name, field in TrainingConfig.model_fields.items()},
)
TrainingOverrides.__doc__ = "Any [training] key, set for one model only."


class ModelConfig(_Strict):
    """One model: a name and its layers, each ``{type = "GRU", units = 32, ...}`` with Keras argument names."""

    name: str = Field(min_length=1)
    layers: list[dict[str, Any]] = Field(min_length=1)
    residual: bool | None = None  # None: the [windows] setting
    training: TrainingOverrides = Field(default_factory=lambda: TrainingOverrides())  # this model's own settings


class ClassificationConfig(_Strict):
    """How the target column becomes class labels (``task = "classification"``).

    With a ``threshold`` the label is 1 where the target, in data units, is > threshold, else 0
    (``threshold = 0.0`` on ``raining (s)``: "it rains"). With no threshold the target column
    already holds the labels 0 … classes − 1.
    """

    threshold: float | None = None
    classes: int | None = Field(None, ge=2)  # None: 2 with a threshold, else the largest training label + 1
    class_weight: Literal["balanced", "none"] = "balanced"  # balanced: n / (classes · n_c), in the training loss

    @model_validator(mode="after")
    def _two_classes_with_threshold(self) -> ClassificationConfig:
        if self.threshold is not None and self.classes not in (None, 2):
            raise ValueError(f"classes must be 2 (or left out) when a threshold makes the labels, got {self.classes}")
        return self


class TaggingConfig(_Strict):
    """The tagged corpus of ``task = "tagging"`` (``data.dataset = "teddy"``): one tag per token, horizon 0.

    ``sentences`` are drawn with ``seed`` (rnnkit.corpora.teddy.sentences) and split in order by
    ``data.split`` into training, validation and test sentences; the vocabulary is that of the
    training sentences (other words become ``<unk>``).
    """

    sentences: int = Field(400, ge=3)
    seed: int = 0


class PublishedRow(_Strict):
    """One published result: the model as the source names it, its MAE (a number or [low, high]),
    and ``run_as``, the row of this config's table it is compared with (a model or baseline name)."""

    model: str = Field(min_length=1)
    run_as: str | None = None
    mae_val: float | list[float] | None = None
    mae_test: float | list[float] | None = None
    note: str = ""

    @field_validator("mae_val", "mae_test", mode="before")
    @classmethod
    def _mae(cls, v: Any) -> Any:
        from rnnkit.published import check_range

        return check_range(v)


class PublishedConfig(_Strict):
    """Published numbers that the config reproduces: printed beside rnnkit's in the run's table."""

    source: str = Field(min_length=1)
    units: str = "degC"
    rows: list[PublishedRow] = Field(min_length=1)


class OutputConfig(_Strict):
    """What a run writes besides its models and scores: ``[output]``."""

    tensorboard: bool = False  # TensorBoard event files under RUN/tensorboard/<model>/ (rnnkit[tensorboard])
    report: bool = True  # RUN/report.html: the whole run on one self-contained page (rnnkit.report)
    report_weeks: list[str] = Field(default_factory=list)  # start dates of the weeks the report draws; default:
    # the test part's first and middle week

    @field_validator("report_weeks")
    @classmethod
    def _dates(cls, weeks: list[str]) -> list[str]:
        for week in weeks:
            try:
                datetime.fromisoformat(week)
            except ValueError:
                raise ValueError(f"must be dates such as '2016-06-01', got {week!r}") from None
        return weeks


def _registered(names: typing.Iterable[str], value: Any) -> Any:
    names = list(dict.fromkeys(names))
    if not isinstance(value, str) or value not in names:
        raise PydanticCustomError("unknown_name", "must be one of {names}, got {value}",
                                  {"names": ", ".join(repr(n) for n in names), "value": repr(value)})
    return value


def _task_name(value: Any) -> Any:
    """A task the registry knows (rnnkit.tasks.TASKS): adding a task adds no name here."""
    from rnnkit.tasks import TASKS

    return _registered(TASKS, value)


def _baseline_name(value: Any) -> Any:
    """A baseline some registered task offers (its ``baseline_names``); the task checks it is one of its own."""
    from rnnkit.tasks import TASKS, task_class

    return _registered((n for name in TASKS for n in task_class(name).baseline_names), value)


# Placeholders in layer specs, filled in once the corpus is loaded (task = "tagging").
PLACEHOLDERS = {("Embedding", "input_dim"): "vocabulary", ("Dense", "units"): "tags"}


class QuantileConfig(_Strict):
    """The levels of ``task = "quantile"``: the models forecast these quantiles of the target (pinball loss).

    The median (0.5, which must be among them) is scored like any forecast (MAE, skill); the outer
    pair bounds the interval whose coverage and width are reported (0.1 and 0.9: an 80% interval).
    """

    levels: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if len(v) < 3 or 0.5 not in v or any(not 0 < q < 1 for q in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"must be at least 3 increasing levels in (0, 1) with 0.5 among them, got {v}")
        return v


class ExperimentConfig(_Strict):
    """A whole run: data, windows, training, baselines and the models to compare."""

    name: str = "experiment"
    description: str = ""
    task: Annotated[str, BeforeValidator(_task_name)] = "regression"  # a name in rnnkit.tasks.TASKS
    data: DataConfig = Field(default_factory=DataConfig)
    windows: WindowConfig | None = None  # needed by every task but "tagging" (whole sentences)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    # the task's own baselines when left out (regression's default here)
    baselines: list[Annotated[str, BeforeValidator(_baseline_name)]] = Field(
        default_factory=lambda: ["persistence", "seasonal_persistence", "mean"]
    )
    classification: ClassificationConfig | None = None  # task = "classification": its defaults when left out
    tagging: TaggingConfig | None = None  # task = "tagging": its defaults when left out
    quantile: QuantileConfig | None = None  # task = "quantile": its defaults when left out
    models: list[ModelConfig] = Field(default_factory=list)
    published: PublishedConfig | None = None  # reference numbers (the course's, Chollet's) shown beside the run's
    output: OutputConfig = Field(default_factory=OutputConfig)

    @model_validator(mode="after")
    def _published_rows_name_rows_of_the_run(self) -> ExperimentConfig:
        if self.published is not None:
            names = [*self.baselines, *(["naive_dense"] if "naive_dense" in self.baselines else []),
                     *(m.name for m in self.models)]
            for i, row in enumerate(self.published.rows):
                if row.run_as is not None and row.run_as not in names:
                    raise ValueError(f"published.rows[{i}].run_as must name a model or baseline of this config "
                                     f"({names}), got {row.run_as!r}")
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        names = [m.name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique, got {dup} more than once")
        return self

    @model_validator(mode="after")
    def _task_part(self) -> ExperimentConfig:
        # Each task checks (and fills in) its own part of the config (rnnkit.tasks.base.Task.check_config),
        # after every other registered task refuses its own settings here (Task.check_absent). Every
        # error names the key (dotted) first: parse_config turns it into "'key': message".
        from rnnkit.tasks import TASKS, task_class

        for name in TASKS:
            if name != self.task:
                task_class(name).check_absent(self)
        task_class(self.task).check_config(self)
        return self

    @model_validator(mode="after")
    def _no_leak(self) -> ExperimentConfig:
        # horizon 0 puts the target at the last input row: when the model reads the target column,
        # it is handed the answer (persistence scores 0). (Tagging's horizon 0 takes no [windows].)
        w = self.windows
        reads_target = self.data.features is None or self.data.target in self.data.features
        if w is not None and w.horizon == 0 and reads_target:
            raise ValueError(f"windows.horizon = 0 makes the target ({self.data.target!r}) the last input row, which "
                             f"the model reads: a leak, not a forecast; use horizon >= 1 (or leave the target out "
                             f"of data.features)")
        return self

    def training_for(self, model: ModelConfig) -> TrainingConfig:
        """[training] with the model's own overrides applied."""
        overrides = model.training.model_dump(exclude_none=True)
        return TrainingConfig.model_validate({**self.training.model_dump(), **overrides})

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --- loading and error messages ----------------------------------------------------------------

def _type_name(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):  # Optional: TOML has no null, so name the real type
        return " or ".join(_type_name(a) for a in typing.get_args(annotation) if a is not type(None))
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        plural = {str: "strings", int: "integers", float: "numbers", bool: "booleans"}.get(item)
        return f"a list of {plural}" if plural else f"a list, each item {_type_name(item)}"
    if origin is dict:
        return "a table"
    if annotation is type(None):
        return "nothing"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "a table"
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false"}.get(
        annotation, getattr(annotation, "__name__", str(annotation))
    )


def _model_in(annotation: Any) -> type[BaseModel] | None:
    """The pydantic class inside an annotation such as ``Sub``, ``Sub | None`` or ``list[Sub]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return next((m for m in map(_model_in, typing.get_args(annotation)) if m is not None), None)


def _field_at(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[type[BaseModel] | None, Any]:
    """The class holding the last string key of ``loc``, and that key's annotation (None when unknown)."""
    holder: type[BaseModel] | None = root
    annotation: Any = None
    for key in loc:
        if isinstance(key, int):  # a list index: stay on the list's item class
            continue
        if holder is None or key not in holder.model_fields:
            return holder, None
        annotation = holder.model_fields[key].annotation
        if key is not loc[-1]:
            holder = _model_in(annotation)
    if loc and isinstance(loc[-1], int) and typing.get_origin(annotation) is list:
        annotation = typing.get_args(annotation)[0]  # an item of the list was wrong
    return holder, annotation


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for key in loc:
        out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else str(key))
    return out


def closest(name: str, candidates: typing.Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or an empty string."""
    match = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.5)
    return f" (did you mean '{match[0]}'?)" if match else ""


def describe_validation_error(err: ValidationError, root: type[BaseModel], source: str) -> str:
    """One line naming the first problem of a pydantic error: the key, the rule, the value."""
    # An unknown key explains a "missing" one next to it (a typo), so report it first.
    first = sorted(err.errors(), key=lambda e: e["type"] != "extra_forbidden")[0]
    loc = tuple(first["loc"])
    key = _dotted(loc)
    kind = first["type"]
    if kind == "extra_forbidden":
        holder, _ = _field_at(root, loc)
        names = holder.model_fields if holder is not None else []
        return f"{source}: unknown key '{key}'{closest(str(loc[-1]), names)}"
    if kind == "missing":
        return f"{source}: missing key '{key}'"
    if kind == "unknown_name":  # a name a registry does not hold (a task, a baseline)
        return f"{source}: '{key}' {first['msg']}"
    value = first.get("input")
    _, annotation = _field_at(root, loc)
    if annotation is not None and (kind.endswith("_type") or kind.endswith("_parsing") or kind == "literal_error"):
        return f"{source}: '{key}' must be {_type_name(annotation)}, got {value!r}"
    message = first["msg"].removeprefix("Value error, ")
    if not key:  # a check across keys: its message names them
        return f"{source}: {message}"
    return f"{source}: '{key}': {message}" + ("" if "got" in message else f", got {value!r}")


def parse_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dict; a problem is a RnnkitError naming the key."""
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as err:
        raise RnnkitError(describe_validation_error(err, ExperimentConfig, source)) from None
    for i, model in enumerate(config.models):
        for j, spec in enumerate(model.layers):
            check_layer_spec(spec, f"{source}: models[{i}].layers[{j}]")
            check_placeholders(spec, f"{source}: models[{i}].layers[{j}]", config.task)
            check_layer_values(spec, f"{source}: models[{i}].layers[{j}]")
    return config


def check_layer_values(spec: dict[str, Any], where: str) -> None:
    """Build the layer once (lazily: no weights yet) so that a bad value (``use_bias = "false"``,
    ``dropout = 1.5``) is refused when the config is read, naming the model and layer."""
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # warnings about settings come again when the model is built
            build_layer(fill_placeholders(spec, {word: 2 for word in PLACEHOLDERS.values()}))
    except RnnkitError as e:
        message = str(e).removeprefix(f"layer {spec['type']}: ")
        raise RnnkitError(f"{where} ({spec['type']}): {message}") from None


def load_config(path: str | Path) -> ExperimentConfig:
    """Read and validate a TOML experiment file."""
    path = Path(path)
    if not path.is_file():
        raise RnnkitError(f"config file not found: {path}")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as e:
        raise RnnkitError(f"{path}: not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise RnnkitError(f"{path}: not a UTF-8 text file") from None
    except RecursionError:
        raise RnnkitError(f"{path}: not a usable config: arrays or tables nested too deeply") from None
    return parse_config(raw, source=str(path))


def save_resolved(config: ExperimentConfig, path: Path) -> None:
    from rnnkit.io import write_text_atomic

    write_text_atomic(path, json.dumps(config.to_dict(), indent=2) + "\n")


# --- layer specs -------------------------------------------------------------------------------

def layer_classes() -> dict[str, type]:
    from rnnkit import layers

    names = ("SimpleRNN", "LSTM", "GRU", "Bidirectional", "Dense", "Dropout", "Embedding", "Flatten")
    return {n: getattr(layers, n) for n in names if hasattr(layers, n)}


def constructor_arguments(cls: type) -> list[str]:
    """The keyword arguments a class accepts, following ``**kwargs`` up to its base classes."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = inspect.signature(vars(klass)["__init__"]).parameters.values()
        names += [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
                  and p.name != "self" and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def check_layer_spec(spec: dict[str, Any], where: str) -> None:
    """Reject an unknown layer type or argument before anything is built."""
    classes = layer_classes()
    kind = spec.get("type")
    if not isinstance(kind, str):
        raise RnnkitError(f"{where}: missing 'type' (one of {', '.join(classes)})")
    if kind not in classes:
        raise RnnkitError(f"{where}: unknown layer type '{kind}'{closest(kind, classes)}")
    accepted = constructor_arguments(classes[kind])
    for key, value in spec.items():
        if key == "type":
            continue
        if key not in accepted:
            raise RnnkitError(f"{where}: unknown argument '{key}' for {kind}{closest(key, accepted)}")
        if key == "layer":
            if not isinstance(value, dict):
                raise RnnkitError(f"{where}.layer must be a table such as {{type = \"GRU\", units = 16}}")
            check_layer_spec(value, f"{where}.layer")


def check_placeholders(spec: dict[str, Any], where: str, task: str) -> None:
    """Allow ``input_dim = "vocabulary"`` (Embedding) and ``units = "tags"`` (Dense) only where they mean something.

    With ``task = "tagging"`` the vocabulary size and the number of tags are known only once
    the corpus is read; these words stand for them and are filled in before the model is built
    (by a task whose class says ``fills_placeholders``).
    """
    from rnnkit.tasks import TASKS, task_class

    kind = spec.get("type")
    for (layer, key), word in PLACEHOLDERS.items():
        value = spec.get(key)
        if kind != layer or not isinstance(value, str):
            continue
        if value != word:
            raise RnnkitError(f"{where}.{key} must be an integer or \"{word}\", got {value!r}")
        filling = [name for name in TASKS if task_class(name).fills_placeholders]
        if task not in filling:
            raise RnnkitError(f"{where}.{key} = \"{word}\" is filled in from a tagged corpus: it needs "
                              f"task = {' or '.join(repr(name) for name in filling)}, got task = {task!r}")
    if isinstance(spec.get("layer"), dict):
        check_placeholders(spec["layer"], f"{where}.layer", task)


def fill_placeholders(spec: dict[str, Any], values: dict[str, int]) -> dict[str, Any]:
    """A copy of a layer spec with ``"vocabulary"`` / ``"tags"`` replaced by ``values[word]``."""
    out = dict(spec)
    for (layer, key), word in PLACEHOLDERS.items():
        if out.get("type") == layer and out.get(key) == word:
            out[key] = values[word]
    if isinstance(out.get("layer"), dict):
        out["layer"] = fill_placeholders(out["layer"], values)
    return out


def build_layer(spec: dict[str, Any]):
    """A layer from its spec ``{type = "GRU", units = 32, ...}``; constructor errors name the argument."""
    from rnnkit.layers import regularizers

    classes = layer_classes()
    kwargs = {k: v for k, v in spec.items() if k != "type"}
    for key in ("kernel_regularizer", "recurrent_regularizer", "bias_regularizer"):
        if key in kwargs:
            kwargs[key] = regularizers.get(kwargs[key], key)
    if "layer" in kwargs:
        kwargs["layer"] = build_layer(kwargs["layer"])
    try:
        return classes[spec["type"]](**kwargs)
    except (TypeError, ValueError) as e:  # a constructor's argument check: bad input, named
        raise RnnkitError(f"layer {spec['type']}: {e}") from None
