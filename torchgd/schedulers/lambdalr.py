"""LambdaLR: the base lr times a factor that a user's function gives for each step count.

    lr_t = base * lr_lambda(t)          (both spellings: torch computes it so too)

``--scheduler lambda:lr_lambda=warmup.py:factor``: ``factor(t)`` in the file ``warmup.py``.
"""

from __future__ import annotations

from . import _user

NAME = "lambda"
TORCH_CLASS = "LambdaLR"
WHY = "torch multiplies the base lr by the factor, as the closed form does"

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(lr_lambda="torchgd.schedulers._examples:warmup")]


Options, torch_kwargs = _user.Options, _user.torch_kwargs  # lr_lambda=FILE.py:NAME


def textbook(t: int, base: float, o: Options) -> float:
    return base * _user.factor(o.lr_lambda, t)


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    return base * _user.factor(o.lr_lambda, t)
