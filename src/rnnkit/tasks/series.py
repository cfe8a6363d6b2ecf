"""The series data path that the window tasks share: file -> columns -> split -> scaling -> windows.

Regression and classification both read a series (``config.data``), split it in time, fit the
:class:`~rnnkit.data.Standardizer` on the training part only and cut every part into windows
(``config.windows``); :func:`prepare` does that once and returns a :class:`Prepared`. A task module
builds on it; this module knows nothing of any task.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from rnnkit import datasets
from rnnkit.config import ExperimentConfig, ModelConfig, RowParts, WindowConfig, build_layer
from rnnkit.data import Standardizer, Windows, make_windows, split, split_per_segment, stream_batches
from rnnkit.datasets.jena import describe_source
from rnnkit.errors import RnnkitError
from rnnkit.models import Sequential

PARTS = ("train", "val", "test")
PART_NAMES = {"train": "training", "val": "validation", "test": "test"}


def require_windows(config: ExperimentConfig) -> None:
    """A series task reads windows: the config must have its [windows] table."""
    if config.windows is None:
        raise ValueError(f"missing key 'windows' (the [windows] table with sequence_length) for task = {config.task!r}")


def load_frame(config: ExperimentConfig, paths: list[str] | None = None) -> pd.DataFrame:
    """The series of ``config.data`` as a DataFrame (data units), with only the wanted columns."""
    data = config.data
    chosen = list(paths) if paths else list(data.paths)
    if data.dataset == "teddy":
        raise RnnkitError(
            "data.dataset 'teddy' is a corpus of tagged sentences, not a series: it has no rows "
            "or windows (task = 'tagging' reads it through rnnkit.models.taggers)"
        )
    if data.dataset == "jena":
        frame = datasets.jena_climate(
            chosen or None,
            columns=data.columns,
            derived=data.derived,
            step=data.step,
            how="position" if data.gaps == "ignore" and data.how == "every" else data.how,
            source=data.source,
        )
    else:
        if len(chosen) > 1:
            raise RnnkitError(f"the sunspots dataset reads one file, got {len(chosen)}")
        frame = datasets.sunspots(chosen[0] if chosen else None)
        if data.step > 1:
            frame = frame.iloc[data.step - 1 :: data.step] if data.how == "every" else _block_mean(frame, data.step)
    return select_columns(frame, data.features, data.target)


def _block_mean(frame: pd.DataFrame, step: int) -> pd.DataFrame:
    n = len(frame) // step * step
    blocks = frame.iloc[:n].to_numpy().reshape(-1, step, frame.shape[1]).mean(axis=1)
    return pd.DataFrame(blocks, index=frame.index[step - 1 : n : step], columns=frame.columns)


def select_columns(frame: pd.DataFrame, features: list[str] | None, target: str) -> pd.DataFrame:
    """Keep ``features`` (all columns when None) with the target among them (persistence needs it)."""
    columns = [str(c) for c in frame.columns]
    if target not in columns:
        raise RnnkitError(f"target column {target!r} is not in the data; its columns are {columns}")
    wanted = list(features) if features is not None else columns
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise RnnkitError(f"data.features names columns the data does not have: {missing}; it has {columns}")
    if target not in wanted:
        wanted.append(target)
    out = frame[wanted]
    bad = out.columns[out.isna().any()].tolist()
    if bad:
        raise RnnkitError(f"the data holds NaN in columns {bad} after cleaning")
    return out


def units_of(column: str) -> str:
    """``"degC"`` for ``"T (degC)"``: the text in the column name's last parentheses."""
    match = re.search(r"\(([^()]*)\)\s*$", column)
    return match.group(1) if match else ""


@dataclass
class Prepared:
    """The data of an experiment, scaled and windowed per part (train, val, test)."""

    config: ExperimentConfig
    frame: pd.DataFrame
    scaler: Standardizer
    parts: dict[str, list[pd.DataFrame]]  # scaled, one frame per contiguous piece
    windows: dict[str, Windows]
    target_index: int

    @property
    def target(self) -> str:
        return self.config.data.target

    @property
    def features(self) -> list[str]:
        return [str(c) for c in self.frame.columns]

    @property
    def input_shape(self) -> tuple[int, int]:
        """(sequence_length, input columns): the features, then the known-future columns of each target step."""
        return (self.config.windows.sequence_length, len(self.features) + known_columns(self.config.windows))

    @property
    def scale(self) -> float:
        return float(self.scaler.std[self.target_index])

    @property
    def offset(self) -> float:
        return float(self.scaler.mean[self.target_index])

    @property
    def per_step(self) -> bool:
        """A target for every input step (windows.return_sequences): outputs (batch, T, 1)."""
        return self.config.windows.return_sequences

    @property
    def target_length(self) -> int:
        """Forecast steps per window (windows.target_length): outputs (batch, target_length[, 1])."""
        return self.config.windows.target_length

    def to_units(self, values: torch.Tensor) -> np.ndarray:
        return values.detach().cpu().numpy().reshape(-1) * self.scale + self.offset

    def last_step(self, values: torch.Tensor) -> torch.Tensor:
        """Per-step values (batch, T, 1) or K forecast steps -> those of the last step; others unchanged."""
        if self.target_length > 1:
            return values[:, -1]
        return values[:, -1] if self.per_step and values.dim() == 3 else values

    def target_times(self, part: str) -> pd.DatetimeIndex:
        """The timestamp of each target of ``part``'s windows."""
        index = pd.Index(np.concatenate([p.index.to_numpy() for p in self.parts[part]]))
        rows = self.windows[part].target_rows
        rows = rows[:, -1] if rows.dim() == 2 else rows  # per-step or multi-step targets: the last step's
        return pd.DatetimeIndex(index[rows.numpy()])

    def streams(self, part: str, batch_size: int):
        """Stateful batches of ``part``: contiguous streams, so row b of batch k+1 continues row b of batch k."""
        pieces = self.parts[part]
        piece = max(pieces, key=len)  # streams need one contiguous series: the longest piece
        if self.config.data.gaps == "ignore":  # rows by position: the clock's gaps do not cut the stream
            piece = piece.reset_index(drop=True)
        w = self.config.windows
        try:
            return stream_batches(piece, batch_size, w.sequence_length, horizon=w.horizon, targets=self.target)
        except ValueError as e:
            raise RnnkitError(f"{PART_NAMES[part]} part: {e}") from None


def prepare(config: ExperimentConfig, frame: pd.DataFrame, parts: RowParts | None = None) -> Prepared:
    """Split in time, fit the scaler on the training part only, and cut each part into windows.

    ``parts`` (default: ``config.data.parts``) gives the parts as row ranges instead of ``data.split``:
    a backtest fold's (rnnkit.backtest). Each part's windows come from its own rows only.
    """
    fractions = tuple(config.data.split)
    parts = parts if parts is not None else config.data.parts
    if parts is not None:
        split_parts = rows_parts(frame, parts)
    else:
        try:
            if config.data.split_by == "windows":
                split_parts = split_windows(frame, config)
            elif config.data.split_per_segment:
                split_parts = split_per_segment(frame, fractions, min_rows=window_span(config))
            else:
                split_parts = tuple([piece] for piece in split(frame, fractions))
        except ValueError as e:
            raise RnnkitError(f"cannot split {len(frame)} rows by {list(fractions)}: {e}") from None
    pieces = dict(zip(PARTS, split_parts))
    if not pieces["train"]:  # every segment is shorter than one window, so split_per_segment kept none
        w = config.windows
        raise RnnkitError(
            f"windows.sequence_length {w.sequence_length} is too long for the data: a window spans "
            f"{window_span(config)} rows (sequence_length, sampling_rate {w.sampling_rate}, horizon {w.horizon}), "
            f"and no contiguous segment of the {len(frame)} rows is that long"
        )
    scaler = Standardizer().fit(pd.concat(pieces["train"]))
    scaled = {p: [scaler.transform(piece) for piece in pieces[p]] for p in PARTS}
    windows: dict[str, Windows] = {}
    for part in PARTS:
        try:
            windows[part] = part_windows(config, scaled[part], config.data.target)
        except ValueError as e:
            rows = sum(len(p) for p in pieces[part])
            raise RnnkitError(
                f"the {PART_NAMES[part]} part ({rows} rows of {len(frame)}) yields no window: {e}. "
                f"The config '{config.name}' needs a longer series"
                + (
                    " (the 2009-2016 benchmark file jena_climate_2009_2016.csv in RNNKIT_DATA_DIR)"
                    if config.data.dataset == "jena"
                    else ""
                )
            ) from None
    target_index = scaler.column_index(config.data.target)
    return Prepared(config, frame, scaler, scaled, windows, target_index)


def rows_parts(frame: pd.DataFrame, parts: RowParts) -> tuple[list[pd.DataFrame], ...]:
    """The parts of ``frame`` at the row ranges of ``parts`` (``[start, stop)`` by position), one piece each."""
    if parts.test[1] > len(frame):
        raise RnnkitError(f"data.parts: the test part ends at row {parts.test[1]}, but the data hold {len(frame)} rows")
    return tuple([frame.iloc[start:stop]] for start, stop in (parts.train, parts.val, parts.test))


def window_span(config: ExperimentConfig) -> int:
    """The rows one window of ``config`` spans, from its first input to its last target."""
    w = config.windows
    last_input = (w.sequence_length - 1) * w.sampling_rate
    return last_input + w.horizon + (w.target_length - 1) * w.sampling_rate + 1


def known_columns(w: WindowConfig) -> int:
    """The input columns that ``windows.known_future`` adds: each declared column once per target step."""
    return len(w.known_future) * (1 if w.return_sequences else w.target_length)


def part_windows(config: ExperimentConfig, pieces: list[pd.DataFrame], targets: str | list[str]) -> Windows:
    """The windows of one part's scaled pieces (each piece a segment), with ``targets`` as y.

    :func:`prepare` cuts the target column's; a task that trains on other columns (the
    autoregressive forecaster predicts every fed-back column) cuts the same windows with its own.
    """
    w = config.windows
    # A DataFrame keeps its own gaps; a list of pieces makes each piece a segment.
    data: Any = pieces if len(pieces) > 1 else pieces[0]
    if config.data.gaps == "ignore":  # rows by position: no timestamps, one segment per piece
        data = [p.reset_index(drop=True) for p in data] if isinstance(data, list) else data.reset_index(drop=True)
    return make_windows(
        data,
        w.sequence_length,
        shift=w.shift,
        sampling_rate=w.sampling_rate,
        horizon=w.horizon,
        targets=targets,
        return_sequences=w.return_sequences,
        target_length=w.target_length,
        known_future=w.known_future,
    )


def split_windows(frame: pd.DataFrame, config: ExperimentConfig) -> tuple[list[pd.DataFrame], ...]:
    """The course's split: the windows of the whole series, in order, split by ``data.split``.

    Each part is returned as the rows its windows span (from its first window's first input to its
    last window's last target), so parts overlap by a window's length at most and cutting windows
    within a part gives back exactly its windows. Rows are taken by position.
    """
    w = config.windows
    span = (w.sequence_length - 1) * w.sampling_rate + w.horizon + (w.target_length - 1) * w.sampling_rate + 1
    n = (len(frame) - span) // w.shift + 1 if len(frame) >= span else 0
    fractions = config.data.split
    counts = [int(fractions[0] * n), int(fractions[1] * n)]
    counts.append(n - sum(counts))
    if min(counts) < 1:
        raise RnnkitError(
            f"{n} windows of {span} rows cannot be split into {list(fractions)} with a window in each part"
        )
    parts, first = [], 0
    for count in counts:
        start, stop = first * w.shift, (first + count - 1) * w.shift + span
        parts.append([frame.iloc[start:stop]])
        first += count
    return tuple(parts)


def with_data_paths(config: ExperimentConfig, data_paths: list[str] | None) -> ExperimentConfig:
    """``config`` reading ``data_paths`` instead (resolved, so the saved config names the files the run used)."""
    if not data_paths:
        return config
    resolved = [str(Path(p).resolve()) for p in data_paths]
    return config.model_copy(update={"data": config.data.model_copy(update={"paths": resolved})})


def data_used(frame: pd.DataFrame) -> dict[str, Any] | None:
    """The files a frame was read from and its resolution (config.json's and metrics.json's ``data_used``)."""
    if not frame.attrs.get("files"):
        return None
    return {
        "files": list(frame.attrs["files"]),
        "embedded_record": bool(frame.attrs.get("embedded")),
        "file_resolution": frame.attrs.get("file_resolution"),
        "resolution": frame.attrs.get("resolution"),
    }


def data_counts(prepared: Prepared) -> dict[str, Any]:
    """``windows`` per part and ``rows`` of the series, as the metrics documents record them."""
    return {"windows": {part: len(prepared.windows[part]) for part in PARTS}, "rows": len(prepared.frame)}


def ahead(prepared: Prepared) -> str:
    """The horizon as a duration, e.g. ``"24 h"`` (or in rows when the step is not regular)."""
    step = pd.Series(prepared.frame.index).diff().median()
    w = prepared.config.windows
    horizon = w.horizon + (w.target_length - 1) * w.sampling_rate  # the last forecast step's
    if pd.isna(step):
        return f"{horizon} rows"
    ahead = horizon * step
    return f"{ahead / pd.Timedelta(hours=1):g} h" if ahead < pd.Timedelta(days=14) else f"{ahead.days} days"


def rows_per_day(prepared: Prepared) -> int:
    step = pd.Series(prepared.frame.index).diff().median()
    return max(1, int(pd.Timedelta("1D") / step)) if pd.notna(step) and step > pd.Timedelta(0) else 100


def describe_prepared(prepared: Prepared) -> str:
    """What the windowing produced: rows, windows and periods of each part."""
    w = prepared.config.windows
    lines = [
        *([describe_source(prepared.frame)] if prepared.frame.attrs.get("files") else []),
        f"data: {len(prepared.frame):,} rows x {len(prepared.features)} features, "
        f"{prepared.frame.index[0]} to {prepared.frame.index[-1]}; target {prepared.target!r}",
        f"windows: sequence_length {w.sequence_length}, shift {w.shift}, sampling_rate {w.sampling_rate}, "
        f"horizon {w.horizon}"
        + (", a target for every input step (return_sequences)" if w.return_sequences else "")
        + (
            f", target_length {w.target_length} (the next {w.target_length} rows, every sampling_rate)"
            if w.target_length > 1
            else ""
        )
        + (
            (
                ", residual target (change from the input at each step)"
                if w.return_sequences
                else ", residual target (change from the last input)"
            )
            if w.residual
            else ""
        ),
        *(
            [
                f"known future: {', '.join(w.known_future)} at the target time (each input row also carries them "
                f"{w.horizon} rows on{', at every target step' if w.target_length > 1 else ''}); no other column is "
                f"read past a window's last row"
            ]
            if w.known_future
            else []
        ),
    ]
    for part in PARTS:
        pieces = prepared.parts[part]
        rows = sum(len(p) for p in pieces)
        span = ", ".join(f"{p.index[0]:%Y-%m-%d} to {p.index[-1]:%Y-%m-%d}" for p in pieces)
        lines.append(f"  {PART_NAMES[part]:<10} {rows:>7,} rows, {len(prepared.windows[part]):>6,} windows ({span})")
    return "\n".join(lines)


def describe_windows(config: ExperimentConfig, data_paths: list[str] | None = None) -> str:
    """What the windowing of a config produces, with the rows and times of some windows."""
    prepared = prepare(config, load_frame(config, data_paths))
    lines = [describe_prepared(prepared)]
    for part in PARTS:
        w = prepared.windows[part]
        index = pd.Index(np.concatenate([p.index.to_numpy() for p in prepared.parts[part]]))
        lines.append(f"\n{PART_NAMES[part]}: {len(w):,} windows, x {tuple(w.x.shape)}, y {tuple(w.y.shape)}")
        for i in sorted({0, 1, len(w) - 1} & set(range(len(w)))):
            inputs, targets = w.rows(i)
            lines.append(
                f"  window {i}: inputs {pd.Timestamp(index[inputs[0]]):%Y-%m-%d %H:%M} to "
                f"{pd.Timestamp(index[inputs[-1]]):%Y-%m-%d %H:%M} ({len(inputs)} rows), "
                f"target {pd.Timestamp(index[targets[0]]):%Y-%m-%d %H:%M}"
                + (
                    f" to {pd.Timestamp(index[targets[-1]]):%Y-%m-%d %H:%M} ({len(targets)} steps)"
                    if w.target_length > 1
                    else ""
                )
            )
    return "\n".join(lines)


def reading_new_files(config: ExperimentConfig) -> ExperimentConfig:
    """A run's config as it reads other data files (``predict``, ``evaluate --data``): the run's
    columns, derived features and step, but the loader's time rules whatever the run's ``gaps``:
    duplicated stamps dropped and a window never across a gap, so every command reads a file
    alike (``rnnkit data``'s rows). A course config's ``gaps = "ignore"`` (rows by position) would
    otherwise refuse the embedded record, whose 24 stamps repeat."""
    return config.model_copy(update={"data": config.data.model_copy(update={"gaps": "respect", "source": "auto"})})


def new_windows(config: ExperimentConfig, scaler: Any, name: str, description: dict[str, Any], data_paths: list[str]):
    """The frame of new data files (the model's features) and its windows, scaled by the run's scaler."""
    meta = description.get("metadata", {})
    features = list(meta.get("features", scaler.columns))
    config = reading_new_files(config)
    frame = load_frame(config, data_paths)
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise RnnkitError(f"the data does not fit the model {name!r}: it lacks the columns {missing}")
    frame = frame[features]
    w = config.windows
    scaled = scaler.transform(frame)
    if w.known_future:  # read at the target rows: only windows whose targets lie in the file are forecast
        windows = make_windows(
            scaled,
            w.sequence_length,
            shift=1,
            sampling_rate=w.sampling_rate,
            horizon=w.horizon,
            target_length=w.target_length,
            targets=config.data.target,
            return_sequences=w.return_sequences,
            known_future=w.known_future,
        )
    else:
        windows = make_windows(
            scaled,
            w.sequence_length,
            shift=1,
            sampling_rate=w.sampling_rate,
            horizon=0,
            targets=config.data.target,
        )
    return frame, windows


def window_summaries(config: ExperimentConfig, specs: list[ModelConfig], features: int | None = None) -> str:
    """The summary table of every model of ``specs``, for inputs of (sequence_length, features)."""
    note = ""
    if features is None:
        try:
            features = load_frame(config).shape[1]
            note = "(features counted in the data found)"
        except (RnnkitError, ValueError, FileNotFoundError):
            features, note = 14, "(no data found: 14 features assumed, as in the benchmark file)"
    shape = (config.windows.sequence_length, features + known_columns(config.windows))
    if config.windows.known_future:
        note = f"{note} (+ {known_columns(config.windows)} known-future columns)".strip()
    blocks = [f"{config.name}: input_shape {shape} {note}".rstrip()]
    for spec in specs:
        if spec.members:  # an ensemble: its members' summaries are above it
            blocks.append(f"\n{spec.name}: an ensemble, the mean of {', '.join(spec.members)} (trains nothing)")
            continue
        try:
            net = Sequential(*[build_layer(s) for s in spec.layers], input_shape=shape)
        except ValueError as e:
            raise RnnkitError(f"model '{spec.name}': {e}") from None
        residual = config.windows.residual if spec.residual is None else spec.residual
        blocks.append(f"\n{spec.name}" + (" (predicts the change from the last input)" if residual else ""))
        blocks.append(net.summary())
    return "\n".join(blocks)
