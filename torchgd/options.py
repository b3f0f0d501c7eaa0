"""Options that can be checked without importing torch, so bad input is refused at once.

``train.plan`` checks them again (the library is validated too); the CLI checks them first.
"""

from __future__ import annotations

import math

from .errors import TorchgdError
from .rules.sgd import Hyper as SGD  # noqa: F401  (the CLI checks SGD's options here)

# learning rates in one sweep: each lane's hyperparameters, predicted rate and status are
# computed one by one (100,000 lanes take about 15 s on a 2-core VM, a million six minutes)
MAX_LRS = 100_000

SPELLINGS = ("textbook", "torch-exact")  # the spellings of a rule (torchgd.rules)
DTYPE_NAMES = ("float64", "float32")


def check_epochs(epochs) -> int:
    if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
        raise TorchgdError(f"--epochs must be a whole number >= 1, got {epochs!r}")
    return epochs


def check_dtype_name(name: str) -> str:
    if name not in DTYPE_NAMES:
        raise TorchgdError(f"unknown dtype '{name}': use one of {', '.join(DTYPE_NAMES)}")
    return name


def renamed(given: dict, old: str, new: str, value, default, why: str = ""):
    """``old=`` in ``given`` (a keyword renamed in this version): its value, with a warning at
    the caller's own line that says what replaced it (and ``why``); else ``value`` (None:
    ``default``). Both given is refused: they would disagree."""
    if old not in given:
        return default if value is None else value
    if value is not None:
        raise TorchgdError(f"give {new}= only ({old}= is its old name), not both")
    import sys
    import warnings
    from pathlib import Path

    here, depth = str(Path(__file__).parent), 1
    while sys._getframe(depth).f_code.co_filename.startswith(here):  # out of torchgd
        depth += 1
    what = f" ({why})" if why else ""
    warnings.warn(f"{old}= is now {new}={what}; {old}= still works in this version",
                  FutureWarning, stacklevel=depth + 1)  # fmt: skip
    return given.pop(old)


def check_spelling(spelling: str) -> str:
    if spelling not in SPELLINGS:
        raise TorchgdError(
            f"unknown spelling '{spelling}': use one of {', '.join(SPELLINGS)} (the rule itself "
            "is --optimizer)"
        )
    return spelling


def check_run(spelling, epochs, noise, patience, history) -> None:
    """The run's own options, each as its flag words it (``plan`` checks them first)."""
    check_spelling(spelling)
    check_epochs(epochs)
    check_guard(noise, patience)
    check_history(history)


def check_history(history) -> None:
    if history not in ("auto", "all", "steps"):
        raise TorchgdError(f"--history must be auto, all or steps, got '{history}'")


def check_guard(noise, patience) -> None:
    if not isinstance(noise, (int, float)) or not math.isfinite(noise) or noise < 0:
        raise TorchgdError(f"--noise must be a finite number >= 0, got {noise}")
    if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
        raise TorchgdError(f"--patience must be a whole number >= 1, got {patience!r}")


def parse_lrs(spec: str, log: bool = False) -> list[float]:
    """``START:STOP:K`` to K learning rates, evenly spaced (or log-spaced with ``log``)."""
    parts = spec.split(":")
    try:
        if len(parts) != 3:
            raise ValueError
        start, stop, k = float(parts[0]), float(parts[1]), int(parts[2])
    except ValueError:
        raise TorchgdError(
            f"--lr for sweep is START:STOP:K (e.g. 0.01:0.3:30), got '{spec}'"
        ) from None
    if not (math.isfinite(start) and math.isfinite(stop)) or not 0 < start < stop or k < 2:
        raise TorchgdError(f"--lr {spec}: need 0 < START < STOP and K >= 2")
    if k > MAX_LRS:  # refused before K numbers are made
        raise TorchgdError(f"--lr {spec}: {too_many(k)}")
    if log:
        a, b = math.log10(start), math.log10(stop)
        return [start] + [10 ** (a + (b - a) * i / (k - 1)) for i in range(1, k - 1)] + [stop]
    return [start + (stop - start) * i / (k - 1) for i in range(k - 1)] + [stop]


def too_many(k: int) -> str:
    return (
        f"K = {k:,} learning rates; at most {MAX_LRS:,} in one sweep (each lane's rate and "
        "status are worked out one by one: split it, or narrow START:STOP)"
    )


def init_point(text: str) -> dict:
    """``--init``/``init=``: ``NAME=VALUE[,NAME=VALUE...]`` to a dict of floats."""
    out = {}
    for part in filter(None, str(text).split(",")):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq or not name.strip():
            raise TorchgdError(
                f"'{text}' is not NAME=VALUE[,NAME=VALUE...] (e.g. w=1.0 or x=-5,y=-2)"
            )
    return out
