"""Many series from Parquet (rnnkit.datasets.parquet, rnnkit.data.many_series): the windows equal make_windows'
on the same data loaded whole, per series and part, on the Jena station's real years."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

from rnnkit.data import Standardizer, make_windows, split
from rnnkit.data.many_series import SeriesScaler, SeriesWindows, part_bounds
from rnnkit.datasets.parquet import read_parquet_series
from rnnkit.errors import RnnkitError

pytest.importorskip("pyarrow")
COLUMNS = ["T (degC)", "p (mbar)", "rh (%)"]
FRACTIONS = (0.6, 0.2, 0.2)
L, SHIFT, RATE, HORIZON = 24, 5, 2, 6


@pytest.fixture(scope="module")
def table():
    """Real data: 1,500 rows of each of the station's years 2013-2015 and of the 2025 export, taken where 2013 has
    a gap (row 3,249) and 2014 its clock shifts (63 gaps from row 1,883), rows interleaved (row k of every series, then
    row k + 1...), so that every record batch holds several series."""
    if not os.environ.get("RNNKIT_DATA_DIR"):
        pytest.skip("RNNKIT_DATA_DIR is not set (the Makefile points it at ../shared/data)")
    from rnnkit.datasets.station_years import station_years_table

    full = station_years_table(columns=COLUMNS)
    starts = {"2013": 2500, "2014": 1500, "2015": 0, "2025 export": 0}
    keep = pd.concat([full[full["id"] == s].iloc[a : a + 1500] for s, a in starts.items()])
    order = keep.groupby("id", sort=False).cumcount()  # row k of every series, then row k + 1, ...
    return keep.assign(order=order).sort_values(["order"], kind="stable").drop(columns="order").reset_index(drop=True)


@pytest.fixture(scope="module")
def parquet(table, tmp_path_factory):
    from rnnkit.datasets.station_years import write_parquet

    return write_parquet(table, tmp_path_factory.mktemp("pq") / "years.parquet", row_group_size=1000)


def reference(table, per_series: bool):
    """make_windows on each series loaded whole, split by rnnkit.data.split, scaled by a Standardizer."""
    ids = list(dict.fromkeys(table["id"]))
    frames = {s: table[table["id"] == s].set_index("time")[COLUMNS] for s in ids}
    parts = {s: split(frames[s], FRACTIONS) for s in ids}
    pooled = Standardizer().fit(pd.concat([parts[s][0] for s in ids]))
    out = {}
    for k, part in enumerate(("train", "val", "test")):
        xs, ys = [], []
        for s in ids:
            scaler = Standardizer().fit(parts[s][0]) if per_series else pooled
            w = make_windows(
                scaler.transform(parts[s][k]), L, shift=SHIFT, sampling_rate=RATE, horizon=HORIZON, targets="T (degC)"
            )
            xs.append(w.x.clone())
            ys.append(w.y.clone())
        out[part] = (torch.cat(xs), torch.cat(ys))
    return ids, out


def streamed(path, per_series: bool, batch_rows: int = 777):
    store = read_parquet_series(path, id_column="id", time_column="time", columns=COLUMNS, batch_rows=batch_rows)
    bounds = np.array([part_bounds(int(n), FRACTIONS) for n in store.lengths])
    scaler = SeriesScaler.fit(store, bounds[:, 0:2], per_series=per_series)
    windows = {
        part: SeriesWindows(
            store,
            scaler,
            bounds[:, k : k + 2],
            sequence_length=L,
            shift=SHIFT,
            sampling_rate=RATE,
            horizon=HORIZON,
            target_index=[0],
        )
        for k, part in enumerate(("train", "val", "test"))
    }
    return store, windows


@pytest.mark.parametrize("per_series", [False, True])
def test_windows_equal_make_windows_on_the_data_loaded_whole(table, parquet, per_series):
    ids, ref = reference(table, per_series)
    store, windows = streamed(parquet, per_series)
    assert store.ids == ids
    g = torch.Generator().manual_seed(0)
    for part, (x_ref, y_ref) in ref.items():
        w = windows[part]
        assert len(w) == len(x_ref)
        sample = torch.cat([torch.tensor([0, len(w) - 1]), torch.randint(len(w), (300,), generator=g)])
        x, y = w.batch(sample)
        assert torch.allclose(x, x_ref[sample], atol=2e-6, rtol=0), (x - x_ref[sample]).abs().max()
        assert torch.allclose(y, y_ref[sample], atol=2e-6, rtol=0)


def test_no_window_crosses_a_series_a_gap_or_a_split(parquet):
    store, windows = streamed(parquet, False)
    span = (L - 1) * RATE + HORIZON + 1
    assert len(store.segments[store.ids.index("2013")]) == 2 and len(store.segments[store.ids.index("2014")]) > 10
    for k, part in enumerate(("train", "val", "test")):
        w = windows[part]
        series, starts = w.locate(torch.arange(len(w)))
        for s, start in zip(series.tolist(), starts.tolist()):
            lo, hi = part_bounds(int(store.lengths[s]), FRACTIONS)[k : k + 2]
            assert lo <= start and start + span <= hi
            assert any(a <= start and start + span <= b for a, b in store.segments[s])


def test_with_series_the_last_input_column_is_the_series_index(parquet):
    store, windows = streamed(parquet, True)
    w = windows["val"]
    plain = w.batch(torch.arange(len(w)))[0]
    w.with_series = True
    x, _ = w.batch(torch.arange(len(w)))
    assert torch.equal(x[..., :-1], plain)
    series, _ = w.locate(torch.arange(len(w)))
    assert torch.equal(x[..., -1], torch.from_numpy(series).float()[:, None].expand(-1, L))
    assert sorted(set(series.tolist())) == [0, 1, 2, 3]


def test_the_spill_file_holds_each_series_rows_in_time_order(table, parquet):
    store, _ = streamed(parquet, False, batch_rows=313)
    for s, sid in enumerate(store.ids):
        rows = table[table["id"] == sid][COLUMNS].to_numpy()
        assert np.array_equal(store.rows(s, 0, len(rows)), rows)


def test_global_and_per_series_statistics_match_numpy(table, parquet):
    store, _ = streamed(parquet, True)
    bounds = np.array([part_bounds(int(n), FRACTIONS) for n in store.lengths])
    per = SeriesScaler.fit(store, bounds[:, 0:2], per_series=True)
    pooled = SeriesScaler.fit(store, bounds[:, 0:2], per_series=False)
    trains = [table[table["id"] == s][COLUMNS].to_numpy()[: bounds[i, 1]] for i, s in enumerate(store.ids)]
    for i, rows in enumerate(trains):
        assert np.allclose(per.mean[i], rows.mean(axis=0), rtol=1e-12) and np.allclose(
            per.std[i], rows.std(axis=0), rtol=1e-12
        )
    joined = np.concatenate(trains)
    assert np.allclose(pooled.mean[0], joined.mean(axis=0), rtol=1e-12)
    assert np.allclose(pooled.std[0], joined.std(axis=0), rtol=1e-12)


def test_times_out_of_order_within_a_series_are_refused(table, tmp_path):
    from rnnkit.datasets.station_years import write_parquet

    bad = table.copy()
    first = bad.index[bad["id"] == "2013"][:2]
    bad.loc[first, "time"] = bad.loc[first[::-1], "time"].to_numpy()
    path = write_parquet(bad, tmp_path / "bad.parquet")
    with pytest.raises(RnnkitError, match="series '2013': times must increase within a series"):
        read_parquet_series(path, id_column="id", time_column="time", columns=COLUMNS)


def test_one_file_per_series_folder(table, tmp_path):
    from rnnkit.datasets.station_years import write_parquet

    for sid in ("2013", "2015"):
        write_parquet(table[table["id"] == sid].drop(columns="id"), tmp_path / f"station_{sid}.parquet")
    store = read_parquet_series(tmp_path, id_column="id", time_column="time", columns=COLUMNS)
    assert store.ids == ["station_2013", "station_2015"]
    assert np.array_equal(store.rows(1, 0, 3), table[table["id"] == "2015"][COLUMNS].to_numpy()[:3])
