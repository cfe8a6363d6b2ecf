"""Per-column standardisation, fit on the training part only and stored with the model."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch

from rnnkit.errors import RnnkitError


class Standardizer:
    """z = (x − mean) / std per column, with statistics from the training part only.

    ``std`` is the population standard deviation (ddof 0, as numpy and Chollet use).
    Policy for a constant column (std 0): :meth:`fit` raises ValueError naming it — dividing by
    zero is meaningless and a constant input carries no information, so drop the column.
    NaN or inf in the data also raise.

    Example:
        >>> train = pd.DataFrame({"T (degC)": [1.0, 3.0], "p (mbar)": [990.0, 1010.0]})
        >>> scaler = Standardizer().fit(train)          # DataFrame, array or tensor
        >>> scaler.transform(train)["T (degC)"].tolist()
        [-1.0, 1.0]
        >>> scaler.inverse_transform_column(np.array([0.5]), "T (degC)").tolist()
        [2.5]
    """

    def __init__(self) -> None:
        self.mean: np.ndarray | None = None
        self.std: np.ndarray | None = None
        self.columns: list[str] | None = None

    def fit(self, data) -> Standardizer:
        """Compute each column's mean and std from ``data`` ``(rows, features)``; returns self."""
        arr, names = _as_2d(data, "data")
        if len(arr) == 0:
            raise RnnkitError("data must hold at least one row to fit a Standardizer, got 0 rows")
        bad = ~np.isfinite(arr)
        if bad.any():
            cols = [names[i] for i in np.flatnonzero(bad.any(axis=0))]
            raise RnnkitError(f"data holds NaN or inf in columns {cols}; clean them before fitting")
        mean = arr.mean(axis=0)
        std = arr.std(axis=0)
        zero = std == 0
        if zero.any():
            cols = [names[i] for i in np.flatnonzero(zero)]
            raise RnnkitError(f"columns {cols} are constant (std 0) in the fitting data; drop them before scaling")
        self.mean, self.std, self.columns = mean, std, names
        return self

    def _check_fitted(self) -> None:
        if self.mean is None:
            raise RnnkitError("Standardizer is not fitted; call fit(train) first")

    def _stats_for(self, data) -> tuple[np.ndarray, np.ndarray]:
        self._check_fitted()
        if isinstance(data, pd.DataFrame):
            names = [str(c) for c in data.columns]
            if names != self.columns:
                raise RnnkitError(f"data has columns {names}, but the Standardizer was fit on {self.columns}")
        width = data.shape[-1] if getattr(data, "ndim", 1) > 1 else 1
        if width != len(self.columns):
            raise RnnkitError(f"data has {width} features, but the Standardizer was fit on {len(self.columns)}")
        return self.mean, self.std

    def transform(self, data):
        """Standardise ``data`` (..., features); returns the input's type (DataFrame, array, tensor)."""
        mean, std = self._stats_for(data)
        return _apply(data, lambda v, m, s: (v - m) / s, mean, std)

    def inverse_transform(self, data):
        """Undo :meth:`transform` for data with every fitted column (..., features)."""
        mean, std = self._stats_for(data)
        return _apply(data, lambda v, m, s: v * s + m, mean, std)

    def column_index(self, column) -> int:
        """Position of a fitted column given by name or index."""
        self._check_fitted()
        if isinstance(column, str):
            if column not in self.columns:
                raise RnnkitError(f"column {column!r} was not fitted; fitted columns are {self.columns}")
            return self.columns.index(column)
        if isinstance(column, int | np.integer) and -len(self.columns) <= column < len(self.columns):
            return int(column) % len(self.columns)
        raise RnnkitError(f"column must be a fitted column name or index < {len(self.columns)}, got {column!r}")

    def transform_column(self, values, column):
        """Standardise values of one column (any shape) with that column's statistics."""
        i = self.column_index(column)
        return (values - float(self.mean[i])) / float(self.std[i])

    def inverse_transform_column(self, values, column):
        """Back to the column's own units (e.g. °C) for values of one column, any shape."""
        i = self.column_index(column)
        return values * float(self.std[i]) + float(self.mean[i])

    def to_dict(self) -> dict:
        """The statistics as plain JSON-able data."""
        self._check_fitted()
        return {"columns": list(self.columns), "mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict) -> Standardizer:
        """Rebuild from :meth:`to_dict`'s output."""
        try:
            columns, mean, std = list(d["columns"]), np.asarray(d["mean"], float), np.asarray(d["std"], float)
        except (KeyError, TypeError, ValueError) as e:
            raise RnnkitError(
                f"a scaler needs 'columns' (names), 'mean' and 'std' (numbers), got {_short(d)} ({e})"
            ) from None
        if (
            mean.ndim != 1
            or not (len(columns) == len(mean) == len(std))
            or not np.isfinite(mean).all()
            or not np.isfinite(std).all()
            or (std <= 0).any()
        ):
            raise RnnkitError(
                f"a scaler's 'columns', 'mean' and 'std' must be lists of one length, the numbers "
                f"finite and std > 0, got {_short(d)}"
            )
        s = cls()
        s.columns, s.mean, s.std = [str(c) for c in columns], mean, std
        return s

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Standardizer:
        return cls.from_dict(json.loads(text))


def _short(value, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _as_2d(data, what: str) -> tuple[np.ndarray, list[str]]:
    if isinstance(data, pd.DataFrame):
        return data.to_numpy(dtype=np.float64), [str(c) for c in data.columns]
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    arr = np.asarray(data, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise RnnkitError(f"{what} must have shape (rows, features), got shape {arr.shape}")
    return arr, [str(i) for i in range(arr.shape[1])]


def _apply(data, fn, mean: np.ndarray, std: np.ndarray):
    if isinstance(data, pd.DataFrame):
        return pd.DataFrame(fn(data.to_numpy(dtype=np.float64), mean, std), index=data.index, columns=data.columns)
    if isinstance(data, torch.Tensor):
        m = torch.as_tensor(mean, dtype=data.dtype, device=data.device)
        s = torch.as_tensor(std, dtype=data.dtype, device=data.device)
        return fn(data, m if data.ndim > 1 else m[0], s if data.ndim > 1 else s[0])
    arr = np.asarray(data)
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.float64
    return fn(arr.astype(dtype, copy=False), mean.astype(dtype), std.astype(dtype)).astype(dtype, copy=False)
