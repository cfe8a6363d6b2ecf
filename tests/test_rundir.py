"""Run folders that belong to one run (issue 13): identity, --resume, --overwrite, the lock, the umask."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import tiny_config, write_jena_csv
from rnnkit import rundir
from rnnkit.cli import main
from rnnkit.tasks import parse_config
from rnnkit.errors import RnnkitError
from rnnkit.experiment import run_experiment
from test_cli import toml_of

quiet = {"progress": False, "log": lambda line: None}


@pytest.fixture
def csv(tmp_path):
    return write_jena_csv(tmp_path / "hourly.csv", days=12)


def config_file(tmp_path, csv, name, **overrides):
    path = tmp_path / f"{name}.toml"
    path.write_text(toml_of(tiny_config(csv, name=name, training={"epochs": 1}, **overrides)))
    return path


def one_line(capsys, argv, *fragments):
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in err, err
    return err


def test_identity_is_written_first_and_holds_the_config_hash(tmp_path):
    config = {"name": "x", "a": 1}
    identity = rundir.claim(tmp_path / "run", config)
    try:
        assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [".lock", "run.json"]
        stored = json.loads((tmp_path / "run" / "run.json").read_text())
        assert stored["config_hash"] == rundir.config_hash(config) == identity.config_hash
        assert stored["run_id"] == identity.run_id and len(identity.run_id) == 12
        lock = json.loads((tmp_path / "run" / ".lock").read_text())
        assert lock["pid"] == os.getpid() and lock["host"] == socket.gethostname()
    finally:
        rundir.release(tmp_path / "run")
    assert not (tmp_path / "run" / ".lock").exists()


def test_a_second_run_into_a_folder_is_refused_and_overwrite_replaces_it(tmp_path, csv, capsys):
    run = tmp_path / "run"
    a = config_file(tmp_path, csv, "a")
    b = config_file(
        tmp_path,
        csv,
        "b",
        models=[{"name": "LSTM(3)", "layers": [{"type": "LSTM", "units": 3}, {"type": "Dense", "units": 1}]}],
    )
    assert main(["train", str(a), "--output", str(run), "--quiet"]) == 0
    first = json.loads((run / "run.json").read_text())
    capsys.readouterr()
    one_line(
        capsys,
        ["train", b, "--output", run, "--quiet"],
        f"already holds run {first['run_id']} (a, config hash",
        "--overwrite replaces it",
    )
    assert (run / "models" / "gru_4" / "model.safetensors").is_file()  # untouched
    assert main(["train", str(b), "--output", str(run), "--overwrite", "--quiet"]) == 0
    second = json.loads((run / "run.json").read_text())
    assert second["run_id"] != first["run_id"] and second["name"] == "b"
    assert sorted(p.name for p in (run / "models").iterdir()) == ["lstm_3"]  # the old run's model is gone
    assert list(json.loads((run / "metrics.json").read_text())["models"]).count("GRU(4)") == 0


def test_resume_continues_only_the_run_the_folder_holds(tmp_path, csv, capsys):
    run = tmp_path / "run"
    a = parse_config(tiny_config(csv, name="a", training={"epochs": 1}))
    b = parse_config(tiny_config(csv, name="b", training={"epochs": 1, "seed": 3}))
    run_experiment(a, run, **quiet)
    held = rundir.read_identity(run)
    with pytest.raises(
        RnnkitError, match=f"holds run {held.run_id} of another config .*--resume continues only that run"
    ):
        run_experiment(b, run, resume=True, **quiet)
    assert rundir.read_identity(run) == held
    (run / "run.json").rename(tmp_path / "run.json")  # a folder without an identity (older rnnkit)
    one_line(capsys, ["train", "--resume", run], "nothing to resume: it holds no run identity (run.json)")
    (tmp_path / "run.json").rename(run / "run.json")
    one_line(capsys, ["train", "--resume", run, "--overwrite"], "--resume RUN continues that run")


def test_overwrite_never_empties_a_folder_that_is_not_a_run(tmp_path, csv, capsys):
    folder = tmp_path / "photos"
    folder.mkdir()
    (folder / "holiday.jpg").write_bytes(b"\xff\xd8")
    one_line(
        capsys,
        ["train", config_file(tmp_path, csv, "a"), "--output", folder, "--overwrite", "--quiet"],
        "is not an rnnkit run folder",
    )
    assert (folder / "holiday.jpg").read_bytes() == b"\xff\xd8"


HOLDER = textwrap.dedent("""
    import sys, time
    from rnnkit import rundir
    rundir.claim(sys.argv[1], {"name": "holder"})
    print("held", flush=True)
    time.sleep(60)
""")


def _holder(folder: Path) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(folder)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_writer_fails_at_once_and_a_dead_holders_lock_is_taken_over(tmp_path, csv, capsys):
    run = tmp_path / "run"
    proc = _holder(run)
    try:
        one_line(
            capsys,
            ["train", config_file(tmp_path, csv, "a"), "--output", run, "--quiet"],
            f"in use by another rnnkit run (pid {proc.pid} on host {socket.gethostname()}",
        )
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert json.loads((run / ".lock").read_text())["pid"] == proc.pid  # the dead process's lock is still there
    said = []
    identity = rundir.claim(run, {"name": "holder"}, resume=True, log=said.append)
    try:
        assert said == [
            f"{run}: took over the lock left by pid {proc.pid} on host {socket.gethostname()}, "
            "which is no longer running"
        ]
        assert identity.name == "holder"
        assert json.loads((run / ".lock").read_text())["pid"] == os.getpid()
    finally:
        rundir.release(run)


def test_run_files_follow_the_umask_not_0600(tmp_path, csv):
    old = os.umask(0o002)
    try:
        run_experiment(parse_config(tiny_config(csv, training={"epochs": 1})), tmp_path / "run", **quiet)
    finally:
        os.umask(old)
    modes = {
        p.relative_to(tmp_path / "run").as_posix(): p.stat().st_mode & 0o777
        for p in (tmp_path / "run").rglob("*")
        if p.is_file()
    }
    assert modes["metrics.json"] == modes["run.json"] == modes["models/gru_4/model.safetensors"] == 0o664
    assert set(modes.values()) == {0o664}, modes


def test_the_issues_case_a_killed_run_b_resumes_as_b_never_reading_back_a(tmp_path, csv, capsys, monkeypatch):
    from rnnkit.training import Trainer

    run = tmp_path / "run"
    a = config_file(tmp_path, csv, "a")
    b = tmp_path / "b.toml"
    b.write_text(toml_of(tiny_config(csv, name="b", training={"epochs": 2, "seed": 5})))
    assert main(["train", str(a), "--output", str(run), "--quiet"]) == 0
    a_weights = (run / "models" / "gru_4" / "model.safetensors").read_bytes()
    fit = Trainer.fit

    def interrupted(self, *args, **kwargs):  # B stops in its first model, as a kill would stop it
        raise KeyboardInterrupt

    monkeypatch.setattr(Trainer, "fit", interrupted)
    assert main(["train", str(b), "--output", str(run), "--overwrite", "--quiet"]) == 130
    assert not (run / "models" / "gru_4" / "model.safetensors").exists()  # A's model went with --overwrite
    monkeypatch.setattr(Trainer, "fit", fit)
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "finished in the earlier run, read back" not in out and "training GRU(4)" in out
    assert json.loads((run / "run.json").read_text())["name"] == "b"
    assert (run / "models" / "gru_4" / "model.safetensors").read_bytes() != a_weights
    assert json.loads((run / "models" / "gru_4" / "result.json").read_text())["epochs_run"] == 2


def test_a_published_run_saved_before_rows_had_a_source_resumes_and_evaluates(tmp_path, csv, capsys):
    """[published] rows gained ``source`` (default none): a run saved without it has another config hash."""
    run = tmp_path / "run"
    published = {
        "source": "a made-up reference",
        "rows": [{"model": "GRU(4) there", "run_as": "GRU(4)", "mae_val": 4.8}],
    }
    run_experiment(parse_config({**tiny_config(csv, training={"epochs": 1}), "published": published}), run, **quiet)
    saved = json.loads((run / "config.json").read_text())
    assert saved["published"]["rows"][0]["source"] is None
    del saved["published"]["rows"][0]["source"]  # as the older rnnkit wrote it, with its hash in run.json
    (run / "config.json").write_text(json.dumps(saved))
    old = {**json.loads((run / "run.json").read_text())}
    as_claimed = {k: v for k, v in saved.items() if k != "data_used"}
    old["config_hash"] = rundir.config_hash(as_claimed)
    (run / "run.json").write_text(json.dumps(old))
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--quiet"]) == 0, capsys.readouterr().err
    assert "finished in the earlier run, read back" in capsys.readouterr().out
    now = json.loads((run / "run.json").read_text())
    assert now["run_id"] == old["run_id"] and now["config_hash"] != old["config_hash"]
    assert now["config_hash"] == rundir.config_hash(parse_config(as_claimed).to_dict())  # today's hash from now on
    assert main(["train", "--resume", str(run), "--quiet"]) == 0  # and again, on the config.json it wrote
    assert main(["evaluate", str(run)]) == 0
    assert "GRU(4) there" in capsys.readouterr().out
    saved["training"]["seed"] = 7  # a saved config that is not the run's own is still refused
    (run / "config.json").write_text(json.dumps(saved))
    one_line(capsys, ["train", "--resume", run], "of another config")
