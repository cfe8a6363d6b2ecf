"""`python -m rnnkit`: the command line, as the `rnnkit` console script runs it (torchrun needs this form)."""

from rnnkit.cli import run

if __name__ == "__main__":
    run()
