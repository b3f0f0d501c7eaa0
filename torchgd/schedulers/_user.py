"""A user's function for LambdaLR and MultiplicativeLR (``lr_lambda=FILE.py:NAME``, or
``package.module:NAME``) and CyclicLR (``scale_fn=FILE.py:NAME``): loaded once, called with the
scheduler's step count (or cycle), every failure one line. Not a scheduler itself (a leading
underscore)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from ..errors import TorchgdError

OF = {"lr_lambda": "a function of the step", "scale_fn": "a function of the cycle, or of the "
      "step with scale_mode=iterations"}  # fmt: skip


def absolute(spec: str, what: str = "lr_lambda") -> str:
    """``FILE.py:NAME`` with the file's absolute path (the run's config rebuilds it from any
    directory); a module's spec as it is."""
    where, colon, name = str(spec).rpartition(":")
    if not colon or not name or not where:
        raise TorchgdError(f"{what} must be FILE.py:NAME ({OF[what]}), got '{spec}'")
    return f"{Path(where).resolve()}:{name}" if where.endswith(".py") else spec


_IN_USE: dict = {}  # (spec, what) -> the function last loaded for it: what a schedule calls


def function(spec: str, what: str = "lr_lambda"):
    """The function ``spec`` names (a one-line error if it is not one), loaded afresh (an edited
    file is read again) and kept as the one ``factor`` calls: a schedule's options load it when
    they are made, so a run calls one function throughout, without looking for the file at
    every step (300,000 steps took 13 s of path lookups)."""
    from ..loading import attribute

    fn = attribute(spec, what)
    if fn is None:
        where, _, name = spec.rpartition(":")
        raise TorchgdError(f"{what} '{spec}': {where} has no '{name}' ({OF[what]})")
    if not callable(fn):
        raise TorchgdError(f"{what} '{spec}' is a {type(fn).__name__}, not {OF[what]}")
    _IN_USE[(spec, what)] = fn
    return fn


def factor(spec: str, t: int, what: str = "lr_lambda", at: str = "step") -> float:
    """The user's factor at step (or cycle) ``t``: a finite number, or a one-line error."""
    fn = _IN_USE.get((spec, what)) or function(spec, what)
    try:
        value = fn(t)
    except TorchgdError:
        raise
    except Exception as exc:  # the user's code: one line, whatever it raised
        raise TorchgdError(
            f"{what} {spec} failed at {at} {t}: {type(exc).__name__}: {exc}"
        ) from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TorchgdError(f"{what} {spec} gave {value!r} at {at} {t}: it must give a number")
    return value


@dataclass(frozen=True)
class Options:
    """LambdaLR's and MultiplicativeLR's one option: the user's function, ``FILE.py:NAME``."""

    lr_lambda: str

    def __post_init__(self):
        object.__setattr__(self, "lr_lambda", absolute(self.lr_lambda))
        function(self.lr_lambda)


def torch_kwargs(o: Options) -> dict:
    """torch takes the function itself."""
    return {"lr_lambda": function(o.lr_lambda)}
