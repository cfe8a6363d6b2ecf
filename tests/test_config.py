"""Config validation: unknown keys named with the closest valid key, wrong types named with the expected type."""

from __future__ import annotations

from pathlib import Path

import pytest

from rnnkit.tasks import load_config, parse_config
from rnnkit.errors import RnnkitError
from rnnkit.experiment import model_summaries
from rnnkit.tasks.regression import NAIVE_DENSE
from rnnkit.models import Sequential
from rnnkit.config import build_layer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MINIMAL = {"windows": {"sequence_length": 10}}


def error_of(raw: dict) -> str:
    with pytest.raises(RnnkitError) as info:
        parse_config(raw, source="c.toml")
    return str(info.value)


def test_defaults_are_filled_in():
    config = parse_config(MINIMAL)
    assert config.windows.horizon == 1 and config.windows.shift == 1
    assert config.training.optimizer == "adam" and config.training.epochs == 20
    assert config.data.split == [0.7, 0.15, 0.15]


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({**MINIMAL, "trainig": {}}, "c.toml: unknown key 'trainig' (did you mean 'training'?)"),
        (
            {"windows": {"sequence_lenght": 10}},
            "c.toml: unknown key 'windows.sequence_lenght' (did you mean 'sequence_length'?)",
        ),
        ({**MINIMAL, "data": {"stpe": 6}}, "unknown key 'data.stpe' (did you mean 'step'?)"),
        (
            {**MINIMAL, "models": [{"name": "a", "layers": [{"type": "GRU", "units": 3}], "training": {"epochz": 3}}]},
            "unknown key 'models[0].training.epochz' (did you mean 'epochs'?)",
        ),
    ],
)
def test_unknown_key_is_named_with_the_closest_valid_key(raw, message):
    assert message in error_of(raw)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"windows": {"sequence_length": "ten"}}, "'windows.sequence_length' must be an integer, got 'ten'"),
        ({**MINIMAL, "training": {"epochs": 1.5}}, "'training.epochs' must be an integer, got 1.5"),
        ({**MINIMAL, "training": {"learning_rate": "fast"}}, "'training.learning_rate' must be a number, got 'fast'"),
        (
            {**MINIMAL, "training": {"optimizer": "adamw"}},
            "'training.optimizer' must be one of 'adam', 'rmsprop', 'sgd', got 'adamw'",
        ),
        ({**MINIMAL, "data": {"paths": "x.csv"}}, "'data.paths' must be a list of strings, got 'x.csv'"),
        ({**MINIMAL, "data": {"paths": [3]}}, "'data.paths[0]' must be a string, got 3"),
        (
            {**MINIMAL, "windows": {"sequence_length": 10, "residual": "yes"}},
            "'windows.residual' must be true or false, got 'yes'",
        ),
        ({**MINIMAL, "baselines": ["persistance"]}, "'baselines[0]' must be one of 'persistence'"),
    ],
)
def test_wrong_type_names_the_key_and_the_expected_type(raw, message):
    assert message in error_of(raw)


def test_rules_on_values():
    assert "'windows.sequence_length': Input should be greater than or equal to 1, got 0" in error_of(
        {"windows": {"sequence_length": 0}}
    )
    assert "'data.split': must be three fractions" in error_of({**MINIMAL, "data": {"split": [0.5, 0.5]}})
    assert "missing key 'windows'" in error_of({})


def test_layer_specs_are_checked_before_building():
    bad_type = {**MINIMAL, "models": [{"name": "a", "layers": [{"type": "GRUU", "units": 3}]}]}
    assert "models[0].layers[0]: unknown layer type 'GRUU' (did you mean 'GRU'?)" in error_of(bad_type)
    bad_arg = {**MINIMAL, "models": [{"name": "a", "layers": [{"type": "GRU", "unit": 3}]}]}
    assert "unknown argument 'unit' for GRU (did you mean 'units'?)" in error_of(bad_arg)
    nested = {
        **MINIMAL,
        "models": [{"name": "a", "layers": [{"type": "Bidirectional", "layer": {"type": "LSTM", "untis": 3}}]}],
    }
    assert "layers[0].layer: unknown argument 'untis' for LSTM (did you mean 'units'?)" in error_of(nested)
    no_type = {**MINIMAL, "models": [{"name": "a", "layers": [{"units": 3}]}]}
    assert "missing 'type'" in error_of(no_type)


def test_duplicate_model_names_are_rejected():
    layers = [{"type": "Dense", "units": 1}]
    assert "model names must be unique, got ['a']" in error_of(
        {**MINIMAL, "models": [{"name": "a", "layers": layers}] * 2}
    )


def test_model_training_overrides_merge_over_the_global_settings():
    config = parse_config(
        {
            **MINIMAL,
            "training": {"epochs": 7, "batch_size": 8},
            "models": [{"name": "a", "layers": [{"type": "Dense", "units": 1}], "training": {"epochs": 3}}],
        }
    )
    merged = config.training_for(config.models[0])
    assert (merged.epochs, merged.batch_size) == (3, 8)
    assert config.training.epochs == 7


def test_missing_and_malformed_files(tmp_path):
    with pytest.raises(RnnkitError, match="config file not found: .*nope.toml"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[windows\nsequence_length = 3\n")
    with pytest.raises(RnnkitError, match="bad.toml: not valid TOML"):
        load_config(bad)


@pytest.mark.parametrize("name", ["course_04a", "course_05a", "course_05b", "chollet_jena"])
def test_shipped_configs_validate(name):
    config = load_config(CONFIGS / f"{name}.toml")
    assert config.name == name and config.models


def build(config, spec, features=14):
    return Sequential(*[build_layer(s) for s in spec.layers], input_shape=(config.windows.sequence_length, features))


def test_course_configs_have_the_published_parameter_counts():
    # COURSE.md: 04a dense 40,345 on 240 ten-minute rows, 6,745 on the config's 40 hourly rows (the same 40
    # hours), and SimpleRNN(12) 337; 05a SimpleRNN(16) 513, GRU(16) 1,505, LSTM(32)+Dense(16) 6,561.
    c04 = load_config(CONFIGS / "course_04a.toml")
    assert [build(c04, m).count_params() for m in c04.models] == [40 * 14 * 12 + 12 + 13, 337] == [6_745, 337]
    w = c04.windows
    assert (c04.data.step, w.sequence_length, w.shift, w.horizon) == (6, 40, 40, 24)  # 40 h in, 24 h ahead
    c05 = load_config(CONFIGS / "course_05a.toml")
    assert [build(c05, m).count_params() for m in c05.models] == [513, 1_505, 6_561]
    assert build(c04, NAIVE_DENSE).count_params() == 6_745


def test_course_windows_follow_the_course_helper():
    # 05a: 96 hourly rows, one window per day, target 24 h after the last input (target_shift 23).
    w = load_config(CONFIGS / "course_05a.toml").windows
    assert (w.sequence_length, w.shift, w.horizon) == (96, 24, 24)
    # 05b: 52 weekly rows, target_shift 1 -> horizon 2 (two weeks after the last input).
    w = load_config(CONFIGS / "course_05b.toml").windows
    assert (w.sequence_length, w.shift, w.horizon) == (52, 1, 2)
    # Chollet: every 6th ten-minute row (data.step 6: hourly points), 120 steps, 24 h after the last input.
    c = load_config(CONFIGS / "chollet_jena.toml")
    assert (c.data.step, c.windows.sequence_length, c.windows.sampling_rate, c.windows.horizon) == (6, 120, 1, 24)


def test_model_summaries_show_formulas_for_given_features():
    text = model_summaries(load_config(CONFIGS / "course_05a.toml"), features=14)
    assert "16·14 + 16·16 + 16" in text and "Total params: 513" in text
    assert "Total params: 1,505" in text and "Total params: 6,561" in text


# --- a new task: one module and one registry line, no edit of config.py ----------------------------


def test_a_task_registered_in_one_line_is_a_config_kind_with_its_own_checks_and_baselines(monkeypatch):
    import sys
    import types

    from rnnkit import tasks
    from rnnkit.tasks.base import Task, check_baselines
    from rnnkit.tasks.series import require_windows

    class Echo(Task):
        name = "echo"
        baseline_names = ("echo_last",)

        @classmethod
        def check_config(cls, config):
            require_windows(config)
            if "baselines" not in config.model_fields_set:
                config.baselines = list(cls.baseline_names)
            check_baselines(config, cls.baseline_names)
            if config.windows.sequence_length > 50:
                raise ValueError(
                    f"windows.sequence_length must be at most 50 for task = 'echo', got "
                    f"{config.windows.sequence_length}"
                )

    module = types.ModuleType("echo_task")
    module.TASK = Echo
    monkeypatch.setitem(sys.modules, "echo_task", module)
    monkeypatch.setitem(tasks.TASKS, "echo", "echo_task")  # the one registry line

    config = parse_config({"task": "echo", **MINIMAL})
    assert config.task == "echo" and config.baselines == ["echo_last"]  # its check filled in its default
    assert error_of({"task": "echo", "windows": {"sequence_length": 60}}) == (
        "c.toml: windows.sequence_length must be at most 50 for task = 'echo', got 60"
    )
    assert error_of({"task": "echo"}) == (
        "c.toml: missing key 'windows' (the [windows] table with sequence_length) for task = 'echo'"
    )
    # its baseline name is known to the config, and still refused by the other tasks
    assert error_of({"baselines": ["echo_last"], **MINIMAL}) == (
        "c.toml: baselines for task = 'regression' must be among ['persistence', 'seasonal_persistence', 'mean', "
        "'linear', 'naive_dense', 'repeat_last_day'], got ['echo_last']"
    )
    listed = ", ".join(repr(name) for name in tasks.TASKS)  # the registry's order, 'echo' last
    assert listed.startswith("'regression', 'classification', 'tagging', 'quantile'") and listed.endswith(", 'echo'")
    assert error_of({"task": "echoo", **MINIMAL}) == f"c.toml: 'task' must be one of {listed}, got 'echoo'"
    assert error_of({"task": "echo", "baselines": ["echo_lst"], **MINIMAL}).startswith(
        "c.toml: 'baselines[0]' must be one of 'persistence', "
    )
