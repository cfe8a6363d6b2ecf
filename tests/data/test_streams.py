"""stream_batches: row b of batch k+1 continues row b of batch k."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data import stream_batches


def test_streams_continue_across_batches_many_to_one():
    data = np.stack([np.arange(23.0), -np.arange(23.0)], axis=1)
    s = stream_batches(data, batch_size=3, sequence_length=2, horizon=1, targets=0)
    # 22 usable rows (row 22 only serves as a target) → 3 streams of 7 rows → 3 chunks of 2
    assert s.stream_length == 7 and len(s) == 3
    batches = list(s)
    assert batches[0][0][:, :, 0].tolist() == [[0, 1], [7, 8], [14, 15]]
    assert batches[1][0][:, :, 0].tolist() == [[2, 3], [9, 10], [16, 17]]
    assert batches[2][0][:, :, 0].tolist() == [[4, 5], [11, 12], [18, 19]]
    for k in range(len(s) - 1):  # continuity: the next chunk of stream b starts one row after
        assert torch.equal(batches[k + 1][0][:, 0, 0], batches[k][0][:, -1, 0] + 1)
    assert batches[1][1].tolist() == [[4], [11], [18]]  # target of the chunk's last row
    assert s.target_rows[1].tolist() == [4, 11, 18]
    assert batches[0][0][:, :, 1].tolist() == [[0, -1], [-7, -8], [-14, -15]]


def test_many_to_many_targets():
    s = stream_batches(np.arange(12.0), batch_size=2, sequence_length=3, horizon=2, return_sequences=True)
    # 10 usable rows → 2 streams of 5 → one chunk of 3 each
    x, y = s[0]
    assert x[:, :, 0].tolist() == [[0, 1, 2], [5, 6, 7]]
    assert y[:, :, 0].tolist() == [[2, 3, 4], [7, 8, 9]]
    assert s.rows.tolist() == [[[0, 1, 2], [5, 6, 7]]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"batch_size": 0}, "batch_size must be positive (>= 1), got 0"),
        ({"sequence_length": 0}, "sequence_length must be positive (>= 1), got 0"),
        ({"horizon": -1}, "horizon must be >= 0, got -1"),
        (
            {"sequence_length": 6},
            "sequence_length 6 is too long for the data: 10 rows with horizon 1 give "
            "2 streams of 4 rows, fewer than one chunk",
        ),
        ({"targets": "x"}, "targets: column 'x' is not in the data"),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        stream_batches(np.arange(10.0), **{"batch_size": 2, "sequence_length": 2, **kwargs})


def test_data_with_gaps_is_refused():
    index = pd.date_range("2024-01-01", periods=5, freq="h").append(pd.date_range("2024-02-01", periods=5, freq="h"))
    df = pd.DataFrame({"v": np.arange(10.0)}, index=index)
    with pytest.raises(ValueError, match="data has 2 contiguous segments"):
        stream_batches(df, 1, 2)
