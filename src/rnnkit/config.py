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
import math
import sys
import warnings
import types
import typing
from pathlib import Path
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from rnnkit.errors import RnnkitError
from rnnkit.training.settings import TrainingConfig

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


__all__ = [
    "BacktestConfig",
    "ClassificationConfig",
    "DataConfig",
    "ExperimentConfig",
    "IntervalsConfig",
    "ModelConfig",
    "QuantileConfig",
    "TaggingConfig",
    "SearchConfig",
    "TrainingConfig",
    "WindowConfig",
    "override",
    "parse_schema",
    "read_toml",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)  # inf/NaN named at the key


class RowParts(_Strict):
    """A series' parts given by row position, each ``[start, stop)`` (``data.parts``; a backtest fold's).

    Positions count the rows after reading (``data.step`` applied); the parts are in time order and do
    not overlap (validation starts at or after training's stop, test at or after validation's).
    """

    train: list[int]
    val: list[int]
    test: list[int]

    @model_validator(mode="after")
    def _ordered(self) -> "RowParts":
        for key in ("train", "val", "test"):
            rows = getattr(self, key)
            if len(rows) != 2 or rows[0] < 0 or rows[1] <= rows[0]:
                raise ValueError(f"{key} must be [start, stop] row positions with 0 <= start < stop, got {rows}")
        if self.train[1] > self.val[0] or self.val[1] > self.test[0]:
            raise ValueError(
                f"the parts must be in time order without overlap (train, then val, then test), got "
                f"train {self.train}, val {self.val}, test {self.test}"
            )
        return self


class DataConfig(_Strict):
    """Which series, which columns, how it is resampled and split."""

    # teddy: the tagged "Teddy Roosevelt" / "Teddy bears" sentences (rnnkit.corpora.teddy), task = "tagging" only
    # parquet: many series from a Parquet file or folder (a long table), task = "many_series" only
    # weather_text: a weather diary (rnnkit.corpora.weather_text); text: the text file(s) of data.paths (or --data):
    # characters for task = "generation" only
    dataset: Literal["jena", "sunspots", "teddy", "parquet", "weather_text", "text"] = "jena"
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
    # (segments shorter than one window are left out: they hold no window in any part)
    # "rows": split the rows, then cut windows within each part (no window crosses a boundary). "windows":
    # the course's split: windows cut from the whole series are split in order (a part's windows may reach
    # back into the part before for their inputs, never for their targets).
    split_by: Literal["rows", "windows"] = "rows"
    # explicit parts by row position ({train = [start, stop], val = [...], test = [...]}): a backtest fold's
    # (rnnkit.backtest writes them); split, split_per_segment and split_by are then not used
    parts: RowParts | None = None
    # dataset = "parquet" only: the series-id and time columns (default "id", "time"), and whether each series is
    # scaled with its own training statistics ("series") or all with the pooled ones ("global", the default)
    id_column: str | None = None
    time_column: str | None = None
    scaling: Literal["global", "series"] | None = None
    id_embedding: int | None = Field(None, ge=1)  # a learned vector of this many numbers per series, as an input

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
    # Known-future inputs: columns whose values at the target time are known when the forecast is made (the
    # calendar of data.derived = ["time"]: "Day sin", "Day cos", "Year sin", "Year cos"; a planned value).
    # Input row t also carries them at row t + horizon (and at every later target step); every other column
    # is read at input rows only (rk.data.make_windows(known_future=...)). Regression and seq2seq only.
    known_future: list[str] = Field(default_factory=list)

    @field_validator("known_future")
    @classmethod
    def _distinct(cls, v: list[str]) -> list[str]:
        repeated = sorted({c for c in v if v.count(c) > 1})
        if repeated:
            raise ValueError(f"must not name a column twice, got {repeated} more than once")
        return v


if TYPE_CHECKING:
    # create_model's fields are invisible to the type checker: each one reads as Any

    class TrainingOverrides(_Strict):
        def __getattr__(self, name: str) -> Any: ...

else:
    TrainingOverrides = create_model(
        "TrainingOverrides",
        __base__=_Strict,
        **{name: (field.annotation | None, None) for name, field in TrainingConfig.model_fields.items()},
    )
TrainingOverrides.__doc__ = "Any [training] key, set for one model only."


class ModelConfig(_Strict):
    """One model: a name and its layers, each ``{type = "GRU", units = 32, ...}`` with Keras argument names.

    Or an ensemble: ``members = ["GRU seed 0", "GRU seed 1", ...]``, names of models listed before it in
    the same run; it trains nothing and forecasts the mean of its trained members (rnnkit.models.ensemble).
    """

    name: str = Field(min_length=1)
    layers: list[dict[str, Any]] = Field(default_factory=list)
    members: list[str] = Field(default_factory=list)  # an ensemble: the mean of these earlier models
    residual: bool | None = None  # None: the [windows] setting
    training: TrainingOverrides = Field(default_factory=lambda: TrainingOverrides())  # this model's own settings

    @model_validator(mode="after")
    def _layers_or_members(self) -> ModelConfig:
        if bool(self.layers) == bool(self.members):
            raise ValueError(
                f"model {self.name!r} needs either layers (a model to train) or members (an ensemble "
                f"of models listed before it), got {'both' if self.layers else 'neither'}"
            )
        if self.members:
            if len(self.members) < 2 or len(set(self.members)) < len(self.members):
                raise ValueError(
                    f"members of the ensemble {self.name!r} must be at least two different model names, "
                    f"got {self.members}"
                )
            set_ = [k for k in ("residual",) if getattr(self, k) is not None]
            set_ += [f"training.{k}" for k in self.training.model_dump(exclude_none=True)]
            if set_:
                raise ValueError(
                    f"the ensemble {self.name!r} trains nothing (it averages its members): "
                    f"{', '.join(set_)} does nothing there"
                )
        return self


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
    and ``run_as``, the row of this config's table it is compared with (a model or baseline name);
    ``source``: where this row comes from, when not the ``[published]`` block's source."""

    model: str = Field(min_length=1)
    run_as: str | None = None
    mae_val: float | list[float] | None = None
    mae_test: float | list[float] | None = None
    note: str = ""
    source: str | None = Field(default=None, min_length=1)

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


class SearchParam(_Strict):
    """One dimension of a sweep's space (``[search.params]``): an Optuna distribution over one config value.

    ``{type = "int", low = 8, high = 64, step = 8}``, ``{type = "float", low = 1e-4, high = 1e-2, log = true}``,
    ``{type = "categorical", choices = ["GRU", "LSTM"]}``. ``log`` samples uniformly in log space (int or
    float, low > 0); ``step`` spaces the values (int: default 1; float: none, a continuous range).
    """

    type: Literal["int", "float", "categorical"]
    low: int | float | None = None
    high: int | float | None = None
    step: int | float | None = None
    log: bool = False
    choices: list[bool | int | float | str] | None = None

    @model_validator(mode="after")
    def _distribution(self) -> SearchParam:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical distribution needs a non-empty list of choices, got none")
            extra = [k for k in ("low", "high", "step") if getattr(self, k) is not None] + (["log"] if self.log else [])
            if extra:
                raise ValueError(f"a categorical distribution takes only choices, got {', '.join(extra)}")
            if len({json.dumps(c) for c in self.choices}) < len(self.choices):
                raise ValueError(f"choices must differ from each other, got {self.choices}")
            return self
        if self.choices is not None:
            raise ValueError(f"choices belong to type = 'categorical', got them with type = {self.type!r}")
        if self.low is None or self.high is None:
            raise ValueError(f"type = {self.type!r} needs low and high")
        if self.type == "int" and any(isinstance(v, float) for v in (self.low, self.high, self.step)):
            raise ValueError(
                f"type = 'int' needs whole numbers for low, high and step, got low = {self.low!r}, "
                f"high = {self.high!r}, step = {self.step!r}"
            )
        if self.low > self.high:
            raise ValueError(f"empty range: low must be <= high, got low = {self.low!r}, high = {self.high!r}")
        if self.log and self.low <= 0:
            raise ValueError(f"log = true needs low > 0, got low = {self.low!r}")
        if self.step is not None:
            if self.step <= 0:
                raise ValueError(f"step must be > 0, got {self.step!r}")
            if self.log:
                raise ValueError("step and log = true exclude each other (Optuna samples one or the other)")
            spans = (self.high - self.low) / self.step
            if abs(spans - round(spans)) > 1e-9:
                raise ValueError(
                    f"high - low must be a multiple of step, got low = {self.low!r}, high = {self.high!r}, "
                    f"step = {self.step!r}"
                )
        return self

    def ends(self) -> list[Any]:
        """The values that bound the distribution (low and high, or every choice): each must make a valid config."""
        return list(self.choices) if self.type == "categorical" else [self.low, self.high]


class SearchConfig(_Strict):
    """A hyper-parameter sweep over the config (``[search]``, run by ``rnnkit sweep``; ``rnnkit train`` ignores it).

    ``params`` maps a dotted path of the resolved config (``"training.learning_rate"``,
    ``"models[0].layers[0].units"``, ``"windows.residual"``) to its distribution. Each trial trains
    the config with the sampled values and is scored by ``metric``, a validation score of the
    models' results (default: the task's, regression ``mae_val``; a test score is refused: the test
    part is only reported). ``model`` names the model scored (default: the best of the trial's
    models by ``metric``). ``pruner`` stops unpromising trials early on each epoch's validation loss.
    """

    params: dict[str, SearchParam] = Field(min_length=1)
    trials: int = Field(20, ge=1)
    sampler: Literal["tpe", "random"] = "tpe"
    seed: int = 0  # the sampler's; trial n of a sweep draws with a seed of (seed, n) (rnnkit.search.trial_seed)
    metric: str | None = None  # None: the task's validation score (regression: mae_val)
    direction: Literal["minimize", "maximize"] | None = None  # None: the task's (mae_val: minimize)
    model: str | None = None  # None: the best of each trial's models
    pruner: Literal["none", "median", "hyperband"] = "none"
    startup_trials: int = Field(5, ge=0)  # trials sampled at random (TPE) and never pruned (median) at the start
    threads: int = Field(1, ge=1)  # torch threads of each worker process

    @field_validator("metric")
    @classmethod
    def _validation_only(cls, v: str | None) -> str | None:
        if v is not None and not v.endswith("_val"):
            raise ValueError(
                f"must be a validation score (a name ending in '_val', e.g. 'mae_val'): settings are "
                f"chosen on the validation part only, got {v!r}"
            )
        return v


BASELINES = ("persistence", "seasonal_persistence", "mean", "linear", "naive_dense", "repeat_last_day")
CLASSIFICATION_BASELINES = ("same_as_now", "majority")  # the label of the last input row; the training majority
TAGGING_BASELINES = ("majority_per_word",)  # each word's commonest training tag: the best without context
# Per-step regression (windows.return_sequences): baselines that have a per-step version.
PER_STEP_BASELINES = ("persistence", "mean")
# Multi-step regression (windows.target_length > 1): baselines that forecast K steps (persistence repeats
# the last value K times; repeat_last_day the last day's values; mean and linear have one output per step).
MULTISTEP_BASELINES = ("persistence", "repeat_last_day", "mean", "linear")
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


ROLLING_WINDOW = (
    2160  # [intervals] update = "rolling": errors kept by default (hourly rows: 90 days; chosen on validation)
)


class IntervalsConfig(_Strict):
    """Prediction intervals for every point forecaster of a run (``[intervals]``; rnnkit.intervals).

    ``method = "conformal"``: the interval of level a is the forecast ± the ceil((n + 1) a)-th smallest of
    n absolute errors, per forecast step; its coverage and width are reported on test. ``update = "static"``:
    the n validation errors throughout (split conformal). ``update = "rolling"`` (the default, chosen on
    validation halves): the last ``window`` errors known when each forecast is made (validation's, then the
    scored part's own whose target row is at or before the forecast's last input row).
    """

    method: Literal["conformal"] = "conformal"
    levels: list[float] = Field(default_factory=lambda: [0.8, 0.9])
    # "rolling": each forecast's radius from the last `window` errors known when it is made (validation's, then the
    # scored part's own, truth at or before the forecast's last input row); "static": the validation radius throughout
    update: Literal["static", "rolling"] = "rolling"  # chosen on validation halves (docs/guides/intervals.md)
    window: int | None = None  # rolling: how many recent errors (default ROLLING_WINDOW)

    @field_validator("levels")
    @classmethod
    def _levels(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 < a < 1 for a in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError(f"must be one or more increasing coverage levels in (0, 1), such as [0.8, 0.9], got {v}")
        return v

    @model_validator(mode="after")
    def _window(self) -> "IntervalsConfig":
        if self.update == "static":
            if self.window is not None:
                warnings.warn(
                    f"intervals.window = {self.window} does nothing with update = 'static' (it is the "
                    "rolling update's number of recent errors)",
                    UserWarning,
                    stacklevel=2,
                )
            return self
        if self.window is None:
            self.window = ROLLING_WINDOW
        need = max(math.ceil(a / (1 - a) - 1e-9) for a in self.levels)
        if self.window < need:
            raise ValueError(
                f"window must be at least {need} errors for the levels {self.levels} "
                f"(ceil((window + 1) a) <= window), got {self.window}"
            )
        return self


# A backtest length: a number of rows, or a duration such as "365d", "8760h" or "52w" (rnnkit.backtest).
DURATION_UNITS = {"h": 1, "hour": 1, "hours": 1, "d": 24, "day": 24, "days": 24, "w": 168, "week": 168, "weeks": 168}


def duration_hours(value: int | str) -> int | None:
    """The hours of a duration such as ``"365d"`` (None for a number of rows, an int).

    Example:
        >>> duration_hours("365d"), duration_hours("36h"), duration_hours(500)
        (8760, 36, None)
    """
    if isinstance(value, int):
        return None
    text = value.strip().lower()
    number = text.rstrip("abcdefghijklmnopqrstuvwxyz ")
    unit = text[len(number) :].strip()
    if not number.isdigit() or unit not in DURATION_UNITS or int(number) < 1:
        raise ValueError(
            f"must be a number of rows (an integer >= 1) or a duration such as '365d', '8760h' or '52w', got {value!r}"
        )
    return int(number) * DURATION_UNITS[unit]


class BacktestConfig(_Strict):
    """A rolling-origin backtest (``[backtest]``, run by ``rnnkit backtest``; rnnkit.backtest).

    The test folds: ``by = "year"`` makes each calendar year a fold (``first``/``last``: the first and last
    test year; ``folds = N`` with it: the last N of those years); else ``folds = N`` consecutive test folds
    of ``length`` (rows, or a duration such as ``"365d"``) that end with the data. Each fold's training span
    lies before its test fold: every row before it (``window = "expanding"``) or the ``span`` just before it
    (``"sliding"``); its last ``validation`` (rows or a duration; default: a test fold's length, 365 days
    with ``by = "year"``) is the fold's validation part. ``refit = false`` trains once, on the first fold's
    training span, and scores every fold with those models.
    """

    folds: int | None = Field(None, ge=1)
    by: Literal["year"] | None = None
    length: int | str | None = None  # each test fold: rows or a duration ("365d"); not with by = "year"
    first: int | None = None  # by = "year": the first test year (default: the data's second year)
    last: int | None = None  # by = "year": the last test year (default: the data's last year)
    window: Literal["expanding", "sliding"] = "expanding"
    span: int | str | None = None  # window = "sliding": the training span, its validation part included
    validation: int | str | None = None  # the end of each training span: rows or a duration
    refit: bool = True  # false: train once on the first fold's training span, score every fold with it

    @field_validator("length", "span", "validation", mode="before")
    @classmethod
    def _lengths(cls, v: Any) -> Any:
        if v is None:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, str)) or (isinstance(v, int) and v < 1):
            raise ValueError(
                f"must be a number of rows (an integer >= 1) or a duration such as '365d', '8760h' or '52w', got {v!r}"
            )
        if isinstance(v, str):
            duration_hours(v)
        return v

    @model_validator(mode="after")
    def _consistent(self) -> "BacktestConfig":
        if self.by is None:
            if self.folds is None:
                raise ValueError(
                    "backtest.folds: give folds = N (with length) or by = 'year' to say what the test folds are, got neither"
                )
            if self.length is None:
                raise ValueError(
                    "backtest.length: folds = N needs each test fold's length (rows, or a duration such as "
                    "'365d'), got none"
                )
            for key in ("first", "last"):
                if getattr(self, key) is not None:
                    raise ValueError(f"backtest.{key} names a test year: it needs by = 'year', got by unset")
        else:
            if self.length is not None:
                raise ValueError(
                    f"backtest.length: by = 'year' makes each calendar year a test fold; leave length out, "
                    f"got {self.length!r}"
                )
            if self.first is not None and self.last is not None and self.first > self.last:
                raise ValueError(f"backtest.first must be <= backtest.last, got {self.first} and {self.last}")
        if self.window == "sliding" and self.span is None:
            raise ValueError(
                "backtest.span: window = 'sliding' needs the training span (rows or a duration such as "
                "'1461d'), got none"
            )
        if self.window == "expanding" and self.span is not None:
            raise ValueError(
                f"backtest.span is the sliding window's training span: window = 'expanding' uses every "
                f"row before the fold, got span = {self.span!r}"
            )
        return self


class ExperimentConfig(_Strict):
    """A whole run: data, windows, training, baselines and the models to compare."""

    name: str = "experiment"
    description: str = ""
    task: str = "regression"  # a name in rnnkit.tasks.TASKS: the registry checks it (rnnkit.tasks.check_config)
    data: DataConfig = Field(default_factory=DataConfig)
    windows: WindowConfig | None = None  # needed by every task but "tagging" (whole sentences)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    # the task's own baselines when left out (regression's default here)
    # names the task offers (its baseline_names), checked by the task (rnnkit.tasks.check_config)
    baselines: list[str] = Field(default_factory=lambda: ["persistence", "seasonal_persistence", "mean"])
    classification: ClassificationConfig | None = None  # task = "classification": its defaults when left out
    tagging: TaggingConfig | None = None  # task = "tagging": its defaults when left out
    quantile: QuantileConfig | None = None  # task = "quantile": its defaults when left out
    intervals: IntervalsConfig | None = None  # conformal intervals around every point forecast (rnnkit.intervals)
    # task = "generation": its [generation] table, checked and filled in by rnnkit.tasks.generation
    generation: dict[str, Any] | None = None
    models: list[ModelConfig] = Field(default_factory=list)
    published: PublishedConfig | None = None  # reference numbers (the course's, Chollet's) shown beside the run's
    output: OutputConfig = Field(default_factory=OutputConfig)
    search: SearchConfig | None = None  # a sweep's space and settings (rnnkit sweep)
    backtest: BacktestConfig | None = None  # rolling-origin folds (rnnkit backtest; rnnkit.backtest)

    @model_validator(mode="after")
    def _published_rows_name_rows_of_the_run(self) -> ExperimentConfig:
        if self.published is not None:
            names = [
                *self.baselines,
                *(["naive_dense"] if "naive_dense" in self.baselines else []),
                *(m.name for m in self.models),
            ]
            for i, row in enumerate(self.published.rows):
                if row.run_as is not None and row.run_as not in names:
                    raise ValueError(
                        f"published.rows[{i}].run_as must name a model or baseline of this config "
                        f"({names}), got {row.run_as!r}"
                    )
        return self

    @model_validator(mode="after")
    def _unique_names(self) -> ExperimentConfig:
        names = [m.name for m in self.models]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"model names must be unique, got {dup} more than once")
        return self

    @model_validator(mode="after")
    def _members_named_before(self) -> ExperimentConfig:
        seen: dict[str, ModelConfig] = {}
        for i, model in enumerate(self.models):
            for member in model.members:
                if member not in seen:
                    raise ValueError(
                        f"models[{i}].members: {member!r} is not a model listed before the ensemble "
                        f"{model.name!r} (those are {list(seen)}){closest(member, seen)}"
                    )
                if seen[member].members:
                    raise ValueError(f"models[{i}].members: {member!r} is an ensemble itself; list its members instead")
                if self.training_for(seen[member]).stateful:
                    raise ValueError(
                        f"models[{i}].members: {member!r} is stateful (it reads contiguous streams, not "
                        f"windows): an ensemble averages window models"
                    )
            seen[model.name] = model
        return self

    @model_validator(mode="after")
    def _no_leak(self) -> ExperimentConfig:
        # horizon 0 puts the target at the last input row: when the model reads the target column,
        # it is handed the answer (persistence scores 0). (Tagging's horizon 0 takes no [windows].)
        w = self.windows
        reads_target = self.data.features is None or self.data.target in self.data.features
        if w is not None and w.horizon == 0 and reads_target:
            raise ValueError(
                f"windows.horizon = 0 makes the target ({self.data.target!r}) the last input row, which "
                f"the model reads: a leak, not a forecast; use horizon >= 1 (or leave the target out "
                f"of data.features)"
            )
        if w is not None and self.data.target in w.known_future:
            raise ValueError(
                f"windows.known_future must not hold the target ({self.data.target!r}): it is what is "
                f"forecast, not known in advance"
            )
        missing = [
            c
            for c in (w.known_future if w is not None else [])
            if self.data.features is not None and c not in self.data.features
        ]
        if missing:
            raise ValueError(
                f"windows.known_future names columns that are not among data.features: {missing} "
                f"(a known-future column is an input too)"
            )
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
    if not key or message.startswith(f"{key}."):  # a check across keys: its message names them
        return f"{source}: {message}"
    return f"{source}: '{key}': {message}" + ("" if "got" in message else f", got {value!r}")


def parse_schema(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """Validate a config dict against the schema; a problem is a RnnkitError naming the key.

    The schema knows no task: the task's own checks (its name, baselines and settings, the
    placeholders it fills) come after, from :func:`rnnkit.tasks.parse_config`, which runs this
    first. ``[search]`` is checked there too (each end of a range must make a config its task takes).
    """
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


def read_toml(path: str | Path) -> dict[str, Any]:
    """The table of a TOML experiment file, unvalidated (:func:`rnnkit.tasks.load_config` validates it)."""
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
    return raw


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
        names += [
            p.name
            for p in params
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self" and p.name not in names
        ]
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
                raise RnnkitError(f'{where}.layer must be a table such as {{type = "GRU", units = 16}}')
            check_layer_spec(value, f"{where}.layer")


def check_placeholders(spec: dict[str, Any], where: str, task: str, filling: list[str] | None = None) -> None:
    """Allow ``input_dim = "vocabulary"`` (Embedding) and ``units = "tags"`` (Dense) only where they mean something.

    With ``task = "tagging"`` the vocabulary size and the number of tags are known only once
    the corpus is read; these words stand for them and are filled in before the model is built
    (by a task whose class says ``fills_placeholders``). ``filling`` names those tasks (the
    registry's, given by rnnkit.tasks.check_config); None checks the words only.
    """
    kind = spec.get("type")
    for (layer, key), word in PLACEHOLDERS.items():
        value = spec.get(key)
        if kind != layer or not isinstance(value, str):
            continue
        if value != word:
            raise RnnkitError(f'{where}.{key} must be an integer or "{word}", got {value!r}')
        if filling is not None and task not in filling:
            raise RnnkitError(
                f'{where}.{key} = "{word}" is filled in from a tagged corpus: it needs '
                f"task = {' or '.join(repr(name) for name in filling)}, got task = {task!r}"
            )
    if isinstance(spec.get("layer"), dict):
        check_placeholders(spec["layer"], f"{where}.layer", task, filling)


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


# --- any value by its dotted path (sweeps) ---------------------------------------------------------


def parse_path(path: str) -> list[str | int]:
    """The keys of a dotted path: ``"models[0].layers[1].units"`` -> ``["models", 0, "layers", 1, "units"]``.

    Example:
        >>> parse_path("models[0].layers[1].units")
        ['models', 0, 'layers', 1, 'units']
    """
    keys: list[str | int] = []
    for part in path.split("."):
        name, *indices = part.split("[")
        if not name and not keys:
            raise RnnkitError(
                f"'{path}' is not a dotted path such as 'training.learning_rate' or 'models[0].layers[0].units'"
            )
        if name:
            keys.append(name)
        for index in indices:
            if not index.endswith("]") or not index[:-1].isdigit():
                raise RnnkitError(
                    f"'{path}' is not a dotted path such as 'training.learning_rate' or 'models[0].layers[0].units'"
                )
            keys.append(int(index[:-1]))
    if not keys or any(k == "" for k in keys):
        raise RnnkitError(
            f"'{path}' is not a dotted path such as 'training.learning_rate' or 'models[0].layers[0].units'"
        )
    return keys


def set_value(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set the value at a dotted path of a config dict, in place; every part above the last key must exist.

    The last key may be new (a layer argument left at its default); whether it is a valid key is
    for :func:`rnnkit.tasks.parse_config` to say.
    """
    keys = parse_path(path)
    node: Any = raw
    for depth, key in enumerate(keys[:-1]):
        where = _dotted(tuple(keys[: depth + 1]))
        if isinstance(key, int):
            if not isinstance(node, list) or key >= len(node):
                size = f"a list of {len(node)}" if isinstance(node, list) else "not a list"
                raise RnnkitError(f"'{where}' is not in the config ({_dotted(tuple(keys[:depth]))} is {size})")
        elif not isinstance(node, dict) or key not in node:
            hint = closest(key, node) if isinstance(node, dict) else ""
            raise RnnkitError(f"unknown key '{where}'{hint}")
        node = node[key]
        if node is None:
            raise RnnkitError(f"'{where}' is not set in the config: give its table to search inside it")
    last = keys[-1]
    if isinstance(last, int):
        if not isinstance(node, list) or last >= len(node):
            raise RnnkitError(f"'{path}' is not in the config")
    elif not isinstance(node, dict):
        raise RnnkitError(f"'{_dotted(tuple(keys[:-1]))}' is not a table: '{path}' names nothing")
    node[last] = value


def override(
    config: ExperimentConfig,
    values: dict[str, Any],
    source: str = "config",
    parse: Callable[[dict[str, Any], str], ExperimentConfig] = parse_schema,
) -> ExperimentConfig:
    """A copy of ``config`` with each dotted path of ``values`` set, validated again by ``parse``
    (the schema's; :func:`rnnkit.tasks.parse_config` adds the task's checks), its [search] kept.

    Example:
        >>> base = ExperimentConfig(windows=WindowConfig(sequence_length=24))
        >>> override(base, {"windows.sequence_length": 48, "training.learning_rate": 0.01}).windows.sequence_length
        48
    """
    raw = config.to_dict()
    for path, value in values.items():
        try:
            set_value(raw, path, value)
        except RnnkitError as e:
            raise RnnkitError(f"{source}: {e}") from None
    return parse(raw, source)


def check_search(
    config: ExperimentConfig, source: str, parse: Callable[[dict[str, Any], str], ExperimentConfig] = parse_schema
) -> None:
    """Refuse a [search] whose paths name nothing, or whose ranges give values the config cannot take.

    Each path must name a value of the resolved config (or an argument of a layer), and the ends of
    its distribution (low and high, or every choice) must each give a valid config, with the same
    checks as the file itself: a float range over an integer, an integer over true/false, a
    categorical choice that is not among the allowed values are refused here, not in trial 7.
    ``parse`` validates each end (rnnkit.tasks.parse_config passes itself: the task's checks too).
    """
    search = config.search
    base = config.to_dict()
    base.pop("search")
    for path, param in search.params.items():
        where = f"{source}: search.params.'{path}'"
        current = _current(base, path, where)
        if param.type != "categorical" and isinstance(current, bool):
            raise RnnkitError(
                f"{where}: type = {param.type!r} does not fit a true/false value "
                f"(use type = 'categorical', choices = [true, false])"
            )
        if param.type == "float" and isinstance(current, int) and not isinstance(current, bool):
            raise RnnkitError(
                f"{where}: a float distribution does not fit an integer value (now {current!r}): use type = 'int'"
            )
        for value in param.ends():
            raw = json.loads(json.dumps(base))
            set_value(raw, path, value)
            try:
                parse(raw, f"{value!r}")
            except RnnkitError as e:
                raise RnnkitError(
                    f"{where}: the value {value!r} does not fit: {str(e).removeprefix(f'{value!r}: ')}"
                ) from None
    names = [m.name for m in config.models]
    if search.model is not None and search.model not in names:
        raise RnnkitError(
            f"{source}: search.model must name a model of the config ({names}), got {search.model!r}"
            f"{closest(search.model, names)}"
        )
    if not names:
        raise RnnkitError(f"{source}: [search] needs at least one [[models]] to train")
    if search.pruner != "none" and search.model is None and len(names) > 1:
        raise RnnkitError(f"{source}: search.pruner follows one model's epochs: set search.model to one of {names}")


def _current(raw: dict[str, Any], path: str, where: str) -> Any:
    """The value at ``path`` now (None when the last key is not set: a layer argument at its default)."""
    probe = json.loads(json.dumps(raw))
    try:
        keys = parse_path(path)
        set_value(probe, path, None)  # checks every part above the last key
    except RnnkitError as e:
        raise RnnkitError(f"{where}: {e}") from None
    node: Any = raw
    for key in keys:
        if isinstance(node, dict) and key in node:
            node = node[key]
        elif isinstance(node, list) and isinstance(key, int):
            node = node[key]
        elif isinstance(node, dict) and "type" not in node:  # a table of the resolved config holds every key
            raise RnnkitError(f"{where}: unknown parameter: no key '{key}' there{closest(str(key), node)}")
        else:
            return None  # a layer's argument left at its default
    if isinstance(node, (dict, list)):
        raise RnnkitError(
            f"{where}: names a whole table or list; a search sets one value (a number, a string, true or false)"
        )
    return node


# --- a config as TOML (a sweep's best config) ------------------------------------------------------


def _toml_key(key: str) -> str:
    bare = key and all(c.isalnum() or c in "_-" for c in key) and key.isascii()
    return key if bare else json.dumps(key)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value:
            return "nan"
        if value in (float("inf"), float("-inf")):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON's escapes are TOML's basic-string escapes
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None) + "}"
    raise TypeError(f"no TOML form for {type(value).__name__}")


def config_toml(config: ExperimentConfig) -> str:
    """The resolved config as a TOML file that :func:`rnnkit.tasks.load_config` reads back to the same config.

    Unset values (None) are left out: TOML has no null, and every optional setting defaults to None.

    Example:
        >>> config = ExperimentConfig(windows=WindowConfig(sequence_length=24))
        >>> parse_schema(tomllib.loads(config_toml(config))) == config
        True
    """
    raw = {k: v for k, v in config.to_dict().items() if v is not None}
    lines = [
        f"{_toml_key(k)} = {_toml_value(v)}"
        for k, v in raw.items()
        if not isinstance(v, dict) and not (isinstance(v, list) and v and all(isinstance(i, dict) for i in v))
    ]
    for key, value in raw.items():
        if isinstance(value, dict):
            lines += ["", f"[{_toml_key(key)}]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in value.items() if v is not None]
        elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
            for item in value:
                lines += ["", f"[[{_toml_key(key)}]]"]
                lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in item.items() if v is not None and v != {}]
    return "\n".join(lines) + "\n"
