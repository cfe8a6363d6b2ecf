"""make_windows / Windows: row arithmetic, references (course helper, Keras), memory, bad input."""

from __future__ import annotations

import re
import types

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data import make_windows


def rows_of(n, features=1):
    """Data whose value in every column is the row number: window values are row indices."""
    return np.repeat(np.arange(n, dtype=np.float32)[:, None], features, axis=1)


# ---------------------------------------------------------------- the slide and the course
def test_slide_shift_example():
    # 14 rows, sequence length 7, shift 2, target shift 1 (horizon 2): exactly 3 windows.
    w = make_windows(rows_of(14), 7, shift=2, horizon=2)
    assert len(w) == 3
    assert w.x[:, :, 0].tolist() == [list(range(0, 7)), list(range(2, 9)), list(range(4, 11))]
    assert w.y[:, 0].tolist() == [8, 10, 12]
    assert w.start_rows.tolist() == [0, 2, 4]
    assert w.target_rows.tolist() == [8, 10, 12]
    assert "window 2: inputs rows 4-10, target rows 12" in repr(w)


def test_reshape_approach_gives_non_overlapping_windows():
    w = make_windows(rows_of(50), 10, shift=10, horizon=1)
    x = w.x[:, :, 0]
    assert x.tolist() == [list(range(s, s + 10)) for s in (0, 10, 20, 30)]  # the 5th would need row 50
    flat = x.reshape(-1)
    assert len(set(flat.tolist())) == flat.numel()  # no row in two windows
    assert w.y[:, 0].tolist() == [10, 20, 30, 40]


def create_sequences_x_y(data, sequence_length, target_shift, step_shift):
    """The course's helper, as a reference: inputs s … s+L−1, target s+L+target_shift."""
    xs, ys = [], []
    s = 0
    while s + sequence_length + target_shift < len(data):
        xs.append(data[s : s + sequence_length])
        ys.append(data[s + sequence_length + target_shift])
        s += step_shift
    return np.array(xs), np.array(ys)


def test_matches_course_helper_on_random_parameters(seed):
    for _ in range(40):
        n = int(seed.integers(5, 120))
        L = int(seed.integers(1, n))
        target_shift = int(seed.integers(0, max(1, n - L)))
        step_shift = int(seed.integers(1, 15))
        data = seed.normal(size=(n, 3)).astype(np.float32)
        ref_x, ref_y = create_sequences_x_y(data, L, target_shift, step_shift)
        if len(ref_x) == 0:
            with pytest.raises(ValueError, match="too long"):
                make_windows(data, L, shift=step_shift, horizon=target_shift + 1)
            continue
        w = make_windows(data, L, shift=step_shift, horizon=target_shift + 1)
        np.testing.assert_array_equal(w.x.numpy(), ref_x)
        np.testing.assert_array_equal(w.y.numpy(), ref_y)


# ---------------------------------------------------------------- Keras (Chollet's Jena setup)
class _FakeMapDataset:
    """Just enough of grain's MapDataset for Keras's grain path: a list, zipped and batched."""

    def __init__(self, items):
        self.items = list(items)

    @classmethod
    def source(cls, items):
        return cls(items)

    def to_iter_dataset(self):
        return self

    def batch(self, batch_size, batch_fn):
        return [batch_fn(self.items[i : i + batch_size]) for i in range(0, len(self.items), batch_size)]


class _FakeZip(_FakeMapDataset):
    def __init__(self, parts):
        super().__init__(zip(*[p.items for p in parts], strict=True))


def test_matches_keras_timeseries_dataset_from_array_chollet_setup(monkeypatch, seed):
    # Keras 3.15's format="grain" path computes the windows' index arithmetic itself
    # (keras/src/utils/timeseries_dataset_utils.py, _timeseries_dataset_grain: start positions
    # arange(0, len(data) - (sequence_length-1)*sampling_rate, stride), inputs
    # arange(pos, pos + sequence_length*sampling_rate, sampling_rate), target targets[pos]) and
    # only hands the resulting lists to grain for batching. grain (and TensorFlow) are not
    # installed here, so a list-backed stand-in replaces grain; Keras's own code picks the rows.
    tsu = pytest.importorskip("keras.src.utils.timeseries_dataset_utils")
    from keras.utils import timeseries_dataset_from_array

    monkeypatch.setattr(
        tsu,
        "grain",
        types.SimpleNamespace(MapDataset=_FakeMapDataset, experimental=types.SimpleNamespace(ZipMapDataset=_FakeZip)),
    )
    sampling_rate, sequence_length, delay = 6, 120, 6 * (120 + 24 - 1)
    data = seed.normal(size=(1800, 4)).astype(np.float32)
    temperature = data[:, 1]
    batches = timeseries_dataset_from_array(
        data[:-delay],
        targets=temperature[delay:],
        sampling_rate=sampling_rate,
        sequence_length=sequence_length,
        batch_size=64,
        format="grain",
    )
    kx = np.concatenate([np.asarray(b[0]) for b in batches])
    ky = np.concatenate([np.asarray(b[1]) for b in batches])

    w = make_windows(data, sequence_length, sampling_rate=sampling_rate, horizon=144, targets=1)
    # Chollet's data[:-delay] also cuts inputs that still have a target, so Keras stops
    # (sequence_length-1)*sampling_rate = 714 windows earlier; the common windows are identical.
    assert len(kx) == 1800 - delay - 714 and len(w) == len(kx) + 714
    np.testing.assert_array_equal(w.x[: len(kx)].numpy(), kx)
    np.testing.assert_array_equal(w.y[: len(kx), 0].numpy(), ky)


# ---------------------------------------------------------------- options
def test_sampling_rate_horizon_and_target_length():
    w = make_windows(rows_of(40), 4, shift=3, sampling_rate=2, horizon=5, target_length=3)
    # inputs s, s+2, s+4, s+6; last s+6; targets s+11, s+13, s+15 (needs s+15 <= 39 → s <= 24)
    assert w.start_rows.tolist() == list(range(0, 25, 3))
    assert w.x[1, :, 0].tolist() == [3, 5, 7, 9]
    assert w.y.shape == (9, 3, 1)
    assert w.y[1, :, 0].tolist() == [14, 16, 18]
    assert w.target_rows[1].tolist() == [14, 16, 18]


def test_horizon_zero_tags_the_last_input():
    w = make_windows(rows_of(6), 3, horizon=0)
    assert w.y[:, 0].tolist() == [2, 3, 4, 5]


def test_return_sequences_targets_every_step():
    w = make_windows(rows_of(10), 4, shift=2, horizon=1, return_sequences=True)
    assert w.y.shape == (3, 4, 1)
    assert w.y[0, :, 0].tolist() == [1, 2, 3, 4]
    assert w.y[2, :, 0].tolist() == [5, 6, 7, 8]


def test_dataframe_targets_by_name_and_names():
    df = pd.DataFrame({"p": np.arange(10.0), "T": np.arange(10.0) * 10, "rh": -np.arange(10.0)})
    w = make_windows(df, 3, targets="T")
    assert w.feature_names == ["p", "T", "rh"] and w.target_names == ["T"] and w.target_index == [1]
    assert w.y[:, 0].tolist() == [30, 40, 50, 60, 70, 80, 90]
    w2 = make_windows(df, 3, targets=["rh", "p"])
    assert w2.target_index == [2, 0]
    assert w2.y[0].tolist() == [-3, 3]  # non-contiguous targets are gathered, same values


def test_torch_tensor_input_and_batch_matches_views(seed):
    data = torch.from_numpy(seed.normal(size=(200, 5)).astype(np.float32))
    w = make_windows(data, 12, shift=3, sampling_rate=2, horizon=7, targets=[3, 4])
    idx = torch.tensor([5, 0, 17, len(w) - 1])
    bx, by = w.batch(idx)
    torch.testing.assert_close(bx, w.x[idx], rtol=0, atol=0)
    torch.testing.assert_close(by, w.y[idx], rtol=0, atol=0)
    torch.testing.assert_close(w.x[17], data[51 : 51 + 23 : 2], rtol=0, atol=0)
    assert w.y[17].tolist() == data[51 + 22 + 7, 3:5].tolist()


@pytest.mark.parametrize(
    "options",
    [
        {"sampling_rate": 1, "horizon": 24},
        {"sampling_rate": 3, "horizon": 5, "target_length": 4},
        {"sampling_rate": 2, "horizon": 1, "return_sequences": True},
        {"sampling_rate": 1, "horizon": 0, "known_future": [2]},
    ],
)
def test_batch_copies_the_rows_of_each_window(seed, options):
    # batch() copies windows whole from a view of the data: the same rows as a gather by row number
    data = seed.normal(size=(300, 4)).astype(np.float32)
    w = make_windows(data, 10, shift=2, targets=[1, 3] if "known_future" not in options else 1, **options)
    idx = torch.tensor([len(w) - 1, 0, 7, 7, 40])
    bx, by = w.batch(idx)
    starts = w.start_rows[idx]
    rows_in = starts[:, None] + w._input_offsets[None, :]
    rows_out = starts[:, None] + w._target_offsets[None, :]
    assert torch.equal(bx, w.data[rows_in]) and bx.is_contiguous()
    expected = w.data[rows_out][:, :, w.target_index]
    assert torch.equal(by, expected[:, 0] if by.dim() == 2 else expected)
    torch.testing.assert_close(bx, w.x[idx], rtol=0, atol=0)
    torch.testing.assert_close(by, w.y[idx], rtol=0, atol=0)


def test_batch_of_windows_on_a_strided_tensor():
    # a view that is not contiguous (every other column) still gives the right rows
    full = torch.arange(400, dtype=torch.float32).reshape(100, 4)
    w = make_windows(full[:, ::2], 5, horizon=1, targets=1)
    bx, by = w.batch(torch.tensor([3, 0]))
    assert bx[0, :, 0].tolist() == [12.0, 16.0, 20.0, 24.0, 28.0]
    assert by[:, 0].tolist() == [34.0, 22.0]


def test_gaps_in_timestamps_give_windows_inside_segments_only():
    index = pd.date_range("2024-01-01", periods=10, freq="10min").append(
        pd.date_range("2024-01-02", periods=8, freq="10min")
    )
    df = pd.DataFrame({"v": np.arange(18.0)}, index=index)
    w = make_windows(df, 3, horizon=1)
    # segment 1: rows 0-9 → starts 0..6; segment 2: rows 10-17 → starts 10..14
    assert w.start_rows.tolist() == [*range(0, 7), *range(10, 15)]
    assert w.target_rows.max() == 17 and 10 not in (w.start_rows + 2).tolist()[:7]
    bx, by = w.batch(torch.arange(len(w)))
    torch.testing.assert_close(w.x, bx, rtol=0, atol=0)
    assert w.x[7, :, 0].tolist() == [10, 11, 12]


def test_list_of_segments():
    w = make_windows([rows_of(5), rows_of(4) + 100], 2, horizon=1)
    assert w.x[:, :, 0].tolist() == [[0, 1], [1, 2], [2, 3], [100, 101], [101, 102]]
    assert w.y[:, 0].tolist() == [2, 3, 4, 102, 103]


def test_windows_are_views_and_memory_is_o_rows():
    # The Jena benchmark's size: 420,551 rows × 14 features, float32, sequence_length 720.
    array = np.zeros((420_551, 14), dtype=np.float32)
    array[:, 1] = np.arange(420_551)
    w = make_windows(array, 720, horizon=144, targets=1)
    held = [w.data, w.x, w.y, w.start_rows, w.target_rows]
    storages = {t.untyped_storage().data_ptr(): t.untyped_storage().nbytes() for t in held}
    assert w.x.untyped_storage().data_ptr() == array.ctypes.data  # no copy of the array either
    assert sum(storages.values()) < 1.5 * array.nbytes
    materialised = len(w) * 720 * 14 * 4
    assert materialised > 500 * array.nbytes  # what copying every window would have cost
    assert w.x[1000, 719, 1].item() == 1719 and w.y[1000, 0].item() == 1000 + 719 + 144


# ---------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sequence_length": 0}, re.escape("sequence_length must be positive (>= 1), got 0")),
        ({"sequence_length": 2.5}, re.escape("sequence_length must be an integer, got 2.5")),
        ({"shift": 0}, re.escape("shift must be positive (>= 1), got 0")),
        ({"shift": -2}, re.escape("shift must be positive (>= 1), got -2")),
        ({"sampling_rate": 0}, re.escape("sampling_rate must be positive (>= 1), got 0")),
        ({"horizon": -1}, re.escape("horizon must be >= 0, got -1")),
        ({"target_length": 0}, re.escape("target_length must be positive (>= 1), got 0")),
        (
            {"return_sequences": True, "target_length": 2},
            re.escape("target_length must be 1 with return_sequences=True (one target per input step), got 2"),
        ),
        ({"return_sequences": "yes"}, re.escape("return_sequences must be True or False, got 'yes'")),
        ({"sequence_length": 10}, r"sequence_length 10 is too long for the data: .* needs 11 rows, .* has 8 rows"),
        ({"targets": 5}, re.escape("targets: column index 5 is out of range for 2 features")),
    ],
)
def test_invalid_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        make_windows(rows_of(8, 2), **{"sequence_length": 3, **kwargs})


def test_missing_target_column_is_named():
    df = pd.DataFrame({"p": np.arange(10.0), "T": np.arange(10.0)})
    with pytest.raises(ValueError, match=r"targets: column 'rh' is not in the data; columns are \['p', 'T'\]"):
        make_windows(df, 3, targets="rh")


def test_nan_rows_are_refused():
    data = rows_of(10, 2)
    data[[3, 7], 1] = np.nan
    with pytest.raises(ValueError, match=r"data: 2 rows hold NaN or inf values \(first rows \[3, 7\]\)"):
        make_windows(data, 3)


def test_timestamps_out_of_order_or_duplicated_are_refused():
    index = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01 00:05", "2024-01-01 00:20"])
    df = pd.DataFrame({"v": np.arange(4.0)}, index=index)
    with pytest.raises(ValueError, match=r"row 2 \(2024-01-01 00:05:00\) is out of order"):
        make_windows(df, 2)
    df.index = pd.to_datetime(["2024-01-01 00:00", "2024-01-01 00:10", "2024-01-01 00:10", "2024-01-01 00:20"])
    with pytest.raises(ValueError, match=r"row 2 \(2024-01-01 00:10:00\) is duplicated"):
        make_windows(df, 2)


def test_wrong_data_types_are_refused():
    with pytest.raises(
        ValueError, match=r"data must have shape \(rows,\) or \(rows, features\), got shape \(2, 3, 4\)"
    ):
        make_windows(np.zeros((2, 3, 4)), 1)
    with pytest.raises(ValueError, match="data must be a numpy array, torch tensor, pandas DataFrame"):
        make_windows("abc", 1)
    with pytest.raises(ValueError, match=r"every column must be numeric, got non-numeric \['name'\]"):
        make_windows(pd.DataFrame({"name": ["a", "b", "c"]}), 1)


def test_window_index_out_of_range():
    w = make_windows(rows_of(5), 2)
    with pytest.raises(ValueError, match=r"window index must be in \[-3, 3\), got 3"):
        w.rows(3)
