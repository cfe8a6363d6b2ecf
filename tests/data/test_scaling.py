"""Standardizer: statistics from training data only, exact inverse, JSON round trip, refusals."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data import Standardizer, split


def test_fit_on_train_only_and_transform_values():
    df = pd.DataFrame({"T": [1.0, 2.0, 3.0, 4.0, 100.0], "p": [10.0, 10.0, 12.0, 12.0, -50.0]})
    train, test = split(df, (0.8, 0.2))
    s = Standardizer().fit(train)
    np.testing.assert_allclose(s.mean, [2.5, 11.0])
    np.testing.assert_allclose(s.std, [np.sqrt(1.25), 1.0])  # population std (ddof 0)
    z = s.transform(test)
    assert isinstance(z, pd.DataFrame) and list(z.columns) == ["T", "p"]
    np.testing.assert_allclose(z.to_numpy(), [[(100 - 2.5) / np.sqrt(1.25), -61.0]])
    np.testing.assert_allclose(s.inverse_transform(z).to_numpy(), test.to_numpy())


def test_arrays_tensors_and_single_column_inverse(seed):
    x = seed.normal(3.0, 2.0, size=(50, 3)).astype(np.float32)
    s = Standardizer().fit(x)
    z = s.transform(x)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)
    zt = s.transform(torch.from_numpy(x))
    np.testing.assert_allclose(zt.numpy(), z, atol=1e-6)
    # predictions of column 2 only, back in the data's units
    np.testing.assert_allclose(s.inverse_transform_column(z[:, 2], 2), x[:, 2], atol=1e-5)
    np.testing.assert_allclose(s.transform_column(x[:, 2], "2"), z[:, 2], atol=1e-6)


def test_json_round_trip():
    s = Standardizer().fit(pd.DataFrame({"T (degC)": [0.0, 2.0], "p (mbar)": [990.0, 1000.0]}))
    s2 = Standardizer.from_json(s.to_json())
    assert s2.columns == ["T (degC)", "p (mbar)"]
    assert s2.inverse_transform_column(1.0, "T (degC)") == 2.0
    np.testing.assert_array_equal(s2.mean, s.mean)


def test_zero_variance_column_is_refused():
    df = pd.DataFrame({"T": [1.0, 2.0, 3.0], "const": [5.0, 5.0, 5.0]})
    with pytest.raises(ValueError, match=re.escape("columns ['const'] are constant (std 0) in the fitting data")):
        Standardizer().fit(df)


def test_nan_is_refused():
    with pytest.raises(ValueError, match=re.escape("data holds NaN or inf in columns ['1']")):
        Standardizer().fit(np.array([[1.0, 2.0], [2.0, np.nan]]))


def test_unfitted_and_mismatched_use_is_refused():
    with pytest.raises(ValueError, match="Standardizer is not fitted; call fit"):
        Standardizer().transform(np.zeros((2, 2)))
    s = Standardizer().fit(pd.DataFrame({"a": [1.0, 2.0], "b": [3.0, 5.0]}))
    with pytest.raises(
        ValueError, match=re.escape("data has columns ['b', 'a'], but the Standardizer was fit on ['a', 'b']")
    ):
        s.transform(pd.DataFrame({"b": [1.0], "a": [2.0]}))
    with pytest.raises(ValueError, match="data has 3 features, but the Standardizer was fit on 2"):
        s.transform(np.zeros((4, 3)))
    with pytest.raises(ValueError, match=re.escape("column 'c' was not fitted; fitted columns are ['a', 'b']")):
        s.inverse_transform_column(1.0, "c")
    with pytest.raises(ValueError, match="a scaler.s .columns., .mean. and .std. must be lists of one length"):
        Standardizer.from_dict({"columns": ["a"], "mean": [0.0], "std": [0.0]})
