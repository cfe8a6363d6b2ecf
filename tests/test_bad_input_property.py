"""Property: what a user's config or model file holds never ends as a bug (issue 22, part 1).

Mangled configs go through ``rnnkit train`` and mangled ``model.json`` files through ``rnnkit
evaluate``: each ends in 0 (accepted) or 2 with one line naming the problem, never in 1 (the
"internal error (a bug, not your input)" line). Example counts are bounded and the runs
derandomized, so the suite repeats exactly.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from helpers import tiny_config, write_jena_csv
from rnnkit.cli import main
from rnnkit.config import _toml_value

PROPERTY = settings(
    derandomize=True,
    deadline=None,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Values a hand-edited file or a typo gives: non-finite numbers, huge and negative ones, wrong types.
NASTY = st.sampled_from(
    [
        math.inf,
        -math.inf,
        math.nan,
        0,
        -1,
        1,
        2.5,
        10**6,
        1e300,
        -1e-300,
        "",
        "x",
        "inf",
        "false",
        True,
        False,
        [],
        [1],
        {},
        {"a": 1},
    ]
)


def toml_text(config: dict) -> str:
    """``config`` as TOML: top-level values, then tables, then ``[[models]]`` (any values, inf and NaN too)."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in config.items() if not isinstance(v, dict) and k != "models"]
    for key, table in config.items():
        if isinstance(table, dict):
            lines += [f"[{key}]", *[f"{json.dumps(k)} = {_toml_value(v)}" for k, v in table.items()]]
    models = config.get("models")
    if isinstance(models, list) and all(isinstance(m, dict) for m in models):
        for model in models:
            lines += ["[[models]]", *[f"{json.dumps(k)} = {_toml_value(v)}" for k, v in model.items()]]
    elif "models" in config:
        lines.insert(0, f"models = {_toml_value(models)}")
    return "\n".join(lines) + "\n"


def leaf_paths(tree, prefix=()):
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaf_paths(v, (*prefix, k))
    elif isinstance(tree, list) and tree and isinstance(tree[0], dict):
        for i, v in enumerate(tree):
            yield from leaf_paths(v, (*prefix, i))
    else:
        yield prefix


def mangled(tree, path, value):
    """A copy of ``tree`` with the value at ``path`` replaced (or, with ``value`` = DELETE, removed)."""
    copy = json.loads(json.dumps(tree))
    node = copy
    for step in path[:-1]:
        node = node[step]
    if value is DELETE:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return copy


DELETE = object()


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("property")
    csv = write_jena_csv(folder / "hourly.csv", days=12)
    config = small_config(csv)
    run = folder / "run"
    path = folder / "c.toml"
    path.write_text(toml_text(config), encoding="utf-8")
    assert main(["train", str(path), "--output", str(run), "--quiet"]) == 0
    return folder, config, run


def small_config(csv) -> dict:
    """The tests' tiny config, one epoch, no report: about a second to train."""
    return {**tiny_config(csv, training={"epochs": 1}, baselines=["persistence"]), "output": {"report": False}}


def config_edits():
    paths = [p for p in leaf_paths(small_config("x.csv")) if p[:2] != ("data", "paths")]
    return st.tuples(st.sampled_from(paths), NASTY | st.just(DELETE))


@settings(PROPERTY, max_examples=30)
@given(edit=config_edits())
@example(edit=(("training", "learning_rate"), math.inf))
@example(edit=(("windows", "sequence_length"), 10**5))
def test_a_mangled_config_is_bad_input_never_a_bug(files, tmp_path, capsys, edit):
    folder, config, _ = files
    path, value = edit
    here = Path(tempfile.mkdtemp(dir=tmp_path))  # tmp_path is one folder for all of hypothesis's examples
    (here / "c.toml").write_text(toml_text(mangled(config, path, value)), encoding="utf-8")
    code = main(["train", str(here / "c.toml"), "--output", str(here / "run"), "--quiet"])
    err = capsys.readouterr().err
    event(f"exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err


MODEL_EDITS = st.one_of(
    st.tuples(st.just("replace"), st.integers(0, 10**6), NASTY),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.none()),
    st.tuples(
        st.just("class_name"),
        st.integers(0, 10**6),
        st.sampled_from(["Dense2", "gru", "", "Sequential", "Bidirectional", "LSTM", "Dropout"]),
    ),
    st.tuples(
        st.just("extra_layer"),
        st.integers(0, 10**6),
        st.sampled_from(
            [
                {"class_name": "Dense", "config": {"units": 1, "input_size": 4}},
                {"class_name": "GRU", "config": {"units": 3}},
                {"class_name": "Flatten", "config": {}},
                {"class_name": "Dropout", "config": {"rate": 0.5}},
                "Dense",
                None,
            ]
        ),
    ),
)


def edit_model(description: dict, edit) -> dict:
    kind, where, value = edit
    layers = description["config"]["layers"]
    if kind == "class_name":
        return mangled(description, ("config", "layers", where % len(layers), "class_name"), value)
    if kind == "extra_layer":
        copy = json.loads(json.dumps(description))
        copy["config"]["layers"].insert(where % (len(layers) + 1), value)
        return copy
    paths = [p for p in leaf_paths(description) if p[0] != "tensors"] + [("config", "layers"), ("config",)]
    path = paths[where % len(paths)]
    return mangled(description, path, DELETE if kind == "delete" else value)


@settings(PROPERTY, max_examples=80)
@given(edit=MODEL_EDITS)
@example(edit=("class_name", 1, "Dense2"))
@example(edit=("extra_layer", 2, {"class_name": "Dense", "config": {"units": 1, "input_size": 4}}))
# the audit's layer checks (issue 22): an Embedding fed the float windows, a Bidirectional of a Dense
@example(edit=("extra_layer", 0, {"class_name": "Embedding", "config": {"input_dim": 3, "output_dim": 2}}))
@example(edit=("extra_layer", 0, {"class_name": "Bidirectional", "config": {"layer": {"class_name": "Dense"}}}))
def test_a_mangled_model_file_is_bad_input_never_a_bug(files, tmp_path, capsys, edit):
    _, _, run = files
    copy = Path(tempfile.mkdtemp(dir=tmp_path)) / "run"
    shutil.copytree(run, copy)
    (model_json,) = copy.glob("models/*/model.json")
    model_json.write_text(json.dumps(edit_model(json.loads(model_json.read_text()), edit)), encoding="utf-8")
    code = main(["evaluate", str(copy)])
    err = capsys.readouterr().err
    event(f"exit {code}")
    assert code in (0, 2), err
    if code == 2:
        assert err.count("\n") == 1 and "Traceback" not in err and "internal error" not in err, err
