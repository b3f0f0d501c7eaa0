"""The one exception type for bad input.

Raised at the edges (CLI arguments, data files, devices) with a message that says what was wrong
and what to do. The CLI prints it on one line and exits with code 2.
"""


class TorchgdError(ValueError):
    """Bad input, explained in one line for a person."""
