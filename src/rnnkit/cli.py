"""The ``rnnkit`` command line: argument parsing and wiring only.

Every command's work lives in the library; this module turns arguments into calls and
turns bad input into one line on stderr with exit code 2 (never a traceback).
"""

from __future__ import annotations

import sys

import click

from rnnkit.errors import RnnkitError

# Errors that mean "bad input": reported as one line, exit code 2.
INPUT_ERRORS = (RnnkitError, ValueError, FileNotFoundError, IsADirectoryError, PermissionError, KeyError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="rnnkit")
def app() -> None:
    """rnnkit: recurrent neural networks for sequence modelling (Keras semantics, PyTorch kernels)."""


@app.command("data")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=str), default=None,
              help="Also draw the series to this PNG.")
@click.option("--column", "columns", multiple=True, help="Column to plot (repeatable; default T (degC)).")
def data_command(paths: tuple[str, ...], plot_path: str | None, columns: tuple[str, ...]) -> None:
    """What data file(s) hold: rows, period, step, columns with units, gaps, -9999 codes."""
    from rnnkit.datasets import describe, load

    click.echo(str(describe(list(paths))))
    if plot_path is not None:
        from rnnkit.plots import plot_series

        written = plot_series(load(list(paths)), list(columns) or None, plot_path)  # cleaned: no -9999 spikes
        click.echo(f"plot: {written}")


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code."""
    try:
        app.main(args=argv, prog_name="rnnkit", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("rnnkit: aborted", err=True)
        return 130
    except click.ClickException as e:
        click.echo(f"rnnkit: {e.format_message()}", err=True)
        return 2
    except INPUT_ERRORS as e:
        msg = e.args[0] if isinstance(e, KeyError) and e.args else e
        click.echo(f"rnnkit: error: {msg}", err=True)
        return 2
    return 0


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
