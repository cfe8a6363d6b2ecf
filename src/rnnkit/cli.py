"""The ``rnnkit`` command line: argument parsing and wiring only.

Every command's work lives in the library; this module turns arguments into calls and
turns bad input into one line on stderr with exit code 2 (never a traceback). Anything else
that escapes a command is a bug: one line saying where its traceback was written (``error.log``
in the run folder when there is one, else a file under the cache), exit code 1; ``--debug``
(or ``RNNKIT_DEBUG=1``) prints the traceback too.
"""

from __future__ import annotations

import errno
import os
import sys
import tempfile
import time
import traceback
import warnings
from pathlib import Path

import click

from rnnkit.errors import Interrupted, RnnkitError, RnnkitWarning

# Errors that mean "bad input": reported as one line, exit code 2. rnnkit raises RnnkitError for
# everything it checks; the OS errors are a path the user gave that is missing, unreadable or not
# what it should be. Any other exception (a bare ValueError, KeyError, IndexError ...) is a bug.
INPUT_ERRORS = (RnnkitError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)
# A full disk or a file-size limit is not a bug either: the user frees space and resumes.
NO_SPACE = {errno.ENOSPC, errno.EFBIG, getattr(errno, "EDQUOT", errno.ENOSPC)}

# The run folder of the command being run (set once it is known), where a bug's traceback goes.
_state: dict[str, object] = {"run_folder": None, "debug": False}


def _use_run_folder(folder: Path) -> None:
    _state["run_folder"] = Path(folder)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnkit")
@click.option("--debug", is_flag=True, help="On an unexpected error (a bug), print the traceback too.")
def app(debug: bool) -> None:
    """rnnkit: recurrent neural networks for sequence modelling (Keras semantics, PyTorch kernels)."""
    _state["debug"] = _state["debug"] or debug


@app.command("data")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False, path_type=str),
    default=None,
    help="Also draw the series to this PNG.",
)
@click.option("--column", "columns", multiple=True, help="Column to plot (repeatable; default T (degC)).")
def data_command(paths: tuple[str, ...], plot_path: str | None, columns: tuple[str, ...]) -> None:
    """What data file(s) hold: rows, period, step, columns with units, gaps, -9999 codes."""
    from rnnkit.datasets import describe, load

    click.echo(str(describe(list(paths))))
    if plot_path is not None:
        from rnnkit.plots import plot_series

        written = plot_series(load(list(paths)), list(columns) or None, plot_path)  # cleaned: no -9999 spikes
        click.echo(f"plot: {written}")


def _default_output(name: str) -> Path:
    return Path("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}"


def _progress(quiet: bool) -> bool | None:
    return False if quiet else None  # None: a bar on a terminal, tqdm.auto in a notebook, else a line per epoch


def _use_threads(threads: int | None, quiet: bool) -> None:
    """Torch's thread count for training: ``--threads``, else one per idle CPU (``use_threads_for_load``).

    The load's choice is said in one line (but with --quiet); it sets nothing where OMP_NUM_THREADS
    is set or under torchrun, whose per-rank count stands.
    """
    import torch

    from rnnkit.training.threads import use_threads_for_load

    if threads is not None:  # after torchrun's per-rank choice: the user's number wins
        torch.set_num_threads(threads)
        return
    chosen = use_threads_for_load()
    if chosen and not quiet:
        click.echo(f"training on {chosen}; --threads N chooses")


_THREADS_HELP = (
    "Torch threads for training (default: one per CPU that other processes leave idle, said in one line; 1 on "
    "the PyTorch path, RNNKIT_KERNEL=torch, with passive waits; OMP_NUM_THREADS or torchrun's per-rank count "
    "where set). A recurrent step's threads wait for each other at every time step: a busy core slows them all."
)


_DEVICE_HELP = (
    "Train on auto (CUDA where present, else the CPU), cpu or cuda, instead of the config's "
    "[training] device (a run resumes on any device)."
)


def _train_and_report(
    config,
    output: Path,
    data: tuple[str, ...],
    epochs: int | None,
    resume: bool,
    quiet: bool,
    overwrite: bool = False,
    threads: int | None = None,
    device: str | None = None,
) -> None:
    from rnnkit.experiment import check_devices, run_report, run_experiment
    from rnnkit.training import distributed

    check_devices(config, device)  # cuda without a GPU: one line, before torchrun's ranks join
    # under torchrun: join the ranks (rank 0 alone writes and prints); NCCL when they train on GPUs
    distributed.init_from_env(device=device or config.training.device)
    _use_threads(threads, quiet)
    main = distributed.is_main()
    _use_run_folder(output)
    if main:
        click.echo(f"run folder: {output}" + (f" ({distributed.world()[1]} ranks)" if distributed.active() else ""))
    metrics = run_experiment(
        config,
        output,
        data_paths=list(data) or None,
        epochs=epochs,
        resume=resume,
        overwrite=overwrite,
        progress=_progress(quiet),
        log=click.echo,
        device=device,
    )
    if main:
        click.echo("")
        click.echo(run_report(metrics, output))
    distributed.finish()


@app.command("demo")
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default runs/demo-TIMESTAMP).",
)
@click.option(
    "--data",
    multiple=True,
    type=click.Path(path_type=str),
    help="Jena file(s) to use instead of the 2009-2016 record (10-minute file, else the embedded one).",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the number of epochs.")
@click.option("--overwrite", is_flag=True, help="Replace the run that --output holds (its files are removed first).")
@click.option("--quiet", is_flag=True, help="No progress output (bar or line per epoch).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help=_THREADS_HELP,
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help=_DEVICE_HELP)
def demo_command(
    output: Path | None,
    data: tuple[str, ...],
    epochs: int | None,
    overwrite: bool,
    quiet: bool,
    threads: int | None,
    device: str | None,
) -> None:
    """The main job: Chollet's Jena protocol on the embedded 2009-2016 record, beside the published numbers."""
    from rnnkit.demo import demo_config

    config = demo_config()
    _train_and_report(config, output or _default_output("demo"), data, epochs, False, quiet, overwrite, threads, device)


@app.command("train")
@click.argument("config_path", required=False, type=click.Path(path_type=str))
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Run folder (default runs/NAME-TIMESTAMP).",
)
@click.option("--data", multiple=True, type=click.Path(path_type=str), help="Data file(s) instead of the config's.")
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the number of epochs.")
@click.option(
    "--resume",
    "resume_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Continue the interrupted run in this folder from its last checkpoint (only that run).",
)
@click.option("--overwrite", is_flag=True, help="Replace the run that --output holds (its files are removed first).")
@click.option("--quiet", is_flag=True, help="No progress output (bar or line per epoch).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help=_THREADS_HELP,
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help=_DEVICE_HELP)
def train_command(
    config_path: str | None,
    output: Path | None,
    data: tuple[str, ...],
    epochs: int | None,
    resume_dir: Path | None,
    overwrite: bool,
    quiet: bool,
    threads: int | None,
    device: str | None,
) -> None:
    """Train and compare the models of a TOML config; write a run folder."""
    from rnnkit.tasks import load_config
    from rnnkit.experiment import load_run

    if resume_dir is not None:
        if overwrite or config_path is not None or output is not None:
            raise click.UsageError(
                "--resume RUN continues that run with its own config: give no CONFIG, --output or --overwrite with it"
            )
        config, _, _ = load_run(resume_dir)  # the run's own resolved config
        _train_and_report(config, resume_dir, data, epochs, True, quiet, threads=threads, device=device)
        return
    if config_path is None:
        raise click.UsageError("give a CONFIG file, or --resume RUN")
    config = load_config(config_path)
    _train_and_report(
        config, output or _default_output(config.name), data, epochs, False, quiet, overwrite, threads, device
    )


@app.command("backtest")
@click.argument("config_path", type=click.Path(path_type=str))
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Backtest folder (default runs/NAME); each fold's run goes in FOLDER/fold_01, fold_02, ...",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Override the number of epochs.")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the backtest in the folder: finished folds are read back, the interrupted one continues.",
)
@click.option(
    "--overwrite", is_flag=True, help="Replace the backtest that the folder holds (its files are removed first)."
)
@click.option("--quiet", is_flag=True, help="No progress output (bar or line per epoch).")
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help=_THREADS_HELP,
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help=_DEVICE_HELP)
def backtest_command(
    config_path: str,
    output: Path | None,
    epochs: int | None,
    resume: bool,
    overwrite: bool,
    quiet: bool,
    threads: int | None,
    device: str | None,
) -> None:
    """Rolling-origin backtest: train and score every model and baseline on each fold of the config's [backtest]."""
    from rnnkit.backtest import backtest_settings, backtest_table, run_backtest
    from rnnkit.experiment import written_lines
    from rnnkit.tasks import load_config

    if resume and overwrite:
        raise click.UsageError("--resume continues the backtest in the folder, --overwrite replaces it: give one")
    config = load_config(config_path)
    backtest_settings(config, config_path)
    folder = output or Path("runs") / config.name
    _use_threads(threads, quiet)
    _use_run_folder(folder)
    click.echo(f"backtest folder: {folder}")
    document = run_backtest(
        config,
        folder,
        epochs=epochs,
        resume=resume,
        overwrite=overwrite,
        progress=_progress(quiet),
        log=click.echo,
        device=device,
    )
    click.echo("")
    click.echo(backtest_table(document))
    click.echo(written_lines(folder))


@app.command("evaluate")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--data",
    multiple=True,
    type=click.Path(path_type=str),
    help="Score on these files instead (each alone, every window, against persistence on the same windows).",
)
def evaluate_command(run_dir: Path, data: tuple[str, ...]) -> None:
    """Score every model of a run again on its validation and test data (or on --data files) and print the table."""
    from rnnkit.experiment import evaluate_report, evaluate_run

    _use_run_folder(run_dir)
    if data:
        from rnnkit.transfer import evaluate_on_files, transfer_table

        click.echo(transfer_table(evaluate_on_files(run_dir, list(data))))
        return
    click.echo(evaluate_report(evaluate_run(run_dir)))


@app.command("predict")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--data",
    multiple=True,
    required=True,
    type=click.Path(path_type=str),
    help="Data file(s) to predict on (a generation run: text files of prompts, one a line).",
)
@click.option("--model", "model_name", default=None, help="Model of the run (default: the best on validation).")
@click.option(
    "--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write the predictions to this CSV."
)
def predict_command(run_dir: Path, data: tuple[str, ...], model_name: str | None, output: Path | None) -> None:
    """Predict with a trained model of a run on new data."""
    from rnnkit.experiment import predict_file
    from rnnkit.io import write_text_atomic

    _use_run_folder(run_dir)
    table = predict_file(run_dir, list(data), model_name)
    notes = [table.attrs[key] for key in ("score", "note") if key in table.attrs]
    if output is None:
        click.echo(table.to_string(index=False, max_rows=20, float_format=lambda v: f"{v:.2f}"))
    else:
        write_text_atomic(output, table.to_csv(index=False))
        click.echo(f"{len(table)} predictions written to {output}")
    for note in notes:
        click.echo(note)


@app.command("export")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--onnx", "as_onnx", is_flag=True, help="Write an ONNX file (dynamic batch and sequence length).")
@click.option("--model", "model_name", default=None, help="Model of the run (default: the best by validation MAE).")
@click.option(
    "--output",
    type=click.Path(path_type=Path),
    default=None,
    help="The file to write (default RUN/models/MODEL/model.onnx).",
)
def export_command(run_dir: Path, as_onnx: bool, model_name: str | None, output: Path | None) -> None:
    """Export a trained model of a run for other tools (ONNX)."""
    from rnnkit.export import export_run, usage_path

    if not as_onnx:
        raise click.UsageError("choose a format: --onnx")
    name, path, difference = export_run(run_dir, model_name, output)
    click.echo(f"{name}: {path}")
    click.echo(f"usage note: {usage_path(path)} (inputs, scaling and output; also in the file's metadata_props)")
    if difference is not None:
        click.echo(f"max |onnxruntime - rnnkit| on 64 random windows: {difference:.2e}")


@app.command("report")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The page to write (default RUN/report.html).",
)
def report_command(run_dir: Path, output: Path | None) -> None:
    """Write a run's report: one self-contained HTML page (data, windows, models, scores, plots, config)."""
    from rnnkit.report import write_report

    click.echo(f"report: {write_report(run_dir, output)}")


@app.command("doctor")
@click.option("--measure", is_flag=True, help="Measure auto's standard shape classes first (a few seconds).")
def doctor_command(measure: bool) -> None:
    """Why runs are fast or slow here: the CPU, the kernel's build, auto's choices, torch's threads and BLAS."""
    from rnnkit.doctor import report

    click.echo(report(measure=measure))


@app.command("summary")
@click.argument("config_path", type=click.Path(path_type=str))
@click.option(
    "--features",
    type=click.IntRange(min=1),
    default=None,
    help="Input features (default: read the data to find out; 14 when no data is found).",
)
def summary_command(config_path: str, features: int | None) -> None:
    """Print each model of a config: layers, output shapes, parameters and their formulas."""
    from rnnkit.tasks import load_config, task_for  # not rnnkit.experiment: the runner's imports are not needed

    click.echo(task_for(load_config(config_path)).summaries(features))


@app.command("windows")
@click.argument("config_path", type=click.Path(path_type=str))
@click.option("--data", multiple=True, type=click.Path(path_type=str), help="Data file(s) instead of the config's.")
def windows_command(config_path: str, data: tuple[str, ...]) -> None:
    """Show what the windowing of a config produces: parts, windows, and their rows and times."""
    from rnnkit.tasks import load_config
    from rnnkit.experiment import describe_windows

    click.echo(describe_windows(load_config(config_path), list(data) or None))


@app.command("gradients")
@click.argument("config_path", required=False, type=click.Path(path_type=str))
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("gradients.png"),
    show_default=True,
    help="The PNG to write.",
)
@click.option(
    "--steps",
    type=click.IntRange(min=2),
    default=None,
    help="Sequence length (default 100 for the synthetic task, the config's sequence_length with CONFIG).",
)
@click.option(
    "--units", type=click.IntRange(min=1), default=32, show_default=True, help="Units of each recurrent layer."
)
@click.option(
    "--train-epochs",
    type=click.IntRange(min=0),
    default=20,
    show_default=True,
    help="Epochs of training before measuring (0: at initialisation).",
)
@click.option(
    "--seed", type=click.IntRange(min=0), default=0, show_default=True, help="Seed of data, weights and training."
)
@click.option("--data", multiple=True, type=click.Path(path_type=str), help="Data file(s) instead of the config's.")
def gradients_command(
    config_path: str | None,
    output: Path,
    steps: int | None,
    units: int,
    train_epochs: int,
    seed: int,
    data: tuple[str, ...],
) -> None:
    """The vanishing-gradient picture: ‖∂L/∂x_t‖ per step for SimpleRNN, LSTM and GRU on the same data."""
    from rnnkit.diagnostics import config_windows, gradient_picture
    from rnnkit.plots import plot_gradient_flow

    if config_path is None:
        picture = gradient_picture(steps=steps or 100, units=units, train_epochs=train_epochs, seed=seed)
        about = f"long-dependency task, {picture.steps} steps"
    else:
        from rnnkit.tasks import load_config

        config = load_config(config_path)
        if steps is not None:
            config = config.model_copy(update={"windows": config.windows.model_copy(update={"sequence_length": steps})})
        x, y = config_windows(config, list(data) or None)
        picture = gradient_picture(x, y, units=units, train_epochs=train_epochs, seed=seed)
        about = f"{config.name}, {picture.steps} steps"
    click.echo(picture.reading)
    trained = f"after {picture.train_epochs} epochs" if picture.train_epochs else "at initialisation"
    written = plot_gradient_flow(
        picture.relative(), output, title=f"Gradient reaching each input step ({about}, {trained})"
    )
    click.echo(f"plot: {written}")


@app.command("sweep")
@click.argument("config_path", type=click.Path(path_type=str))
@click.option(
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Sweep folder (default runs/NAME-sweep-TIMESTAMP; with --resume, the folder to continue).",
)
@click.option(
    "--trials",
    type=click.IntRange(min=1),
    default=None,
    help="Trials the study holds at the end that ran to their end: COMPLETE, PRUNED, or FAIL on their "
    "own input; trials stopped while running (Ctrl-C, a killed worker) do not count (default: search.trials).",
)
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True, help="Worker processes on this machine."
)
@click.option(
    "--storage",
    default=None,
    help="Optuna storage: sqlite:///FILE (default: study.db in the folder), postgresql://USER@HOST/DB, "
    "or journal:FILE.",
)
@click.option("--study", "study_name", default=None, help="The study's name (default: the config's name).")
@click.option("--resume", is_flag=True, help="Continue (or join) the study the storage holds under that name.")
def sweep_command(
    config_path: str,
    output: Path | None,
    trials: int | None,
    workers: int,
    storage: str | None,
    study_name: str | None,
    resume: bool,
) -> None:
    """Search the config's [search] space with Optuna: trials table, best config as TOML, plots."""
    from rnnkit.tasks import load_config
    from rnnkit.search import run_sweep

    config = load_config(config_path)
    if output is None:
        if resume and storage is None:
            raise click.UsageError("--resume needs --output FOLDER (the sweep to continue) or --storage URL")
        output = _default_output(f"{config.name}-sweep")
    _use_run_folder(output)
    click.echo(f"sweep folder: {output}")
    run_sweep(
        config, output, trials=trials, workers=workers, storage=storage, study=study_name, resume=resume, log=click.echo
    )


def one_line(message: object) -> str:
    """A message on one line (a multi-line message's lines joined with "; ")."""
    lines = [part.strip() for part in str(message).splitlines() if part.strip()]
    return "; ".join(lines) or "(no message)"


def _input_message(e: BaseException) -> str:
    if isinstance(e, OSError) and e.filename is not None and e.strerror:
        where = f"{e.filename} -> {e.filename2}" if e.filename2 else str(e.filename)
        return f"{where}: {e.strerror}"
    return one_line(e)


def _log_folder() -> Path:
    folder = _state["run_folder"]
    if isinstance(folder, Path) and folder.is_dir() and os.access(folder, os.W_OK):
        return folder
    cache = Path.home() / ".cache" / "rnnkit" / "logs"
    try:
        cache.mkdir(parents=True, exist_ok=True)
        return cache
    except OSError:
        return Path(tempfile.gettempdir())


def write_traceback(e: BaseException) -> Path | None:
    """Write ``e``'s traceback to ``error.log`` in the run folder (else a file under the cache); its path."""
    text = "".join(traceback.format_exception(type(e), e, e.__traceback__))
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    folder = _log_folder()
    name = (
        "error.log"
        if folder == _state["run_folder"]
        else f"rnnkit-error-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
    )
    try:
        with open(folder / name, "a", encoding="utf-8") as f:
            f.write(f"--- {stamp} rnnkit {' '.join(sys.argv[1:])}\n{text}")
        return folder / name
    except OSError:
        return None


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (0 done, 1 a bug, 2 bad input, 130 stopped)."""
    _state["run_folder"] = None
    _state["debug"] = os.environ.get("RNNKIT_DEBUG", "").strip() not in ("", "0")
    try:
        with warnings.catch_warnings():
            shown = warnings.showwarning
            warnings.showwarning = _show_warning(shown)
            warnings.simplefilter("always", RnnkitWarning)  # said at the command line, whatever the filters
            app.main(args=argv, prog_name="rnnkit", standalone_mode=False)
    except Interrupted as e:  # Ctrl-C after the command kept its work (a sweep's finished trials)
        _say(f"rnnkit: interrupted: {one_line(e)}")
        return 130
    except (click.exceptions.Abort, KeyboardInterrupt):
        click.echo("rnnkit: aborted", err=True)
        return 130
    except click.ClickException as e:
        _say(f"rnnkit: {one_line(e.format_message())}")
        return 2
    except INPUT_ERRORS as e:
        _say(f"rnnkit: error: {_input_message(e)}")
        return 2
    except OSError as e:
        if e.errno in NO_SPACE:
            _say(f"rnnkit: error: {_input_message(e)} (free some space, then run again or --resume)")
            return 2
        return _bug(e)
    except Exception as e:  # noqa: BLE001 - a bug: one line and the traceback in a file
        return _bug(e)
    return 0


def _show_warning(shown):
    """rnnkit's own warnings as one line, ``rnnkit: warning: ...`` (rank 0 alone under torchrun); others as Python shows them."""

    def show(message, category, filename, lineno, file=None, line=None):
        if issubclass(category, RnnkitWarning):
            _say(f"rnnkit: warning: {one_line(message)}")
        else:
            shown(message, category, filename, lineno, file, line)

    return show


def _other_rank() -> bool:
    """Whether this process is a rank other than 0 under torchrun (``RANK`` > 0 of ``WORLD_SIZE`` > 1).

    Read from the environment, not the process group: a bad config is found before the ranks join."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1")) > 1 and int(os.environ.get("RANK", "0")) > 0
    except ValueError:
        return False


def _say(line: str) -> None:
    """A bad-input line on stderr; under torchrun rank 0 alone says it (every rank reads the same config
    and data, so the others would print the same line again) and the others exit 2 silently."""
    if not _other_rank():
        click.echo(line, err=True)


def _bug(e: BaseException) -> int:
    written = write_traceback(e)
    where = f"traceback in {written}" if written else "the traceback could not be written"
    click.echo(
        f"rnnkit: internal error (a bug, not your input): {type(e).__name__}: {one_line(e)[:200]}; "
        f"{where}; run with --debug to print it",
        err=True,
    )
    if _state["debug"]:
        traceback.print_exception(type(e), e, e.__traceback__, file=sys.stderr)
    return 1


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
