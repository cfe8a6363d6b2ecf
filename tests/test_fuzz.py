"""Hypothesis fuzzing (issue 13) of the config parser, the Jena CSV loader and make_windows.

Each property either gets a correct result (checked against a plain reference) or a RnnkitError
that names the problem: never another exception, never a silently wrong value. Example counts are
bounded and the runs derandomized, so the suite repeats exactly and stays fast.
"""

from __future__ import annotations

import string

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from rnnkit.tasks import load_config, parse_config
from rnnkit.data import make_windows
from rnnkit.datasets.jena import read_jena_file
from rnnkit.errors import RnnkitError

FUZZ = settings(
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- the config parser ------------------------------------------------------------------------------
VALID = {
    "name": "fuzz",
    "data": {"target": "T (degC)", "split": [0.6, 0.2, 0.2]},
    "windows": {"sequence_length": 24, "horizon": 6},
    "training": {"epochs": 2, "batch_size": 32},
    "models": [{"name": "GRU", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}],
}
KEYS = [
    "name",
    "data",
    "windows",
    "training",
    "models",
    "task",
    "target",
    "split",
    "sequence_length",
    "horizon",
    "shift",
    "sampling_rate",
    "epochs",
    "batch_size",
    "learning_rate",
    "layers",
    "type",
    "units",
    "use_bias",
    "dropout",
    "go_backwards",
    "return_sequences",
    "features",
    "paths",
    "stateful",
    "residual",
    "baselines",
]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-10, 10**6),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(string.printable, max_size=8),
    st.sampled_from(["false", "true", "GRU", "0", "T (degC)"]),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=12,
)


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


def _set(tree, path, value):
    if not path:
        return value
    copy = dict(tree) if isinstance(tree, dict) else list(tree)
    copy[path[0]] = _set(tree[path[0]], path[1:], value)
    return copy


@st.composite
def mutated_configs(draw):
    """The valid config with up to three places replaced by anything (or a key added)."""
    raw = VALID
    for _ in range(draw(st.integers(1, 3))):
        places = list(_paths(raw))
        path = draw(st.sampled_from(places[1:]))
        if draw(st.booleans()):
            raw = _set(raw, path, draw(values))
        else:
            parent = path[:-1]
            target = raw
            for step in parent:
                target = target[step]
            if isinstance(target, dict):
                raw = _set(raw, parent, {**target, draw(st.sampled_from(KEYS)): draw(values)})
    return raw


@settings(FUZZ, max_examples=150)
@given(mutated_configs())
@example(_set(VALID, ("models", 0, "layers", 0), {"type": "GRU", "units": 4, "use_bias": "false"}))
@example(_set(VALID, ("windows", "horizon"), 0))
def test_config_parser_accepts_or_names_the_problem(raw):
    try:
        config = parse_config(raw, source="fuzz.toml")
    except RnnkitError as e:
        event("refused")
        assert str(e).startswith("fuzz.toml") and "\n" not in str(e).strip()
        return
    event("accepted")
    # Accepted: what was given comes back as given (no truthy strings, no coercion of the values).
    resolved = config.to_dict()
    assert resolved["windows"]["sequence_length"] == raw["windows"]["sequence_length"]
    assert all(
        isinstance(v, bool)
        for layer in resolved["models"][0]["layers"]
        for k, v in layer.items()
        if k in ("use_bias", "go_backwards", "return_sequences")
    )
    assert resolved["windows"]["horizon"] >= 1 or raw["data"].get("features") not in (None,)


@settings(FUZZ, max_examples=60)
@given(st.binary(max_size=300) | st.text(max_size=300).map(lambda t: t.encode("utf-8")))
@example(("a = " + "[" * 5000 + "]" * 5000).encode())
@example(b"[data\n")
@example("name = 'caf\xe9'".encode("latin-1"))
def test_config_files_of_any_bytes_are_read_or_refused_in_one_line(tmp_path, blob):
    path = tmp_path / "fuzz.toml"
    path.write_bytes(blob)
    try:
        load_config(path)
    except RnnkitError as e:
        assert str(path) in str(e)


# --- the Jena CSV loader: mangled station files -----------------------------------------------------
HEADER = ["Date Time", "p (mbar)", "T (degC)", "SWDR (W/m²)"]


def station_rows(n: int, step_minutes: int = 10) -> list[list[str]]:
    times = pd.date_range("2025-01-01 00:10", periods=n, freq=f"{step_minutes}min")
    return [
        [t.strftime("%d.%m.%Y %H:%M:%S"), f"{990 + i % 7:.2f}", f"{-1.5 + 0.1 * i:.2f}", f"{(i * 13) % 50:.2f}"]
        for i, t in enumerate(times)
    ]


@st.composite
def mangled_files(draw):
    """A small station export, mangled: rows cut short, NaN blocks, duplicated and unordered
    timestamps, a block of another step, one of four encodings."""
    n = draw(st.integers(3, 40))
    rows = station_rows(n)
    faults = draw(
        st.lists(st.sampled_from(["truncate", "nan_block", "duplicate", "swap", "mixed_step", "garbage"]), max_size=3)
    )
    for fault in faults:
        i = draw(st.integers(0, len(rows) - 1))
        if fault == "truncate":
            rows[i] = rows[i][: draw(st.integers(1, 3))]
        elif fault == "nan_block":
            for r in rows[i : i + draw(st.integers(1, 5))]:
                if len(r) > 2:
                    r[2] = ""
        elif fault == "duplicate":
            rows.insert(i, list(rows[i]))
        elif fault == "swap":
            j = draw(st.integers(0, len(rows) - 1))
            rows[i], rows[j] = rows[j], rows[i]
        elif fault == "mixed_step":
            rows += [r for r in station_rows(len(rows) * 7, step_minutes=60)[len(rows) :][: draw(st.integers(3, 12))]]
        elif len(rows[i]) > 1:
            rows[i][1] = draw(st.sampled_from(["x", "1,5", "--", "nan"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "latin-1", "utf-16"]))
    text = ",".join(f'"{h}"' for h in HEADER) + "\n" + "\n".join(", ".join(r) for r in rows) + "\n"
    return text.encode(encoding), faults, rows


@settings(FUZZ, max_examples=120)
@given(mangled_files())
def test_jena_loader_reads_or_names_the_problem(tmp_path, case):
    blob, faults, rows = case
    path = tmp_path / "mpi_roof_fuzz.csv"
    path.write_bytes(blob)
    try:
        frame = read_jena_file(path)
    except RnnkitError as e:
        event("refused")
        assert str(path) in str(e) and "\n" not in str(e)
        return
    event(f"read ({', '.join(sorted(set(faults))) or 'no fault'})")
    # The same column names whatever the encoding (no mojibake), and each good row's values as written.
    assert list(frame.columns) == HEADER[1:]
    assert len(frame) == len(rows)
    for r, (_, got) in zip(rows, frame.iterrows(), strict=True):
        if len(r) == 4 and r[2]:
            assert got["T (degC)"] == pytest.approx(float(r[2]))


@settings(FUZZ, max_examples=60)
@given(mangled_files())
@example(
    (
        ",".join(f'"{h}"' for h in HEADER).encode()
        + b"\n"
        + "\n".join(", ".join(r) for r in station_rows(12) + station_rows(30, step_minutes=60)[12:18]).encode()
        + b"\n",
        ["mixed_step"],
        None,
    )
)
def test_jena_climate_sorts_dedups_and_refuses_mixed_steps(tmp_path, case):
    from rnnkit.datasets import jena_climate

    blob, faults, rows = case
    path = tmp_path / "mpi_roof_fuzz.csv"
    path.write_bytes(blob)
    try:
        frame = jena_climate(path, columns="all")
    except RnnkitError as e:
        event("refused: " + ("mixed steps" if "two sampling steps" in str(e) else "other"))
        assert "\n" not in str(e)
        return
    event("loaded")
    assert frame.index.is_monotonic_increasing and frame.index.is_unique
    assert not frame.isna().any().any()


# --- make_windows -----------------------------------------------------------------------------------
@settings(FUZZ, max_examples=150)
@given(
    rows=st.integers(0, 40),
    features=st.integers(1, 3),
    sequence_length=st.integers(1, 12) | st.sampled_from([0, -1]),
    shift=st.integers(1, 5) | st.just(0),
    sampling_rate=st.integers(1, 4) | st.just(0),
    horizon=st.integers(0, 6) | st.just(-1),
    target_length=st.just(1) | st.integers(0, 3),
    return_sequences=st.sampled_from([False, False, True]),
)
def test_make_windows_matches_a_plain_loop(
    rows, features, sequence_length, shift, sampling_rate, horizon, target_length, return_sequences
):
    data = np.arange(rows * features, dtype=np.float64).reshape(rows, features)
    try:
        w = make_windows(
            data,
            sequence_length,
            shift=shift,
            sampling_rate=sampling_rate,
            horizon=horizon,
            target_length=target_length,
            targets=0,
            return_sequences=return_sequences,
        )
    except ValueError as e:  # RnnkitError or an argument check: one line naming the argument
        event("refused")
        assert "\n" not in str(e)
        return
    event("windows" if len(w) else "no window")
    span = (sequence_length - 1) * sampling_rate
    reach = span + horizon + (target_length - 1) * sampling_rate
    starts = list(range(0, rows - reach, shift)) if rows > reach else []
    assert len(w) == len(starts)
    if not starts:
        return
    x, y = w.batch(torch.arange(len(w)))
    for i, s in enumerate(starts):
        inputs = data[s : s + span + 1 : sampling_rate]
        assert np.array_equal(x[i].numpy(), inputs.astype(np.float32))
        if return_sequences:
            expected = data[s + horizon : s + span + horizon + 1 : sampling_rate, 0]
        else:
            last = s + span
            expected = data[
                last + horizon : last + horizon + (target_length - 1) * sampling_rate + 1 : sampling_rate, 0
            ]
        assert np.array_equal(y[i].reshape(-1).numpy(), expected.astype(np.float32)), (i, s)
