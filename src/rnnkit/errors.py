"""Errors that the command line reports as one line (exit code 2)."""


class RnnkitError(ValueError):
    """Bad input: a file, a config or data that rnnkit cannot use. The message names the problem."""
