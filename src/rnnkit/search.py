"""Hyper-parameter sweeps on Optuna: ``rnnkit sweep CONFIG`` searches the config's ``[search]`` space.

Each trial is the config with the sampled values set at their dotted paths
(:func:`rnnkit.config.override`), trained by the runner like ``rnnkit train`` into its own run
folder, and scored by a validation score of its models (``search.metric``; the test part is only
reported). A sweep folder holds::

    run.json, .lock     the folder's identity and its writer's lock (rnnkit.rundir)
    study.db            the Optuna study (SQLite) unless --storage names another
    trials/NNNN/        each trial's run folder (config.json, metrics.json, models/, ...)
    worker-K.log        what worker K did, trial by trial
    trials.csv          number, state, value, seconds, the sampled values (and why each FAIL failed);
                        rewritten after each trial, so it never lags the study
    best.toml           the best trial's whole config: ``rnnkit train best.toml`` trains it again
    history.png, importances.png, slice.png    Optuna's plots (matplotlib)

Storage: ``sqlite:///FILE`` (the default, ``study.db`` in the folder), ``postgresql://USER@HOST/DB``
(workers on many machines share one study) or ``journal:FILE`` (Optuna's journal file, for a
shared file system). ``--workers K`` starts K processes on this machine; each asks the study for
a trial under a lock (a file lock in the folder; on PostgreSQL also an advisory lock, which holds
across machines), so the study ends with exactly ``trials`` trials that ran to their end
(COMPLETE, PRUNED, or FAIL on their own input: :func:`counted`). A trial stopped while it ran (Ctrl-C,
a killed worker or sweep) is FAIL and does not count: the sweep, or its ``--resume``, runs another in
its place. A worker that dies (``kill -9``) loses only its running trial: the others, and the sweep
at its end, mark it FAIL (its process is gone; on a database, also when its heartbeat stops). The workers stop with the
sweep's process, ``kill -9`` included (WorkerStop); their running trials are then FAIL, and the
sweep's console prints one line per finished trial, whichever worker ran it. Ctrl-C stops the
sweep and its workers: each running trial is told FAIL ("interrupted"), trials.csv is written, and
the command line says in one line how many trials finished and how to ``--resume`` (exit code 130).

Each trial draws its values with a sampler seeded by the study's seed and the trial's number
(:func:`trial_seed`): never two trials with one seed, in any join order, after any ``--resume``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import multiprocessing
import os
import socket
import sys
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from rnnkit.config import ExperimentConfig, SearchConfig, SearchParam, set_value
from rnnkit.errors import Interrupted, RnnkitError
from rnnkit.rundir import pid_alive
from rnnkit.tasks import parse_config
from rnnkit.training.hooks import Hook

HEARTBEAT_SECONDS = 5  # a worker's heartbeat on a database storage
GRACE_SECONDS = 30  # a RUNNING trial without a heartbeat for this long is marked FAIL
STOP_SECONDS = 20  # after Ctrl-C, how long the workers have to tell their trials FAIL before SIGTERM, then SIGKILL
INTERRUPTED = "interrupted (Ctrl-C) while the trial ran"
LOCK_FILE = ".ask.lock"


# --- storage and study --------------------------------------------------------------------------


def default_storage(folder: str | Path) -> str:
    """The study's storage when --storage is not given: SQLite in the sweep folder."""
    return f"sqlite:///{Path(folder).resolve() / 'study.db'}"


def shown(url: str) -> str:
    """A storage URL with its password hidden.

    Example:
        >>> shown("postgresql://ann:secret@db:5432/sweeps")
        'postgresql://ann:***@db:5432/sweeps'
    """
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, at, host = rest.rpartition("@")
    user, colon, _ = credentials.partition(":")
    return f"{scheme}://{user}{':***' if colon else ''}@{host}"


def open_storage(url: str):
    """An Optuna storage for ``url`` (sqlite:///, postgresql://, journal:FILE); bad or unreachable: RnnkitError."""
    import optuna
    from sqlalchemy.exc import ArgumentError, SQLAlchemyError

    if url.startswith("journal:"):
        path = Path(url.removeprefix("journal:").removeprefix("//"))
        if not path.parent.is_dir():
            raise RnnkitError(f"--storage {url}: the journal's folder {path.parent} does not exist")
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(path)))
    scheme = url.partition("://")[0].partition("+")[0]
    if scheme not in ("sqlite", "postgresql"):
        raise RnnkitError(
            f"--storage must be sqlite:///FILE, postgresql://USER@HOST/DATABASE or journal:FILE, got {shown(url)!r}"
        )
    engine: dict[str, Any] = (
        {"connect_args": {"timeout": 60}}
        if scheme == "sqlite"
        else {"connect_args": {"connect_timeout": 10}, "pool_pre_ping": True}
    )
    try:
        with _quiet_optuna():
            return optuna.storages.RDBStorage(
                url, engine_kwargs=engine, heartbeat_interval=HEARTBEAT_SECONDS, grace_period=GRACE_SECONDS
            )
    except (SQLAlchemyError, ArgumentError, ImportError, ValueError) as e:
        reason = str(getattr(e, "orig", None) or e).strip().splitlines()[0]
        raise RnnkitError(f"--storage {shown(url)}: cannot open the study's database: {reason}") from None


@contextlib.contextmanager
def opened(url: str) -> Iterator[Any]:
    """:func:`open_storage`, its database connections closed at the end (a server sees no dangling session)."""
    storage = open_storage(url)
    try:
        yield storage
    finally:
        engine = getattr(storage, "engine", None)
        if engine is not None:
            storage.remove_session()
            engine.dispose()


@contextlib.contextmanager
def _quiet_optuna() -> Iterator[None]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        # ask/tell with a heartbeat: this module beats for the trial itself (_heartbeat)
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        yield


def direction_of(config: ExperimentConfig) -> tuple[str, Literal["minimize", "maximize"]]:
    """The metric and its direction: ``search.metric`` (default the task's validation score) and whether lower is better."""
    from rnnkit.tasks import task_class

    task = task_class(config.task)
    search = config.search
    metric = search.metric or task.best_key
    if search.direction is not None:
        return metric, search.direction
    if metric != task.best_key:
        raise RnnkitError(
            f"search.direction: say 'minimize' or 'maximize' for search.metric = {metric!r} "
            f"(only the task's own {task.best_key!r} has a known direction)"
        )
    return metric, "minimize" if task.lowest else "maximize"


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial ``number`` of a study with ``search.seed = seed``.

    A function of the study's seed and the trial's number alone. The trial numbers of a study are
    distinct, so the seeds are too, whichever worker asks, in whatever order workers join, after any
    ``--resume`` and on any number of machines. (The seed was ``seed + worker + trials done``, which
    two workers reached together: they ran the same trials.) A hash (numpy's SeedSequence), not
    ``seed + number``, so that seed 1 does not draw seed 0's trials shifted by one.

    Example:
        >>> trial_seed(0, 0) != trial_seed(0, 1) != trial_seed(1, 0)
        True
    """
    import numpy as np

    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def sampler_of(search: SearchConfig, number: int):
    """The sampler that draws trial ``number``, seeded by :func:`trial_seed`: a fresh one for each trial.

    Fresh, because TPE after its startup trials is a function of the study's history and its
    random state: two workers that ask on the same history with one long-lived sampler each would
    differ only by their seeds' histories; one sampler per trial number makes them differ by design.
    """
    import optuna

    seed = trial_seed(search.seed, number)
    if search.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=search.startup_trials)


def pruner_of(search: SearchConfig):
    import optuna

    if search.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=search.startup_trials)
    if search.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1)
    return optuna.pruners.NopPruner()


# --- one trial ----------------------------------------------------------------------------------


def suggest(trial, path: str, param: SearchParam) -> Any:
    """The value of one dimension for this trial, drawn by the study's sampler."""
    if param.type == "categorical":
        return trial.suggest_categorical(path, param.choices)
    if param.type == "int":
        return trial.suggest_int(path, param.low, param.high, step=param.step or 1, log=param.log)
    return trial.suggest_float(path, param.low, param.high, step=param.step, log=param.log)


def trial_config(config: ExperimentConfig, values: dict[str, Any], source: str) -> ExperimentConfig:
    """The config a trial trains: ``config`` without its [search], with ``values`` set at their paths."""
    raw = config.to_dict()
    raw.pop("search", None)
    for path, value in values.items():
        set_value(raw, path, value)
    return parse_config(raw, source)


class Pruning(Hook):
    """The epoch hook that reports each epoch's validation loss to the trial and stops it when the pruner says so.

    The loss is negated for a maximised metric, so that the pruner compares in the study's direction.
    """

    def __init__(self, trial, sign: float = 1.0, stop: WorkerStop | None = None) -> None:
        self.trial = trial
        self.sign = sign
        self.stop = stop or WorkerStop(None)

    def on_epoch_end(self, loop, record: dict[str, Any]) -> None:
        if "val_loss" not in record:
            return
        import optuna

        with self.stop.storage_call():  # a report cut by a signal could leave the database locked
            self.trial.report(self.sign * float(record["val_loss"]), loop.epoch)
            prune = self.trial.should_prune()
        if prune:
            raise optuna.TrialPruned(f"pruned after epoch {loop.epoch} (val_loss {record['val_loss']:.4g})")


def trial_value(
    metrics: dict[str, Any], search: SearchConfig, chosen: ExperimentConfig, metric: str, direction: str
) -> float:
    """A trial's value: ``metric`` of ``search.model``, or the best of the trial's models by it."""
    models = metrics.get("models", {})
    names = [search.model] if search.model else [m.name for m in chosen.models]
    scores = {}
    for name in names:
        result = models.get(name, {})
        if metric not in result:
            known = sorted(k for k in result if k.endswith("_val"))
            raise RnnkitError(
                f"search.metric {metric!r} is not a score of model {name!r}; its validation scores are {known}"
            )
        scores[name] = float(result[metric])
    return (min if direction == "minimize" else max)(scores.values())


# --- the study's trials and its locks ------------------------------------------------------------


@dataclass
class Sweep:
    """Where a sweep runs: its config (with [search]), folder, storage URL and study name."""

    config: ExperimentConfig
    folder: Path
    storage: str
    study: str
    trials: int


def _me() -> dict[str, Any]:
    return {"host": socket.gethostname(), "pid": os.getpid()}


def fail_orphans(study, log: Callable[[str], None] | None = None) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker is gone: a process of this host that no longer runs,
    or (on a database) a trial whose heartbeat stopped. Returns their numbers.

    A trial failed here records why in its ``error`` attribute (the error column of trials.csv):
    its worker was killed, or the sweep that started it was (``kill -9`` of ``rnnkit sweep``).
    """
    import optuna
    from optuna.trial import TrialState

    failed = []
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        worker = t.user_attrs.get("worker") or {}
        pid = int(worker.get("pid", -1))
        if worker.get("host") == host and not pid_alive(pid):
            with contextlib.suppress(RuntimeError, ValueError):  # another worker failed it first
                fail_trial(
                    study,
                    t,
                    f"its worker (pid {pid}) ended while the trial ran: killed, or its sweep was",
                    stopped=True,
                )
                failed.append(t.number)
    before = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))}
    optuna.storages.fail_stale_trials(study)  # heartbeat-based (database storages only)
    failed += sorted(
        {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))} - before - set(failed)
    )
    if log is not None:
        for number in failed:
            log(f"trial {number}: its worker is gone; marked FAIL")
    return failed


def fail_trial(study, trial, reason: str, *, bad_input: bool = False, stopped: bool = False) -> None:
    """Tell the study that ``trial`` (a Trial or a RUNNING FrozenTrial) FAILed, with its reason as the ``error`` attribute.

    ``bad_input``: the reason is the trial's config or data (an RnnkitError), not a bug or a kill.
    ``stopped``: the trial did not finish: it was stopped while it ran (Ctrl-C, or its sweep ended).
    """
    from optuna.trial import TrialState

    storage = study._storage  # a FrozenTrial has no set_user_attr: through the storage, while it is RUNNING
    storage.set_trial_user_attr(trial._trial_id, "error", _one_line(reason))
    if bad_input:
        storage.set_trial_user_attr(trial._trial_id, "bad_input", True)
    if stopped:
        storage.set_trial_user_attr(trial._trial_id, "stopped", True)
    study.tell(trial.number, state=TrialState.FAIL)


def stopped_while_running(trial) -> bool:
    """A FAIL trial that never reached its end: stopped (Ctrl-C, its sweep ended) or its worker gone (marked
    by :func:`fail_orphans`, or by Optuna's heartbeat check, which records no reason). Its values were
    never scored, so it does not count toward the sweep's trials."""
    return trial.state.name == "FAIL" and bool(trial.user_attrs.get("stopped", "error" not in trial.user_attrs))


def counted(trials) -> int:
    """The trials that count toward ``--trials``: every one but those stopped while running. RUNNING ones
    count (their workers run them to the end; orphans are failed first), and so does a FAIL on its own
    bad input or a bug: it ran, and its values were found wanting.

    Example:
        >>> from types import SimpleNamespace as T
        >>> from enum import Enum
        >>> S = Enum("S", "COMPLETE PRUNED FAIL RUNNING")
        >>> counted([T(state=S.COMPLETE, user_attrs={}), T(state=S.FAIL, user_attrs={"error": "too long"}),
        ...          T(state=S.FAIL, user_attrs={"error": "interrupted", "stopped": True}),
        ...          T(state=S.FAIL, user_attrs={}), T(state=S.RUNNING, user_attrs={})])
        3
    """
    return sum(not stopped_while_running(t) for t in trials)


def _one_line(message: object) -> str:
    """A message on one line, its lines joined with "; " (as the CLI's): a table cell, a console line."""
    return "; ".join(part.strip() for part in str(message).splitlines() if part.strip()) or "(no message)"


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    import fcntl

    with open(path, "a+") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


@contextlib.contextmanager
def _ask_lock(sweep: Sweep, storage) -> Iterator[None]:
    """Held while a worker counts the study's trials and asks for one: the count stays exact.

    The file lock in the sweep folder serialises this machine's workers; on PostgreSQL a session
    advisory lock keyed by the study's name serialises every machine's.
    """
    with _file_lock(sweep.folder / LOCK_FILE):
        engine = getattr(storage, "engine", None)
        if engine is None or engine.dialect.name != "postgresql":
            yield
            return
        from sqlalchemy import text

        key = int.from_bytes(hashlib.sha256(f"rnnkit-sweep:{sweep.study}".encode()).digest()[:8], "big", signed=True)
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": key})
            try:
                yield
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextlib.contextmanager
def _heartbeat(study, trial) -> Iterator[None]:
    """Record the trial's heartbeat every few seconds while it runs (database storages)."""
    storage = study._storage
    beat = getattr(storage, "record_heartbeat", None)
    if beat is None or storage.get_heartbeat_interval() is None:
        yield
        return
    stop = threading.Event()

    def run() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            with contextlib.suppress(Exception):  # a missed beat is retried; the grace period covers several
                beat(trial._trial_id)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


# --- a worker stops with its sweep --------------------------------------------------------------

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


class ParentGone(BaseException):
    """Raised in a worker whose sweep process ended (``kill -9`` of ``rnnkit sweep``): the worker stops too.

    A BaseException, like KeyboardInterrupt: no ``except Exception`` of the training may swallow it.
    """


class ParentWatch(Hook):
    """The epoch hook that stops a worker's trial when its sweep process is gone (the fallback of the signal)."""

    def __init__(self, stop: WorkerStop) -> None:
        self.stop = stop

    def on_epoch_end(self, loop, record: dict[str, Any]) -> None:
        self.stop.check()


def _quiet_stop(hook: Callable[[Any], None]) -> Callable[[Any], None]:
    """``sys.unraisablehook`` that drops a ParentGone raised where Python cannot raise it (a signal
    that came in a weakref callback or a ``__del__``, which prints "Exception ignored in ..." with
    a traceback): the stop is still pending, and the next :meth:`WorkerStop.check` raises it."""

    def unraisable(args: Any) -> None:
        if not isinstance(args.exc_value, ParentGone):
            hook(args)

    return unraisable


class WorkerStop:
    """How a worker process stops when its parent, the ``rnnkit sweep`` process, ends or is interrupted.

    :meth:`arm` asks Linux for a SIGTERM at the parent's death (``prctl(PR_SET_PDEATHSIG)``) and turns
    the signal, or a SIGINT (Ctrl-C reaches every process of the terminal's group; the sweep's
    process passes it on too), into :class:`ParentGone`, except inside :meth:`storage_call` (a trial's ask or tell),
    where it waits for the call's end: the study is never left half-told. :meth:`check`, each trial
    and each epoch, is the fallback where no signal comes (not Linux; the parent gone before the
    request took hold): the worker's parent pid is then no longer the sweep's.
    ``parent=None``: the worker is the sweep's own process, nothing to watch; a SIGINT still waits
    for a storage call's end (an SQLite commit cut by Ctrl-C can leave the database locked).
    ``interruptible=False``: SIGINT stays ignored, as the sweep's process ignores it (started with
    ``nohup`` or ``&`` from a script): a Ctrl-C meant for others must not stop half a sweep.
    """

    def __init__(self, parent: int | None, interruptible: bool = True) -> None:
        self.parent = parent
        self.interruptible = interruptible
        self.critical = 0
        self.pending = False
        self.interrupted = False

    def arm(self) -> Callable[[], None]:
        """Take the signals over; returns the function that gives them back (the sweep's own process needs it)."""
        import signal

        before = {signal.SIGINT: signal.getsignal(signal.SIGINT), signal.SIGTERM: signal.getsignal(signal.SIGTERM)}
        unraisable = sys.unraisablehook
        sys.unraisablehook = _quiet_stop(unraisable)
        if self.interruptible:
            signal.signal(signal.SIGINT, self._on_signal)

        def disarm() -> None:
            for signum, handler in before.items():
                signal.signal(signum, handler)
            sys.unraisablehook = unraisable

        if self.parent is None:
            return disarm
        signal.signal(signal.SIGTERM, self._on_signal)
        with contextlib.suppress(OSError, AttributeError):  # no prctl (not Linux): the liveness check alone
            import ctypes

            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        self.check()  # the parent ended before the request took hold: no signal will come
        return disarm

    def reason(self) -> str:
        if self.interrupted:
            return INTERRUPTED
        return f"stopped: the sweep's process (pid {self.parent}) ended or stopped its workers"

    def _on_signal(self, signum, frame) -> None:
        if self.pending:  # once: the signal can come twice (measured), and the first one's stop must finish
            return
        import signal

        self.pending = True
        self.interrupted = signum == signal.SIGINT
        if not self.critical:
            raise ParentGone(self.reason())

    def check(self) -> None:
        """Raise ParentGone if the sweep's process is gone (or its signal waited for a storage call's end)."""
        if self.critical:
            return
        if self.pending or (self.parent is not None and os.getppid() != self.parent):
            raise ParentGone(self.reason())

    @contextlib.contextmanager
    def storage_call(self) -> Iterator[None]:
        self.critical += 1
        try:
            yield
        finally:
            self.critical -= 1
        self.check()


# --- workers ------------------------------------------------------------------------------------


def ask_trial(sweep: Sweep, study, storage, log: Callable[[str], None]):
    """The study's next trial for this worker, or None once the study holds ``sweep.trials`` that count
    (:func:`counted`: those stopped while running do not).

    Under the ask lock, so that the count stays exact. The study's sampler is then replaced by the
    one of the trial's number (:func:`sampler_of`): Optuna draws a trial's values at its first
    suggest, after ask, so they depend on the trial's number, never on the worker or its join order.
    """
    with _ask_lock(sweep, storage):
        fail_orphans(study, log)
        if counted(study.get_trials(deepcopy=False)) >= sweep.trials:
            return None
        trial = study.ask()
        study.sampler = sampler_of(sweep.config.search, trial.number)
        trial.set_user_attr("worker", _me())
        if getattr(storage, "get_heartbeat_interval", lambda: None)() is not None:
            storage.record_heartbeat(trial._trial_id)
    return trial


def sample(trial, search: SearchConfig) -> dict[str, Any]:
    """The trial's value of every dimension of ``search.params``, by their dotted paths."""
    return {path: suggest(trial, path, param) for path, param in search.params.items()}


def trial_line(
    number: int, state: str, seconds: float, values: dict[str, Any], detail: str = "", reason: str = ""
) -> str:
    """The console's line for a finished trial.

    Example:
        >>> trial_line(3, "COMPLETE", 12.34, {"training.learning_rate": 0.0031234, "units": 16}, ", mae_val 2.345")
        'trial 3: COMPLETE, mae_val 2.345, 12.3 s, {"training.learning_rate": 0.003123, "units": 16}'
    """
    shown_values = {k: float(f"{v:.4g}") if isinstance(v, float) else v for k, v in values.items()}
    return f"trial {number}: {state}{detail}, {seconds:.1f} s, {json.dumps(shown_values)}" + (
        f": {reason}" if reason else ""
    )


def work(sweep: Sweep, worker: int, report: Callable[[str], None] = print, stop: WorkerStop | None = None) -> int:
    """One worker: ask the study for trials and run them until it holds ``sweep.trials``; returns how many it ran.

    ``report`` gets one line per finished trial (:func:`trial_line`); a worker process sends it to
    the sweep's process, which prints every worker's lines, one at a time. ``stop``: see WorkerStop.
    """
    import optuna
    import torch
    from optuna.trial import TrialState

    from rnnkit.experiment import run_experiment
    from rnnkit.rundir import release

    config, search = sweep.config, sweep.config.search
    stop = stop or WorkerStop(None)
    torch.set_num_threads(search.threads)
    metric, direction = direction_of(config)
    sign = 1.0 if direction == "minimize" else -1.0
    log_file = sweep.folder / f"worker-{worker}.log"
    ran = 0

    def log(line: str) -> None:
        with open(log_file, "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%H:%M:%S')} {line}\n")

    with _quiet_optuna(), opened(sweep.storage) as storage:
        # each trial draws with its own sampler, set at its ask (ask_trial): this one is replaced before it draws
        study = optuna.load_study(
            study_name=sweep.study, storage=storage, sampler=sampler_of(search, 0), pruner=pruner_of(search)
        )
        done = len(study.get_trials(deepcopy=False))

        def hooks_of(trial, chosen: ExperimentConfig) -> Callable[[Any], list[Hook]]:
            """Each model's epoch hooks: the parent watch, and pruning on the model that the trial's value scores."""
            pruned = search.model or chosen.models[0].name
            return lambda spec: [
                ParentWatch(stop),
                *([Pruning(trial, sign, stop)] if search.pruner != "none" and spec.name == pruned else []),
            ]

        def finished(
            trial, started: float, values: dict[str, Any], state: str, detail: str = "", reason: str = ""
        ) -> None:
            """The trial's line on the log and the console; trials.csv rewritten (it follows the study, trial by trial)."""
            line = trial_line(trial.number, state, time.perf_counter() - started, values, detail, reason)
            log(line)
            report(line)
            with stop.storage_call(), _ask_lock(sweep, storage):
                write_table(study, sweep.folder)

        log(f"worker {worker} (pid {os.getpid()}) joins study {sweep.study!r}: {done} trials so far")
        while True:
            stop.check()
            trial = None
            try:
                with stop.storage_call():
                    trial = ask_trial(sweep, study, storage, log)
            except ParentGone as e:  # the signal came during the ask: its stop waited for the ask's end
                if trial is not None:
                    log(f"trial {trial.number}: FAIL: {e}")
                    with contextlib.suppress(Exception):  # else fail_orphans marks it, here or at --resume
                        fail_trial(study, trial, str(e), stopped=True)
                        with _ask_lock(sweep, storage):
                            write_table(study, sweep.folder)
                raise
            if trial is None:
                break
            ran += 1
            out = sweep.folder / "trials" / f"{trial.number:04d}"
            started = time.perf_counter()
            values: dict[str, Any] = {}
            try:
                with _heartbeat(study, trial):
                    with stop.storage_call():  # each suggest and attribute is a write to the storage
                        values = sample(trial, search)
                        trial.set_user_attr("run", str(out.relative_to(sweep.folder)))
                    log(f"trial {trial.number}: {json.dumps(values)}")
                    chosen = trial_config(config, values, f"trial {trial.number}")
                    try:
                        metrics = run_experiment(
                            chosen, out, progress=False, log=lambda line: None, model_hooks=hooks_of(trial, chosen)
                        )
                    finally:
                        release(out)
                    value = trial_value(metrics, search, chosen, metric, direction)
                with stop.storage_call():
                    trial.set_user_attr("seconds", time.perf_counter() - started)
                    study.tell(trial, value)
                finished(trial, started, values, "COMPLETE", f", {metric} {value:.6g}")
            except optuna.TrialPruned as e:
                with stop.storage_call():
                    trial.set_user_attr("seconds", time.perf_counter() - started)
                    study.tell(trial, state=TrialState.PRUNED)
                finished(trial, started, values, "PRUNED", f" {str(e).removeprefix('pruned ')}")
            except RnnkitError as e:
                with stop.storage_call():
                    fail_trial(study, trial, str(e), bad_input=True)
                finished(trial, started, values, "FAIL", reason=_one_line(e))
                if str(e).startswith("search."):  # the sweep's own setting is wrong: every trial would fail
                    raise
            except ParentGone as e:  # the signal has come (WorkerStop ignores another): no storage_call needed
                log(f"trial {trial.number}: FAIL: {e}")
                try:
                    fail_trial(study, trial, str(e), stopped=True)
                    with _ask_lock(sweep, storage):
                        write_table(study, sweep.folder)
                except Exception as failed:  # left RUNNING: fail_orphans marks it at the next ask or --resume
                    log(f"trial {trial.number}: could not be told FAIL: {type(failed).__name__}: {failed}")
                raise
            except KeyboardInterrupt:  # Ctrl-C in the sweep's own process (one worker): not a bug
                log(f"trial {trial.number}: FAIL: {INTERRUPTED}")
                with contextlib.suppress(Exception):  # already told (the Ctrl-C came after its tell): kept as it is
                    fail_trial(study, trial, INTERRUPTED, stopped=True)
                raise
            except BaseException as e:
                with contextlib.suppress(Exception):
                    fail_trial(study, trial, f"{type(e).__name__}: {e} (a bug: see worker-{worker}.log)")
                log(f"trial {trial.number}: FAIL (a bug): {traceback.format_exc()}")
                raise
    log(f"worker {worker} done: {ran} trials")
    return ran


def _worker_main(sweep: Sweep, worker: int, parent: int, lines, interruptible: bool = True) -> None:
    """A worker process: its trials' lines go to the sweep's process through ``lines`` (a pipe's end);
    errors to ``worker-K.error`` (exit 2: bad input, 1: a bug); it stops when its sweep process ends."""
    stop = WorkerStop(parent, interruptible)

    def report(line: str) -> None:
        try:
            lines.send(line)
        except OSError:  # the sweep's end of the pipe is closed: it is gone
            stop.check()

    try:
        stop.arm()
        work(sweep, worker, report, stop)
    except ParentGone:
        raise SystemExit(3) from None  # nobody is left to tell
    except RnnkitError as e:
        (sweep.folder / f"worker-{worker}.error").write_text(str(e), encoding="utf-8")
        raise SystemExit(2) from None
    except BaseException as e:
        (sweep.folder / f"worker-{worker}.error").write_text(
            f"{type(e).__name__}: {e} (see worker-{worker}.log)", encoding="utf-8"
        )
        raise SystemExit(1) from None


# --- the sweep ----------------------------------------------------------------------------------


def run_sweep(
    config: ExperimentConfig,
    folder: str | Path,
    *,
    trials: int | None = None,
    workers: int = 1,
    storage: str | None = None,
    study: str | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
    on_start: Callable[[list[int]], None] | None = None,
) -> dict[str, Any]:
    """Run the sweep of ``config`` (which must have a [search]) into ``folder``; returns its summary.

    Args:
        trials: default ``search.trials``: the number of trials the study holds at the end that ran to
            their end (COMPLETE, PRUNED, or FAIL on their own input); a trial stopped while it ran
            (Ctrl-C, a killed worker or sweep, FAIL) does not count, and another runs in its place.
        workers: processes on this machine (1: this process).
        storage: an Optuna storage URL (default SQLite in the folder); see the module docstring.
        study: the study's name (default the config's name).
        resume: continue (or join) the study that the storage holds under that name.
        on_start: called with the worker processes' pids once they run (tests kill one).
    """
    from rnnkit.rundir import claim, read_identity, release

    if config.search is None:
        raise RnnkitError("the config has no [search] table: rnnkit sweep needs its space (see the README)")
    try:
        import optuna  # noqa: F811
    except ImportError:
        raise RnnkitError("rnnkit sweep needs Optuna: pip install 'rnnkit[sweep]'") from None
    search = config.search
    trials = trials or search.trials
    metric, direction = direction_of(config)
    folder = Path(folder)
    claim(folder, config.to_dict(), resume=resume and folder.is_dir() and read_identity(folder) is not None, log=log)
    try:
        url = storage or default_storage(folder)
        name = study or config.name
        with _quiet_optuna(), opened(url) as store:
            try:
                existing = optuna.load_study(study_name=name, storage=store)
            except KeyError:
                existing = None
            if existing is not None and not resume:
                raise RnnkitError(
                    f"study {name!r} already exists in {shown(url)}; --resume continues it, or give another --study"
                )
            if existing is None and resume:
                raise RnnkitError(f"nothing to resume: no study {name!r} in {shown(url)}")
            if existing is None:
                created = optuna.create_study(study_name=name, storage=store, direction=direction)
                created.set_user_attr("config", config.to_dict())
                created.set_user_attr("metric", metric)
            else:
                if existing.direction.name.lower() != direction:
                    raise RnnkitError(
                        f"study {name!r} {existing.direction.name.lower()}s; this config's {metric} would {direction}"
                    )
                fail_orphans(existing, log)
        log(f"study {name!r} in {shown(url)}: {metric} ({direction}), {trials} trials, {workers} worker(s)")
        sweep = Sweep(config, folder, url, name, trials)
        for stale in folder.glob("worker-*.error"):
            stale.unlink()
        try:
            if workers == 1 and on_start is None:
                stop = WorkerStop(None, _interruptible())
                disarm = stop.arm() if threading.current_thread() is threading.main_thread() else None
                try:
                    work(sweep, 0, report=log, stop=stop)
                finally:
                    if disarm is not None:
                        disarm()
            else:
                _run_workers(sweep, workers, log, on_start)
        except (KeyboardInterrupt, ParentGone):  # Ctrl-C: ParentGone where a WorkerStop took SIGINT over
            raise interrupted(sweep, resume_hint=storage is not None) from None
        with _quiet_optuna(), opened(url) as store:
            final = optuna.load_study(study_name=name, storage=store)
            fail_orphans(final, log)
            errors = sorted(folder.glob("worker-*.error"))
            if errors:
                messages = {p.read_text(encoding="utf-8") for p in errors}
                raise RnnkitError("; ".join(sorted(messages)))
            summary = write_results(final, config, folder, metric, log)
        if summary.get("all_bad_input"):  # nothing to show: say so, as bad input (exit 2)
            raise RnnkitError(
                f"every trial of the sweep failed on bad input ({summary['trials']} FAIL; each one's "
                f"reason in {folder}/trials.csv): {summary['first_error']}"
            )
        return summary
    finally:
        release(folder)


def _interruptible() -> bool:
    """Whether Ctrl-C may stop this sweep: SIGINT is not ignored (``nohup``, or ``&`` in a script, ignore it)."""
    import signal

    return signal.getsignal(signal.SIGINT) is not signal.SIG_IGN


def interrupted(sweep: Sweep, resume_hint: bool = False) -> Interrupted:
    """After Ctrl-C (the workers stopped): the study's RUNNING trials of this process, or of a worker
    gone, told FAIL (interrupted); trials.csv written; the error that says what was kept.

    ``resume_hint``: the storage was given (--storage): the resume command must name it too.
    """
    import optuna
    from optuna.trial import TrialState

    host, me = socket.gethostname(), os.getpid()
    with _quiet_optuna(), opened(sweep.storage) as store:
        study = optuna.load_study(study_name=sweep.study, storage=store)
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
            worker = t.user_attrs.get("worker") or {}
            pid = int(worker.get("pid", -1))
            if worker.get("host") == host and (pid == me or not pid_alive(pid)):  # stopped by this Ctrl-C
                with contextlib.suppress(RuntimeError, ValueError):
                    fail_trial(study, t, INTERRUPTED, stopped=True)
        fail_orphans(study)
        write_table(study, sweep.folder)
        trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished() and not t.user_attrs.get("stopped")]
    stopped = [t for t in trials if t.user_attrs.get("stopped")]
    storage = f" --storage {shown(sweep.storage)}" if resume_hint else ""
    return Interrupted(
        f"{len(finished)} of {sweep.trials} trials finished"
        + (f", {len(stopped)} stopped while running (FAIL)" if stopped else "")
        + f"; {sweep.folder}/trials.csv and the study keep them; resume with: rnnkit sweep CONFIG "
        f"--output {sweep.folder}{storage} --resume"
    )


def _run_workers(
    sweep: Sweep, workers: int, log: Callable[[str], None], on_start: Callable[[list[int]], None] | None
) -> None:
    """Start ``workers`` worker processes, print their trials' lines as they come and reap each one as it ends.

    Each worker sends its lines through its own pipe and this process alone prints them, whole: the
    workers' lines never interleave mid-line. Each worker gets this process's pid and stops when it
    ends (WorkerStop), so that a ``kill -9`` of the sweep leaves no worker training on its own.
    """
    from multiprocessing.connection import wait

    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no forked torch threads or open databases
    pipes = [context.Pipe(duplex=False) for _ in range(workers)]
    processes = [
        context.Process(
            target=_worker_main,
            args=(sweep, k, os.getpid(), pipes[k][1], _interruptible()),
            name=f"rnnkit-sweep-{k}",
        )
        for k in range(workers)
    ]
    import signal

    # Started with Ctrl-C ignored, until WorkerStop.arm takes it over: a Ctrl-C while a worker's
    # interpreter starts would print multiprocessing's traceback, and stop nothing it could tell.
    main = threading.current_thread() is threading.main_thread()  # signal.signal works there only
    before = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        for p in processes:
            p.start()
    finally:
        if main:
            signal.signal(signal.SIGINT, before)
    readers = {}
    for k, (reader, sender) in enumerate(pipes):
        sender.close()  # the worker holds the only sending end: its reader sees EOF when the worker ends
        readers[reader] = k
    log(f"workers started: pids {', '.join(str(p.pid) for p in processes)}")
    if on_start is not None:
        on_start([p.pid for p in processes])

    running = dict(enumerate(processes))
    interrupted = False

    def reap(timeout: float | None) -> None:
        """Print the workers' lines and reap each worker as it ends, until all have or ``timeout`` s have passed."""
        end = None if timeout is None else time.monotonic() + timeout
        while running or readers:  # reap each worker as it ends, so that a killed one is no zombie that looks alive
            left = None if end is None else end - time.monotonic()
            if left is not None and left <= 0:
                return
            ready = wait([*readers, *(p.sentinel for p in running.values())], timeout=left)
            for reader in [r for r in readers if r in ready]:
                try:
                    log(reader.recv())
                except (EOFError, OSError):
                    del readers[reader]
                    reader.close()
            for k, p in list(running.items()):
                if p.sentinel not in ready:
                    continue
                p.join()
                del running[k]
                if interrupted:  # each one stopped as asked; the summary says what was kept
                    continue
                if p.exitcode and p.exitcode < 0:
                    log(f"worker {k} (pid {p.pid}) was ended by signal {-p.exitcode}; its running trial is marked FAIL")
                elif p.exitcode:
                    log(f"worker {k} (pid {p.pid}) stopped with exit code {p.exitcode} (see worker-{k}.log)")

    try:
        reap(None)
    except KeyboardInterrupt:
        # Ctrl-C: each worker tells its running trial FAIL (interrupted) and stops; a worker that has
        # not yet armed WorkerStop ignores SIGINT, so SIGTERM, then SIGKILL, follow after STOP_SECONDS.
        interrupted = True
        for ask in (signal.SIGINT, signal.SIGTERM, signal.SIGKILL):
            for p in running.values():
                with contextlib.suppress(OSError):
                    os.kill(p.pid, ask)
            reap(STOP_SECONDS)
            if not running:
                break
        raise
    except BaseException:
        for p in processes:
            p.terminate()
        raise


# --- results ------------------------------------------------------------------------------------

NO_REASON = "no reason recorded: its worker stopped without one (killed, or its heartbeat stopped)"


def trials_table(study) -> list[dict[str, Any]]:
    """One row per trial: number, state, value, seconds, (the epoch a pruned trial stopped after,) the sampled
    values, (and, once a trial failed, the error column: why each FAIL failed).

    Only a COMPLETE trial has a value: Optuna gives a pruned trial its last reported epoch loss,
    which is in the loss's units, not the metric's.
    """
    trials = study.get_trials(deepcopy=False)
    pruning = any(t.state.name == "PRUNED" for t in trials)
    failing = any(t.state.name == "FAIL" for t in trials)
    rows = []
    for t in trials:
        end = t.datetime_complete
        seconds = (end - t.datetime_start).total_seconds() if end is not None and t.datetime_start else math.nan
        value = t.value if t.state.name == "COMPLETE" and t.value is not None else math.nan
        row = {"number": t.number, "state": t.state.name, "value": value, "seconds": seconds}
        if pruning:
            row["pruned_after"] = t.last_step if t.state.name == "PRUNED" else math.nan
        row.update(t.params)
        if failing:
            row["error"] = t.user_attrs.get("error", NO_REASON) if t.state.name == "FAIL" else ""
        rows.append(row)
    return rows


def write_table(study, folder: Path) -> list[dict[str, Any]]:
    """trials.csv of the study as it is now (each worker rewrites it after each trial: it never lags the study)."""
    import pandas as pd

    from rnnkit.io import write_text_atomic

    rows = trials_table(study)
    write_text_atomic(Path(folder) / "trials.csv", pd.DataFrame(rows).to_csv(index=False))
    return rows


def failure_lines(rows: list[dict[str, Any]]) -> list[str]:
    """One line per distinct reason of the FAIL trials, with their numbers.

    Example:
        >>> failure_lines([{"number": 0, "state": "FAIL", "error": "x"}, {"number": 2, "state": "FAIL", "error": "x"}])
        ['FAIL trials 0, 2: x']
    """
    reasons: dict[str, list[int]] = {}
    for row in rows:
        if row["state"] == "FAIL":
            reasons.setdefault(row.get("error") or NO_REASON, []).append(row["number"])
    return [
        f"FAIL trial{'s' if len(numbers) > 1 else ''} {', '.join(map(str, numbers))}: {reason}"
        for reason, numbers in reasons.items()
    ]


def write_results(
    study, config: ExperimentConfig, folder: Path, metric: str, log: Callable[[str], None]
) -> dict[str, Any]:
    """trials.csv, best.toml, the plots; the table, the counts of each state and each failure's reason on the log.

    The summary's ``all_bad_input`` is true when every trial of the study FAILed on bad input (its
    config or data: the reason in the error column), with the first reason as ``first_error``.
    """
    import pandas as pd
    from optuna.trial import TrialState

    from rnnkit.config import config_toml
    from rnnkit.io import write_text_atomic

    rows = write_table(study, folder)
    shown_table = pd.DataFrame(rows).drop(columns=["error"], errors="ignore")  # the reasons: one line each, below
    counts = {state: sum(r["state"] == state for r in rows) for state in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    log(shown_table.to_string(index=False, float_format=lambda v: f"{v:.4g}") if rows else "no trials")
    log("trials: " + ", ".join(f"{n} {state}" for state, n in counts.items() if n or state != "RUNNING"))
    for line in failure_lines(rows):
        log(line)
    summary: dict[str, Any] = {"study": study.study_name, "trials": len(rows), "counts": counts, "metric": metric}
    failed = study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
    if failed and len(failed) == len(rows) and all(t.user_attrs.get("bad_input") for t in failed):
        summary.update(all_bad_input=True, first_error=f"trial {failed[0].number}: {failed[0].user_attrs['error']}")
    complete = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if complete:
        best = study.best_trial
        chosen = trial_config(config, best.params, f"trial {best.number}")
        threads = config.search.threads
        header = (
            f"# The best trial of sweep {study.study_name!r}: trial {best.number}, {metric} {best.value:.6g} "
            f"(its run: {best.user_attrs.get('run', '?')}).\n"
            f"# Train it again: OMP_NUM_THREADS={threads} rnnkit train best.toml (the worker's {threads} torch "
            f"thread(s): the same bits; other thread counts change the last digits)\n"
        )
        write_text_atomic(folder / "best.toml", header + config_toml(chosen))
        summary.update(best_trial=best.number, best_value=best.value, best_params=best.params)
        log(f"best: trial {best.number}, {metric} {best.value:.6g}: {json.dumps(best.params)}")
        log(
            f"written: {folder}/best.toml (OMP_NUM_THREADS={config.search.threads} rnnkit train {folder}/best.toml "
            "trains it again), trials.csv"
        )
        from rnnkit.plots import plot_sweep

        with _quiet_optuna():
            plots = plot_sweep(study, folder, metric)
        if plots:
            log("plots: " + ", ".join(str(p) for p in plots))
    else:
        log(f"written: {folder}/trials.csv (no trial COMPLETE: no best.toml)")
    return summary
