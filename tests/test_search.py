"""rnnkit sweep (rnnkit.search): the [search] checks, the best config's round trip, workers, a killed
worker, PostgreSQL and pruning, each on a tiny slice of the embedded hourly record (seconds a trial)."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from rnnkit.cli import main
from rnnkit.config import config_toml
from rnnkit.tasks import load_config, parse_config
from rnnkit.errors import RnnkitError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

optuna = pytest.importorskip("optuna", reason="rnnkit sweep needs optuna (pip install -e '.[sweep]')")

# ~1,750 hourly training windows of 2 columns, 2 epochs of a GRU(2-8): about a second a trial.
TINY = {
    "name": "tiny",
    "baselines": ["persistence"],
    "data": {
        "source": "record",
        "step": 6,
        "columns": ["T (degC)", "p (mbar)"],
        "split": [0.025, 0.01, 0.965],
        "split_per_segment": False,
    },
    "windows": {"sequence_length": 12, "horizon": 6},
    "training": {"epochs": 2, "batch_size": 64},
    "models": [{"name": "GRU", "layers": [{"type": "GRU", "units": 4}, {"type": "Dense", "units": 1}]}],
    "output": {"report": False},
    "search": {
        "trials": 3,
        "params": {
            "training.learning_rate": {"type": "float", "low": 1e-3, "high": 1e-2, "log": True},
            "models[0].layers[0].units": {"type": "int", "low": 2, "high": 8, "step": 2},
        },
    },
}


def tiny(**search) -> dict:
    raw = copy.deepcopy(TINY)
    raw["search"].update(search)
    return raw


def write(tmp_path: Path, raw: dict, name: str = "sweep.toml") -> Path:
    path = tmp_path / name
    path.write_text(config_toml(parse_config(raw)), encoding="utf-8")
    return path


def study_trials(folder: Path | None, name: str = "tiny", url: str | None = None):
    from rnnkit.search import opened

    with _quiet(), opened(url or f"sqlite:///{folder / 'study.db'}") as storage:
        return optuna.load_study(study_name=name, storage=storage).get_trials()


def _quiet():
    from rnnkit.search import _quiet_optuna

    return _quiet_optuna()


# --- [search] checks -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"training.learnig_rate": {"type": "float", "low": 1e-3, "high": 1e-2}},
            "search.params.'training.learnig_rate': unknown parameter: no key 'learnig_rate' there (did you mean 'learning_rate'?)",
        ),
        (
            {"models[0].layers[0].unit": {"type": "int", "low": 2, "high": 8}},
            "search.params.'models[0].layers[0].unit': the value 2 does not fit: models[0].layers[0]: unknown argument "
            "'unit' for GRU (did you mean 'units'?)",
        ),
        (
            {"models[1].layers[0].units": {"type": "int", "low": 2, "high": 8}},
            "search.params.'models[1].layers[0].units': 'models[1]' is not in the config (models is a list of 1)",
        ),
        (
            {"training.learning_rate": {"type": "float", "low": 1e-2, "high": 1e-3}},
            "'search.params.training.learning_rate': empty range: low must be <= high, got low = 0.01, high = 0.001",
        ),
        (
            {"models[0].layers[0].units": {"type": "float", "low": 2.0, "high": 8.0}},
            "search.params.'models[0].layers[0].units': a float distribution does not fit an integer value (now 4)",
        ),
        (
            {"models[0].layers[0].recurrent_dropout": {"type": "int", "low": 0, "high": 2}},
            "search.params.'models[0].layers[0].recurrent_dropout': the value 2 does not fit: models[0].layers[0] (GRU): "
            "recurrent_dropout",
        ),
        (
            {"training.epochs": {"type": "float", "low": 1.0, "high": 4.0}},
            "search.params.'training.epochs': a float distribution does not fit an integer value (now 2): use type = 'int'",
        ),
        (
            {"windows.residual": {"type": "int", "low": 0, "high": 1}},
            "search.params.'windows.residual': type = 'int' does not fit a true/false value",
        ),
        (
            {"training.optimizer": {"type": "categorical", "choices": ["adam", "adamw"]}},
            "search.params.'training.optimizer': the value 'adamw' does not fit: 'training.optimizer' must be one of "
            "'adam', 'rmsprop', 'sgd', got 'adamw'",
        ),
        (
            {"training.learning_rate": {"type": "float", "low": 0.0, "high": 1e-2, "log": True}},
            "log = true needs low > 0, got low = 0.0",
        ),
        ({"windows": {"type": "int", "low": 1, "high": 2}}, "search.params.'windows': names a whole table or list"),
    ],
)
def test_search_space_errors_name_the_parameter(params, message):
    raw = tiny()
    raw["search"]["params"] = params
    with pytest.raises(RnnkitError) as e:
        parse_config(raw, "x.toml")
    assert message in str(e.value), str(e.value)
    assert str(e.value).startswith("x.toml: ") and "\n" not in str(e.value)


def test_the_metric_is_a_validation_score_never_a_test_score():
    with pytest.raises(RnnkitError, match="must be a validation score .* got 'mae_test'"):
        parse_config(tiny(metric="mae_test"), "x.toml")


def test_bad_search_at_the_command_line_is_one_line_exit_2(tmp_path, capsys):
    raw = tiny()
    raw["search"]["params"] = {"models[0].layers[0].units": {"type": "int", "low": 8, "high": 2}}
    path = tmp_path / "bad.toml"
    text = config_toml(parse_config(TINY)).replace("low = 2, high = 8", "low = 8, high = 2")
    path.write_text(text, encoding="utf-8")
    assert main(["sweep", str(path), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty range: low must be <= high, got low = 8, high = 2" in err


def test_unreachable_storage_is_one_line_exit_2(tmp_path, capsys):
    with socket.socket() as s:  # a port that nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write(tmp_path, TINY)
    url = f"postgresql://nobody:secret@127.0.0.1:{port}/sweeps"
    assert main(["sweep", str(config), "--output", str(tmp_path / "out"), "--storage", url]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"rnnkit: error: --storage postgresql://nobody:***@127.0.0.1:{port}/sweeps: cannot open")
    assert "secret" not in err and "\n" not in err
    assert main(["sweep", str(config), "--output", str(tmp_path / "out2"), "--storage", "mysql://x/y"]) == 2
    assert "--storage must be sqlite:///FILE, postgresql://" in capsys.readouterr().err


def test_every_shipped_config_survives_the_toml_round_trip():
    for path in sorted(Path(__file__).parents[1].joinpath("configs").glob("*.toml")):
        config = load_config(path)
        assert parse_config(tomllib.loads(config_toml(config)), str(path)) == config, path


# --- one worker: the table, best.toml, plots -------------------------------------------------------


def test_sweep_writes_the_table_and_a_best_config_that_train_reproduces_exactly(tmp_path, capsys):
    config = write(tmp_path, TINY)
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    trials = study_trials(out)
    assert [t.number for t in trials] == [0, 1, 2]
    assert [t.state.name for t in trials] == ["COMPLETE"] * 3
    assert "trials: 3 COMPLETE, 0 PRUNED, 0 FAIL" in printed
    table = (out / "trials.csv").read_text().splitlines()
    assert table[0] == "number,state,value,seconds,training.learning_rate,models[0].layers[0].units"
    assert len(table) == 4
    for t in trials:  # the trial's value is the mae_val of its own run folder
        metrics = json.loads((out / "trials" / f"{t.number:04d}" / "metrics.json").read_text())
        assert metrics["models"]["GRU"]["mae_val"] == t.value
        run_config = json.loads((out / "trials" / f"{t.number:04d}" / "config.json").read_text())
        assert run_config["models"][0]["layers"][0]["units"] == t.params["models[0].layers[0].units"]
        assert run_config["training"]["learning_rate"] == t.params["training.learning_rate"]
    best = min(trials, key=lambda t: t.value)
    assert f"best: trial {best.number}, mae_val {best.value:.6g}" in printed
    for plot in ("history.png", "importances.png", "slice.png"):
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # best.toml is the best trial's whole config, without [search]; train runs it as it is
    chosen = load_config(out / "best.toml")
    assert chosen.search is None
    assert chosen.training.learning_rate == best.params["training.learning_rate"]
    assert chosen.models[0].layers[0]["units"] == best.params["models[0].layers[0].units"]
    again = tmp_path / "again"
    assert main(["train", str(out / "best.toml"), "--output", str(again), "--quiet"]) == 0
    metrics = json.loads((again / "metrics.json").read_text())
    assert metrics["models"]["GRU"]["mae_val"] == best.value  # the same seed, one thread: the same bits


def test_a_sweep_with_the_same_seed_samples_the_same_trials(tmp_path):
    config = write(tmp_path, tiny(trials=2))
    for name in ("a", "b"):
        assert main(["sweep", str(config), "--output", str(tmp_path / name)]) == 0
    a, b = study_trials(tmp_path / "a"), study_trials(tmp_path / "b")
    assert [t.params for t in a] == [t.params for t in b]
    assert [t.value for t in a] == [t.value for t in b]


def test_resume_continues_the_study_to_more_trials(tmp_path, capsys):
    config = write(tmp_path, tiny(trials=1))
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--output", str(out)]) == 0
    assert main(["sweep", str(config), "--output", str(out)]) == 2  # the folder is taken: refused
    assert "already holds run" in capsys.readouterr().err
    assert main(["sweep", str(config), "--output", str(out), "--resume", "--trials", "2"]) == 0
    assert [t.state.name for t in study_trials(out)] == ["COMPLETE", "COMPLETE"]


def test_resume_runs_new_trials_in_place_of_those_stopped_while_running(tmp_path, capsys):
    """``--trials N`` counts the trials that ran to their end: after a Ctrl-C (FAIL "interrupted", stopped), a
    killed worker (FAIL, its worker gone) or a lost heartbeat (FAIL with no reason, Optuna's), ``--resume`` with
    the same N runs new trials until N count. A FAIL on the trial's own bad input ran and counts. Before, every
    trial counted, and a resumed sweep ended with fewer than N finished trials (or ran none at all)."""
    from rnnkit.search import INTERRUPTED, counted, fail_trial, opened

    config = write(tmp_path, tiny(trials=1))
    out = tmp_path / "sweep"
    assert main(["sweep", str(config), "--output", str(out)]) == 0
    with _quiet(), opened(f"sqlite:///{out / 'study.db'}") as storage:
        study = optuna.load_study(study_name="tiny", storage=storage)
        fail_trial(study, study.ask(), INTERRUPTED, stopped=True)  # as Ctrl-C leaves a trial
        fail_trial(study, study.ask(), "its worker (pid 1) ended while the trial ran", stopped=True)
        study.tell(study.ask(), state=optuna.trial.TrialState.FAIL)  # as Optuna's heartbeat check: no reason
        fail_trial(study, study.ask(), "sequence_length 4000 is too long for the data", bad_input=True)
        assert counted(study.get_trials()) == 2  # trial 0 (COMPLETE) and trial 4 (bad input)
    capsys.readouterr()
    assert main(["sweep", str(config), "--output", str(out), "--resume", "--trials", "3"]) == 0
    states = {t.number: t.state.name for t in study_trials(out)}
    assert states == {0: "COMPLETE", 1: "FAIL", 2: "FAIL", 3: "FAIL", 4: "FAIL", 5: "COMPLETE"}
    assert "trials: 2 COMPLETE, 0 PRUNED, 4 FAIL" in capsys.readouterr().out
    assert main(["sweep", str(config), "--output", str(out), "--resume", "--trials", "3"]) == 0  # 3 count: none more
    assert len(study_trials(out)) == 6


def test_a_journal_file_holds_the_study_too(tmp_path):
    from rnnkit.search import run_sweep

    lines: list[str] = []
    summary = run_sweep(
        parse_config(tiny(trials=2)), tmp_path / "sweep", storage=f"journal:{tmp_path / 'study.log'}", log=lines.append
    )
    assert summary["counts"]["COMPLETE"] == 2 and (tmp_path / "study.log").stat().st_size > 0
    assert not (tmp_path / "sweep" / "study.db").exists()
    assert [t.state.name for t in study_trials(None, url=f"journal:{tmp_path / 'study.log'}")] == ["COMPLETE"] * 2


# --- distinct trials -------------------------------------------------------------------------------

# Four workers' studies on one SQLite file, in a forced order: worker 1 runs trial 0 alone; workers
# 0 and 2 join after it (the old seed, seed + worker + trials done, was 1 for both workers 0 and 1),
# ask together on the same history and tell; worker 3 joins late; worker 2 leaves and joins again
# (a --resume); then pairs of workers ask on the same history, past TPE's startup trials.
JOIN_ORDER = [
    ("join", 1),
    ("ask", 1),
    ("tell", 1),
    ("join", 0),
    ("join", 2),
    ("ask", 0),
    ("ask", 2),
    ("tell", 2),
    ("tell", 0),
    ("join", 3),
    ("ask", 3),
    ("ask", 1),
    ("ask", 0),
    ("tell", 1),
    ("tell", 3),
    ("tell", 0),
    ("join", 2),
    ("ask", 2),
    ("ask", 3),
    ("tell", 3),
    ("tell", 2),
    ("ask", 0),
    ("ask", 1),
    ("ask", 2),
    ("ask", 3),
    ("tell", 0),
    ("tell", 1),
    ("tell", 2),
    ("tell", 3),
    ("ask", 3),
    ("ask", 2),
    ("tell", 2),
    ("tell", 3),
    ("ask", 1),
    ("tell", 1),
]


@pytest.mark.parametrize("sampler", ["tpe", "random"])
def test_workers_never_draw_the_same_trial_in_any_join_order(tmp_path, sampler):
    from rnnkit.search import Sweep, ask_trial, opened, sample, sampler_of

    raw = tiny(sampler=sampler, seed=0, startup_trials=2)
    raw["search"]["params"] = {
        "training.learning_rate": {"type": "float", "low": 1e-4, "high": 1e-1, "log": True},
        "models[0].layers[0].dropout": {"type": "float", "low": 0.0, "high": 0.3},
    }
    config = parse_config(raw)
    url = f"sqlite:///{tmp_path / 'study.db'}"
    trials = sum(op == "ask" for op, _ in JOIN_ORDER)
    sweep = Sweep(config, tmp_path, url, "tiny", trials)
    with _quiet(), opened(url) as storage:
        optuna.create_study(study_name="tiny", storage=storage, direction="minimize")
        studies, running = {}, {}
        for op, k in JOIN_ORDER:
            if op == "join":  # a worker's own study object, as a process loads it
                studies[k] = optuna.load_study(study_name="tiny", storage=storage, sampler=sampler_of(config.search, 0))
            elif op == "ask":
                trial = ask_trial(sweep, studies[k], storage, log=lambda line: None)
                running[k] = (trial, sample(trial, config.search))
            else:
                trial, values = running.pop(k)  # a value that TPE can learn from: the distance to a point
                lr, dropout = values["training.learning_rate"], values["models[0].layers[0].dropout"]
                studies[k].tell(trial, (math.log10(lr) + 2.5) ** 2 + (dropout - 0.1) ** 2)
        assert ask_trial(sweep, studies[0], storage, log=lambda line: None) is None  # the study is full
        done = optuna.load_study(study_name="tiny", storage=storage).get_trials()
    assert [t.number for t in done] == list(range(trials)) and {t.state.name for t in done} == {"COMPLETE"}
    drawn = [tuple(sorted(t.params.items())) for t in done]
    assert len(set(drawn)) == trials == 15, drawn
    from rnnkit.search import trial_seed

    assert len({trial_seed(0, n) for n in range(1000)}) == 1000


# --- workers ---------------------------------------------------------------------------------------


def _runs_per_trial(folder: Path) -> dict[int, int]:
    """How often each trial number was started, from the workers' logs."""
    counts: dict[int, int] = {}
    for log in folder.glob("worker-*.log"):
        for line in log.read_text().splitlines():
            words = line.split()
            if len(words) > 3 and words[1] == "trial" and words[3].startswith("{"):
                number = int(words[2].rstrip(":"))
                counts[number] = counts.get(number, 0) + 1
    return counts


def test_a_killed_worker_loses_only_its_running_trial(tmp_path):
    from rnnkit.search import run_sweep

    raw = tiny(trials=4)
    raw["training"]["epochs"] = 4  # long enough to be caught running
    out = tmp_path / "sweep"
    killed: list[int] = []

    def kill_one(pids: list[int]) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            time.sleep(0.2)
            try:
                with sqlite3.connect(out / "study.db", timeout=30) as db:
                    rows = db.execute(
                        "select t.number, a.value_json from trials t join trial_user_attributes a "
                        "on a.trial_id = t.trial_id where t.state = 'RUNNING' and a.key = 'worker'"
                    ).fetchall()
            except sqlite3.OperationalError:
                continue
            if rows:
                number, worker = rows[0]
                os.kill(json.loads(worker)["pid"], signal.SIGKILL)
                killed.append(number)
                return
        raise AssertionError("no trial was seen running")

    lines: list[str] = []
    summary = run_sweep(parse_config(raw), out, workers=2, on_start=kill_one, log=lines.append)
    trials = {t.number: t.state.name for t in study_trials(out)}
    assert len(killed) == 1 and trials[killed[0]] == "FAIL"
    assert sorted(trials) == [
        0,
        1,
        2,
        3,
        4,
    ]  # the other worker went on to 4 trials that ran, one in the lost one's place
    assert sorted(trials.values()) == ["COMPLETE", "COMPLETE", "COMPLETE", "COMPLETE", "FAIL"]
    assert summary["counts"] == {"COMPLETE": 4, "PRUNED": 0, "FAIL": 1, "RUNNING": 0}
    assert any("was ended by signal 9" in line for line in lines)
    for number, state in trials.items():  # each finished trial's line, printed once and whole by the sweep
        if state == "COMPLETE":
            pattern = rf"trial {number}: COMPLETE, mae_val [\d.]+, [\d.]+ s, \{{\"training.learning_rate\": .*\}}"
            assert sum(re.fullmatch(pattern, line) is not None for line in lines) == 1, lines
    # the other worker found the killed one's trial orphaned at its next ask (no zombie looks alive)
    marked = "".join(log.read_text() for log in out.glob("worker-*.log"))
    assert f"trial {killed[0]}: its worker is gone; marked FAIL" in marked
    started = _runs_per_trial(out)  # the killed trial's line is there if it got that far
    assert set(started.values()) == {1} and {n for n, s in trials.items() if s == "COMPLETE"} <= set(started)
    folders = {int(p.name) for p in (out / "trials").iterdir()}  # the killed trial's, if it got that far
    assert {n for n, state in trials.items() if state == "COMPLETE"} <= folders <= set(trials)


def test_a_worker_stops_when_its_sweep_is_gone_and_never_mid_storage_call():
    from rnnkit.search import ParentGone, WorkerStop

    WorkerStop(None).check()  # the sweep's own process: nothing to watch
    WorkerStop(os.getppid()).check()  # its parent runs
    with pytest.raises(ParentGone, match=rf"the sweep's process \(pid {os.getpid()}\) ended"):
        WorkerStop(os.getpid()).check()  # the fallback: the parent pid is no longer the sweep's
    stop = WorkerStop(os.getppid())
    with pytest.raises(ParentGone):
        with stop.storage_call():
            stop._on_signal(15, None)  # the parent-death signal inside a tell: it waits for the call's end
            reached = True
    assert reached
    stop._on_signal(15, None)  # a second signal while the first one's stop runs: ignored


def test_ctrl_c_that_python_cannot_raise_prints_nothing_and_stops_at_the_next_check(capsys):
    """A SIGINT that comes inside a ``__del__`` (or a weakref callback, as seen in a sweep's worker) cannot
    be raised there: Python prints "Exception ignored in ..." and a traceback. WorkerStop drops that
    print; the stop stays pending and the next check raises it. Outside a storage call, it raises at once."""
    from rnnkit.search import INTERRUPTED, ParentGone, WorkerStop

    class SignalledWhileDying:
        def __del__(self):
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):  # the handler runs between these steps, inside __del__
                pass

    stop = WorkerStop(None)
    disarm = stop.arm()
    try:
        dying = SignalledWhileDying()
        del dying
        assert capsys.readouterr().err == ""
        assert stop.pending and stop.interrupted
        with pytest.raises(ParentGone, match=re.escape(INTERRUPTED)):
            stop.check()
        with pytest.raises(ParentGone):  # a fresh stop: the signal raises where Python can raise it
            fresh = WorkerStop(None)
            disarm()
            disarm = fresh.arm()
            os.kill(os.getpid(), signal.SIGINT)
            for _ in range(1000):
                pass
    finally:
        disarm()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # given back


# --- pruning ---------------------------------------------------------------------------------------


def test_the_median_pruner_stops_trials_that_learn_nothing(tmp_path):
    # A learning rate of 1e-6 leaves the GRU where it started: after the first trials, its epochs'
    # validation loss lies above the median and the pruner stops it after epoch 1.
    raw = tiny(trials=6, sampler="random", seed=0, pruner="median", startup_trials=1)
    raw["training"]["epochs"] = 3
    raw["search"]["params"] = {"training.learning_rate": {"type": "categorical", "choices": [1e-6, 3e-2]}}
    from rnnkit.search import run_sweep

    summary = run_sweep(parse_config(raw), tmp_path / "sweep", log=lambda line: None)
    trials = study_trials(tmp_path / "sweep")
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    assert summary["counts"]["PRUNED"] == len(pruned) >= 1
    assert all(t.params["training.learning_rate"] == 1e-6 for t in pruned)
    assert all(max(t.intermediate_values) < 3 for t in pruned)  # stopped before the last epoch
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    assert all(len(t.intermediate_values) == 3 for t in complete)
    # the table gives a value to complete trials only (a pruned one's last loss is in other units)
    import pandas as pd

    table = pd.read_csv(tmp_path / "sweep" / "trials.csv").set_index("number")
    for t in trials:
        row = table.loc[t.number]
        assert row["state"] == t.state.name
        if t.state.name == "PRUNED":
            assert pd.isna(row["value"]) and row["pruned_after"] == t.last_step
        else:
            assert row["value"] == t.value and pd.isna(row["pruned_after"])


# --- PostgreSQL ------------------------------------------------------------------------------------


def _postgres_bin() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return versions[-1].parent if versions else None


@pytest.fixture
def postgres():
    """A real PostgreSQL server in a temporary folder (Debian's binaries), its URL; skipped where none can start."""
    pytest.importorskip("psycopg", reason="the PostgreSQL test needs psycopg (pip install -e '.[sweep]')")
    bin_dir = _postgres_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server binaries (initdb) on this machine: apt-get install postgresql")
    import tempfile

    # not under pytest's folder: that is private to its user, and the server runs as another one
    folder = Path(tempfile.mkdtemp(prefix="rnnkit-pg-"))
    data = folder / "data"
    prefix: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root: run it as the postgres user
        runuser = shutil.which("runuser")
        try:
            import pwd

            pwd.getpwnam("postgres")
        except KeyError:
            runuser = None
        if runuser is None:
            pytest.skip("running as root with no 'postgres' user or runuser: cannot start a PostgreSQL server")
        shutil.chown(folder, "postgres")
        prefix = [runuser, "-u", "postgres", "--"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    init = subprocess.run(
        [*prefix, str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "sweeper"],
        capture_output=True,
        text=True,
    )
    if init.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"initdb failed, no PostgreSQL server can start here: {init.stderr.strip()[:200]}")
    start = subprocess.run(
        [
            *prefix,
            str(bin_dir / "pg_ctl"),
            "-D",
            str(data),
            "-w",
            "-l",
            str(folder / "log"),
            "-o",
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1",
            "start",
        ],
        capture_output=True,
        text=True,
    )
    if start.returncode != 0:
        shutil.rmtree(folder, ignore_errors=True)
        pytest.skip(f"pg_ctl start failed, no PostgreSQL server here: {start.stderr.strip()[:200]}")
    try:
        yield f"postgresql://sweeper@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run(
            [*prefix, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], capture_output=True
        )
        shutil.rmtree(folder, ignore_errors=True)


def test_two_workers_share_a_study_on_a_real_postgresql_server(tmp_path, postgres, capsys):
    from rnnkit.search import run_sweep

    config = write(tmp_path, tiny(trials=5))
    out, other = tmp_path / "sweep", tmp_path / "other-machine"
    joined: list[subprocess.Popen] = []

    def join_from_another_folder(pids: list[int]) -> None:
        # a second sweep in its own folder (another machine: another file lock) joins the study at once
        joined.append(
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "rnnkit",
                    "sweep",
                    str(config),
                    "--output",
                    str(other),
                    "--storage",
                    postgres,
                    "--study",
                    "pg-tiny",
                    "--resume",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )

    summary = run_sweep(
        load_config(config),
        out,
        workers=2,
        storage=postgres,
        study="pg-tiny",
        on_start=join_from_another_folder,
        log=lambda line: None,
    )
    printed = joined[0].communicate(timeout=300)[0]
    assert joined[0].returncode == 0, printed
    trials = study_trials(None, "pg-tiny", postgres)
    assert sorted(t.number for t in trials) == [0, 1, 2, 3, 4]  # exactly 5, whoever ran them
    assert all(t.state.name == "COMPLETE" for t in trials) and summary["trials"] == 5
    started = _runs_per_trial(out)
    for n, count in _runs_per_trial(other).items():
        started[n] = started.get(n, 0) + count
    assert started == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1}  # each once, over both folders
    assert not (out / "study.db").exists()  # the study lives in the server
    assert load_config(other / "best.toml").search is None
