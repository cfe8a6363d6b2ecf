"""split: chronological parts; windows made per part never touch a later part."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rnnkit.data import make_windows, split, split_per_segment


def test_fraction_sizes_follow_chollets_convention():
    n = 420_551
    train, val, test = split(np.arange(n), (0.5, 0.25, 0.25))
    # int(0.5 n), int(0.25 n), the rest: Chollet's num_train_samples / num_val_samples.
    assert (len(train), len(val), len(test)) == (210_275, 105_137, 105_139)
    assert train[-1] + 1 == val[0] and val[-1] + 1 == test[0] and test[-1] == n - 1


def test_parts_keep_type_and_are_views():
    arr = np.arange(20.0).reshape(10, 2)
    a, b = split(arr, (0.6, 0.4))
    assert np.shares_memory(a, arr) and a.tolist() == arr[:6].tolist() and b.tolist() == arr[6:].tolist()
    t = torch.arange(10)
    assert [p.tolist() for p in split(t)] == [list(range(7)), [7, 8], [9]]
    df = pd.DataFrame({"v": range(10)}, index=pd.date_range("2024-01-01", periods=10, freq="h"))
    parts = split(df)
    assert [len(p) for p in parts] == [7, 2, 1] and isinstance(parts[0], pd.DataFrame)


def test_split_by_dates():
    df = pd.DataFrame({"v": range(48)}, index=pd.date_range("2024-01-01", periods=48, freq="h"))
    train, val, test = split(df, dates=["2024-01-02", "2024-01-02 12:00"])
    assert train.index[-1] == pd.Timestamp("2024-01-01 23:00") and len(train) == 24
    assert val.index[0] == pd.Timestamp("2024-01-02 00:00") and len(val) == 12
    assert test.index[0] == pd.Timestamp("2024-01-02 12:00") and len(test) == 12


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fractions": (0.5, 0.6)}, "fractions must sum to 1, got (0.5, 0.6) (sum 1.1)"),
        ({"fractions": (1.0,)}, "fractions must have at least two parts, got (1.0,)"),
        ({"fractions": (1.2, -0.2)}, "fractions must all be positive, got (1.2, -0.2)"),
        ({"fractions": (0.9, 0.05, 0.05)}, "split part 1 is empty (rows 8..8 of 9)"),
        ({"dates": ["2024-01-01"]}, "dates needs a DataFrame with a DatetimeIndex"),
    ],
)
def test_invalid_split_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        split(np.arange(9), **kwargs)


def test_dates_must_increase():
    df = pd.DataFrame({"v": range(5)}, index=pd.date_range("2024-01-01", periods=5, freq="D"))
    with pytest.raises(ValueError, match=re.escape("dates must increase strictly, got ['2024-01-03', '2024-01-02']")):
        split(df, dates=["2024-01-03", "2024-01-02"])


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(60, 400),
    train_frac=st.floats(0.3, 0.8),
    val_share=st.floats(0.2, 0.8),
    sequence_length=st.integers(1, 12),
    shift=st.integers(1, 6),
    sampling_rate=st.integers(1, 3),
    horizon=st.integers(0, 8),
)
def test_property_no_leak_and_target_is_last_plus_horizon(
    n, train_frac, val_share, sequence_length, shift, sampling_rate, horizon
):
    rest = 1.0 - train_frac
    fractions = (train_frac, rest * val_share, 1.0 - train_frac - rest * val_share)
    data = np.arange(n, dtype=np.float32)  # each value is its global row number
    parts = split(data, fractions)
    train_end = len(parts[0])
    offset = 0
    for k, part in enumerate(parts):
        try:
            w = make_windows(part, sequence_length, shift=shift, sampling_rate=sampling_rate, horizon=horizon)
        except ValueError as e:
            assert "too long for the data" in str(e)
            offset += len(part)
            continue
        # every window's target row is its last input row + horizon, in part rows and in values
        assert torch.equal(w.target_rows, w.last_rows + horizon)
        assert torch.equal(w.y[:, 0], w.x[:, -1, 0] + horizon)
        lo, hi = float(min(w.x.min(), w.y.min())), float(max(w.x.max(), w.y.max()))
        assert offset <= lo and hi < offset + len(part)  # nothing from another part
        if k == 0:
            assert hi < train_end  # no training input or target lies in validation or test
        offset += len(part)


def test_split_per_segment_gives_each_part_a_piece_of_every_segment():
    summer = pd.date_range("2024-06-01", periods=10, freq="h")
    winter = pd.date_range("2025-01-01", periods=20, freq="h")
    frame = pd.DataFrame({"T": np.arange(30.0)}, index=summer.append(winter))
    train, val, test = split_per_segment(frame, (0.6, 0.2, 0.2))
    assert [p["T"].tolist() for p in train] == [list(range(0, 6)), list(range(10, 22))]
    assert [p["T"].tolist() for p in val] == [[6.0, 7.0], list(range(22, 26))]
    assert [p["T"].tolist() for p in test] == [[8.0, 9.0], list(range(26, 30))]


def test_split_per_segment_names_a_segment_too_short_to_split():
    frame = pd.DataFrame(
        {"T": np.arange(12.0)},
        index=pd.date_range("2024-06-01", periods=10, freq="h").append(
            pd.date_range("2025-01-01", periods=2, freq="h")
        ),
    )
    with pytest.raises(
        ValueError, match=r"cannot split the segment 2025-01-01 00:00:00 to 2025-01-01 01:00:00 \(2 rows\)"
    ):
        split_per_segment(frame, (0.6, 0.2, 0.2))


def test_split_per_segment_leaves_out_segments_shorter_than_min_rows():
    # The hourly record's half-hour steps of 2014-03-20 make 1-row segments: too short for any window.
    times = (
        pd.date_range("2024-06-01", periods=10, freq="h")
        .append(pd.DatetimeIndex(["2024-06-01 12:30"]))
        .append(pd.date_range("2024-06-02", periods=20, freq="h"))
    )
    frame = pd.DataFrame({"T": np.arange(31.0)}, index=times)
    train, val, test = split_per_segment(frame, (0.6, 0.2, 0.2), min_rows=5)
    assert [p["T"].tolist() for p in train] == [list(range(0, 6)), list(range(11, 23))]
    assert [p["T"].tolist() for p in val] == [[6.0, 7.0], list(range(23, 27))]
    assert [p["T"].tolist() for p in test] == [[8.0, 9.0], list(range(27, 31))]
    with pytest.raises(ValueError, match=r"\(1 rows\)"):  # without min_rows the stray row cannot be split
        split_per_segment(frame, (0.6, 0.2, 0.2))
