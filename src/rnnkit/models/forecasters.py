"""Multi-step forecasting: the next ``target_length`` rows from one window ("the daily weather for next week").

Three ways to forecast K steps from a window ``x`` ``(batch, sequence_length, features)``,
all returning ``(batch, K, outputs)`` so that one metric code scores them all
(:func:`rnnkit.training.metrics.forecast_scores`), and all trained by the plain :class:`rnnkit.training.Trainer` on
windows made with ``make_windows(..., target_length=K)``:

- :class:`DirectForecaster`: a recurrent encoder and ``Dense(K · outputs)``: every step at once.
- :class:`AutoregressiveForecaster`: one recurrent layer reads the window, predicts the next
  row, and reads its own prediction as the next input row, K times.
- :class:`Seq2SeqForecaster`: an encoder reads the window; a separate decoder starts from the
  encoder's final state and unrolls K steps, fed its own previous prediction.

Known future inputs: a feedback loop must build a whole input row for a step that has not
been observed. The time-of-day / time-of-year signals (``Day sin``/``Day cos`` ... of
:func:`rnnkit.datasets.jena_climate` with ``derived=["time"]``) are known in advance: a
:class:`Clock` names their columns and period, and advances them exactly by rotating the
last row's (sin, cos) pair. Those columns must stay in their own units (not standardised).

Their baselines are models too, in :mod:`rnnkit.baselines`: ``RepeatLastPeriod`` ("repeat
the last day": the last 24 hourly values as the next 24; with ``period=1`` it repeats the last
value) and ``MeanDailyCurve`` (the training mean at each hour of the day, optionally anchored
at the last value).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from rnnkit.errors import RnnkitError, check_positive_int
from rnnkit.layers import Dense
from rnnkit.layers.recurrent import RNN, recurrent_layer_class
from rnnkit.training.keras_api import KerasModel

State = tuple[torch.Tensor, ...]


# --- small pieces --------------------------------------------------------------------------------


def recurrent_layer(layer: str, units: int, input_size: int, **options: Any) -> RNN:
    """``SimpleRNN``/``LSTM``/``GRU`` by name, built for ``input_size`` features, returning its state."""
    return recurrent_layer_class(layer)(units, return_state=True, input_size=input_size, **options)


def run_recurrent(layer: nn.Module, x: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
    """Run a ``return_state`` layer over x ``(batch, time, features)``: (output, state tuple)."""
    output, *rest = layer(x, initial_state=state)
    return output, tuple(rest)


def _column_list(name: str, value: int | Sequence[int], features: int) -> list[int]:
    items = [value] if isinstance(value, (int, np.integer)) else list(value)  # a bool is refused below
    if not items or any(
        isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < features for i in items
    ):
        raise RnnkitError(f"{name} must be column positions in [0, {features}), got {value!r}")
    if len(set(items)) != len(items):
        raise RnnkitError(f"{name} must not repeat a column, got {value!r}")
    return [int(i) for i in items]


class Clock:
    """Known future inputs: (sin, cos) column pairs of a period, advanced by rotation.

    A pair ``(sin_index, cos_index, period)`` holds sin(2π t / period) and cos(2π t / period)
    with t counted in rows; row t + k holds the pair rotated by the angle 2π k / period:
    ``sin' = s·cos θ + c·sin θ``, ``cos' = c·cos θ − s·sin θ``. Exact for regular rows.

    Standardised clock columns (a run's :class:`rnnkit.data.Standardizer` scales every column):
    give ``mean`` and ``std`` of the clock columns, in the order of :attr:`indices` (sin, cos of
    each pair); the rotation then runs in data units, ``z · std + mean``, and its result is
    scaled back.

    Args:
        pairs: ``[(sin_index, cos_index, period_in_rows), ...]``, positions among the features.
        mean, std: default None (the columns hold sin and cos themselves): one number per clock
            column, in the order sin, cos of each pair.

    Example (hourly rows, ``Day sin``/``Day cos`` in columns 5 and 6)::

        clock = Clock([(5, 6, 24)])
        clock.future(x[:, -1], 3)     # (batch, 3, 2): the pair at the next three rows

    Example (standardised columns: sin 0, cos 1 are -0.25, 1.0; a quarter period later sin 1, cos 0):
        >>> clock = Clock([(0, 1, 4)], mean=[0.5, 0.0], std=[2.0, 1.0])
        >>> torch.allclose(clock.future(torch.tensor([[-0.25, 1.0]]), 1), torch.tensor([[[0.25, 0.0]]]), atol=1e-6)
        True
    """

    def __init__(
        self,
        pairs: Sequence[tuple[int, int, float]],
        mean: Sequence[float] | None = None,
        std: Sequence[float] | None = None,
    ) -> None:
        pairs = list(pairs)
        if not pairs:
            raise RnnkitError("pairs must hold at least one (sin_index, cos_index, period), got []")
        for p in pairs:
            ok = (
                isinstance(p, (tuple, list))
                and len(p) == 3
                and all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) and i >= 0 for i in p[:2])
            )
            if not ok or not isinstance(p[2], (int, float, np.integer, np.floating)) or not p[2] > 0:
                raise RnnkitError(f"pairs must be (sin_index >= 0, cos_index >= 0, period > 0) triples, got {p!r}")
        self.pairs = [(int(s), int(c), float(t)) for s, c, t in pairs]
        self.indices = [i for s, c, _ in self.pairs for i in (s, c)]
        if len(set(self.indices)) != len(self.indices):
            raise RnnkitError(f"pairs must not share a column, got {pairs!r}")
        if (mean is None) != (std is None):
            raise RnnkitError("mean and std must be given together (the clock columns' scaling), got one of them")
        self.mean = self.std = None
        if mean is not None:
            mean, std = [float(m) for m in mean], [float(s) for s in std]
            if len(mean) != len(self.indices) or len(std) != len(self.indices) or not all(s > 0 for s in std):
                raise RnnkitError(
                    f"mean and std must hold {len(self.indices)} numbers (std > 0), one per clock column, "
                    f"got {mean!r} and {std!r}"
                )
            self.mean, self.std = mean, std

    def future(self, row: torch.Tensor, target_length: int) -> torch.Tensor:
        """The clock columns of the ``target_length`` rows after ``row`` ``(batch, features)``: ``(batch, target_length, 2·pairs)``."""
        return self._rotate(row, torch.arange(1, target_length + 1, dtype=row.dtype, device=row.device))

    def at(self, row: torch.Tensor, k: int) -> torch.Tensor:
        """The clock columns ``k`` rows after ``row`` ``(batch, features)`` (k = 0: its own): ``(batch, 2·pairs)``."""
        return self._rotate(row, torch.tensor([float(k)], dtype=row.dtype, device=row.device))[:, 0]

    def _rotate(self, row: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
        out = []
        for j, (s_i, c_i, period) in enumerate(self.pairs):
            theta = 2 * math.pi * k / period  # (target_length,)
            s, c = row[:, s_i, None], row[:, c_i, None]  # (batch, 1)
            if self.mean is not None:  # standardised columns: rotate in data units
                s = s * self.std[2 * j] + self.mean[2 * j]
                c = c * self.std[2 * j + 1] + self.mean[2 * j + 1]
            s_next, c_next = s * theta.cos() + c * theta.sin(), c * theta.cos() - s * theta.sin()
            if self.mean is not None:
                s_next = (s_next - self.mean[2 * j]) / self.std[2 * j]
                c_next = (c_next - self.mean[2 * j + 1]) / self.std[2 * j + 1]
            out += [s_next, c_next]
        return torch.stack(out, -1)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, as JSON: ``Clock(**clock.get_config())`` is the same clock."""
        return {"pairs": [list(p) for p in self.pairs], "mean": self.mean, "std": self.std}

    @classmethod
    def from_config(cls, config: dict[str, Any] | None) -> Clock | None:
        """The clock of :meth:`get_config` (None for None: a model without a clock)."""
        return (
            None if config is None else cls([tuple(p) for p in config["pairs"]], config.get("mean"), config.get("std"))
        )

    def __repr__(self) -> str:
        return f"Clock({self.pairs})"


def _check_clock(clock: Clock | None, features: int) -> list[int]:
    if clock is None:
        return []
    if not isinstance(clock, Clock):
        raise RnnkitError(f"clock must be a Clock or None, got {type(clock).__name__}")
    if max(clock.indices) >= features:
        raise RnnkitError(f"clock columns must be < features={features}, got {clock.indices}")
    return clock.indices


# --- forecasters ---------------------------------------------------------------------------------


class DirectForecaster(KerasModel):
    """Every step at once: a recurrent encoder, then ``Dense(target_length · outputs)``.

    Args:
        features: input features per row.
        target_length: forecast steps K (>= 1).
        outputs: values per step (default 1: one target column).
        units: recurrent units (default 32).
        layer: ``"GRU"`` (default), ``"LSTM"`` or ``"SimpleRNN"``.

    Shapes: x ``(batch, sequence_length, features)`` → ``(batch, target_length, outputs)``.

    Example::

        model = DirectForecaster(7, target_length=24)
        Trainer(epochs=10).fit(model, make_windows(z, 120, target_length=24, targets="T (degC)"))
    """

    def __init__(
        self, features: int, target_length: int, outputs: int = 1, units: int = 32, layer: str = "GRU"
    ) -> None:
        super().__init__()
        self.features = check_positive_int("features", features)
        self.target_length = check_positive_int("target_length", target_length)
        self.outputs = check_positive_int("outputs", outputs)
        self.encoder = recurrent_layer(layer, check_positive_int("units", units), self.features)
        self.head = Dense(self.target_length * self.outputs, input_size=units)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        summary, _ = run_recurrent(self.encoder, x)  # (batch, units)
        return self.head(summary).view(x.shape[0], self.target_length, self.outputs)


class AutoregressiveForecaster(KerasModel):
    """One recurrent layer whose own one-step predictions are fed back as its next input rows.

    Which input features are fed back: every column that is not a :class:`Clock` column.
    The model predicts all of them for the next row (so a full input row exists for the
    next step), and the clock columns of that row come from ``clock`` (known in advance).
    Without a clock every feature is predicted. It returns the predictions of the fed-back
    columns, in input order, so train it on windows whose ``targets`` are exactly those
    columns and score the target column from the output (``output[..., j]``).

    Each step predicts the change from the row it read (``residual=True``, default): the
    next row is ``row + Dense(h)``. It is trained free-running, through its own feedback
    (back-propagation through all ``target_length`` steps), so training sees what inference sees.

    Args:
        features: input features per row (fed-back columns plus clock columns).
        target_length: forecast steps K (>= 1).
        units: recurrent units (default 32).
        layer: ``"GRU"`` (default), ``"LSTM"`` or ``"SimpleRNN"``.
        clock: a :class:`Clock` for the known time columns, or None (default).
        residual: predict the change from the last row instead of the value (default True).

    Shapes: x ``(batch, sequence_length, features)`` → ``(batch, target_length, features − clock columns)``.

    Example::

        model = AutoregressiveForecaster(7, target_length=24, clock=Clock([(5, 6, 24)]))
        y = model(x)                   # (batch, 24, 5): columns 0-4 of the next 24 rows
    """

    def __init__(
        self,
        features: int,
        target_length: int,
        units: int = 32,
        layer: str = "GRU",
        clock: Clock | None = None,
        residual: bool = True,
    ) -> None:
        super().__init__()
        self.features = check_positive_int("features", features)
        self.target_length = check_positive_int("target_length", target_length)
        clock_columns = _check_clock(clock, self.features)
        self.clock = clock
        self.fed_back = [i for i in range(self.features) if i not in clock_columns]
        if not self.fed_back:
            raise RnnkitError(
                f"at least one column must be fed back (not a clock column), got clock columns {clock_columns}"
            )
        # cat([fed-back values, clock values])[:, order] puts every column back in its place.
        self._column_order = torch.argsort(torch.tensor(self.fed_back + clock_columns)).tolist()
        self.residual = bool(residual)
        self.units, self.layer = check_positive_int("units", units), layer
        self.rnn = recurrent_layer(layer, self.units, self.features)
        self.head = Dense(len(self.fed_back), input_size=units)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, as JSON (the clock's too): :meth:`from_config` builds the same model."""
        return {
            "features": self.features,
            "target_length": self.target_length,
            "units": self.units,
            "layer": self.layer,
            "clock": self.clock.get_config() if self.clock is not None else None,
            "residual": self.residual,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> AutoregressiveForecaster:
        """A model of :meth:`get_config`'s architecture (untrained: load the weights after)."""
        return cls(**{**config, "clock": Clock.from_config(config.get("clock"))})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Warm up on all but the last row; the loop reads the last row first.
        state = run_recurrent(self.rnn, x[:, :-1])[1] if x.shape[1] > 1 else None
        row = x[:, -1]  # (batch, features)
        clock_rows = self.clock.future(row, self.target_length) if self.clock is not None else None
        predictions = []
        for k in range(self.target_length):
            h, state = run_recurrent(self.rnn, row[:, None], state)
            values = self.head(h)  # (batch, fed-back columns)
            if self.residual:
                values = values + row[:, self.fed_back]
            predictions.append(values)
            # The next input row: predictions in the fed-back columns, the clock in its own.
            row = values if clock_rows is None else torch.cat([values, clock_rows[:, k]], -1)[:, self._column_order]
        return torch.stack(predictions, 1)


class Seq2SeqForecaster(KerasModel):
    """Encoder–decoder: an encoder summarises the window, a decoder unrolls ``target_length`` steps.

    The encoder reads every feature of the window; its final state is the decoder's initial
    state. Decoder input at step k: its own previous prediction of the targets (at k = 0 the
    last observed target values) and, with a ``clock``, the clock columns of the row being
    predicted (known in advance), and with ``known_future = C`` the C columns that the window's last
    row carries for that step (``make_windows(..., known_future=...)`` appends them: step k's are
    columns ``features + k·C`` … ``features + (k+1)·C − 1``). Output: ``Dense(outputs)`` of the decoder state, added to
    the previous prediction when ``residual`` (default). No teacher forcing: it is trained
    free-running, like it runs at inference, so the plain Trainer fits it on ``(x, y)``.

    Args:
        features: input features per row.
        target_length: forecast steps K (>= 1).
        target_index: position(s) of the target column(s) among the features.
        units: recurrent units of encoder and decoder (default 32).
        layer: ``"GRU"`` (default), ``"LSTM"`` or ``"SimpleRNN"`` (both parts).
        clock: a :class:`Clock` for the known time columns, or None (default).
        residual: predict the change from the previous prediction (default True).
        known_future: known-future columns per target step that x carries after its features (default 0);
            the encoder reads the features only, the decoder step k its step's known columns.

    Shapes: x ``(batch, sequence_length, features + known_future · target_length)`` →
    ``(batch, target_length, len(target_index))``.

    Example::

        model = Seq2SeqForecaster(7, target_length=24, target_index=0, clock=Clock([(5, 6, 24)]))
    """

    def __init__(
        self,
        features: int,
        target_length: int,
        target_index: int | Sequence[int],
        units: int = 32,
        layer: str = "GRU",
        clock: Clock | None = None,
        residual: bool = True,
        known_future: int = 0,
    ) -> None:
        super().__init__()
        self.features = check_positive_int("features", features)
        self.target_length = check_positive_int("target_length", target_length)
        self.target_index = _column_list("target_index", target_index, self.features)
        if isinstance(known_future, bool) or not isinstance(known_future, int) or known_future < 0:
            raise RnnkitError(f"known_future must be an integer >= 0 (known columns per step), got {known_future!r}")
        self.known_future = known_future
        _check_clock(clock, self.features)
        self.clock = clock
        self.residual = bool(residual)
        self.units, self.layer = units, layer = check_positive_int("units", units), layer
        decoder_inputs = len(self.target_index) + (len(clock.indices) if clock is not None else 0) + known_future
        self.encoder = recurrent_layer(layer, units, self.features)
        self.decoder = recurrent_layer(layer, units, decoder_inputs)
        self.head = Dense(len(self.target_index), input_size=units)

    def get_config(self) -> dict[str, Any]:
        """The constructor's arguments, as JSON (the clock's too): :meth:`from_config` builds the same model."""
        return {
            "features": self.features,
            "target_length": self.target_length,
            "target_index": list(self.target_index),
            "units": self.units,
            "layer": self.layer,
            "clock": self.clock.get_config() if self.clock is not None else None,
            "residual": self.residual,
            "known_future": self.known_future,
        }

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Seq2SeqForecaster:
        """A model of :meth:`get_config`'s architecture (untrained: load the weights after)."""
        return cls(**{**config, "clock": Clock.from_config(config.get("clock"))})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        F, C = self.features, self.known_future
        if C:
            if x.shape[-1] != F + C * self.target_length:
                raise RnnkitError(
                    f"x must have {F + C * self.target_length} columns ({F} features + {C} known-future "
                    f"columns x {self.target_length} steps), got {x.shape[-1]}"
                )
            known = x[:, -1, F:].unflatten(-1, (self.target_length, C))  # (batch, K, C): each step's known values
            x = x[..., :F]
        _, state = run_recurrent(self.encoder, x)
        previous = x[:, -1, self.target_index]  # (batch, targets)
        clock_rows = self.clock.future(x[:, -1], self.target_length) if self.clock is not None else None
        predictions = []
        for k in range(self.target_length):
            step_input = previous if clock_rows is None else torch.cat([previous, clock_rows[:, k]], -1)
            if C:
                step_input = torch.cat([step_input, known[:, k]], -1)
            h, state = run_recurrent(self.decoder, step_input[:, None], state)
            previous = self.head(h) + (previous if self.residual else 0.0)
            predictions.append(previous)
        return torch.stack(predictions, 1)
