"""The one exception type for bad input.

Raised at the edges (CLI arguments, data files, devices) with a message that says what was wrong
and what to do. The CLI prints it on one line and exits with code 2.
"""


class TorchgdError(ValueError):
    """Bad input, explained in one line for a person."""


def failure(exc: BaseException) -> str:
    """``Type: message (file:line)``, the line the innermost frame outside torchgd and torch."""
    import traceback
    from pathlib import Path as FilePath

    import torch

    ours = (FilePath(__file__).parent, FilePath(torch.__file__).parent)
    where = ""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        path = FilePath(frame.filename)
        if not any(path.is_relative_to(p) for p in ours):
            where = f" ({path.name}:{frame.lineno})"
            break
    return f"{type(exc).__name__}: {exc}{where}"
