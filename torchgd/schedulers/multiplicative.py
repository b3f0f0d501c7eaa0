"""MultiplicativeLR: each step multiplies the lr by a factor that a user's function gives
for the step count.

    textbook     lr_t = base * (lr_lambda(1) * lr_lambda(2) * ... * lr_lambda(t))
    torch-exact  lr_t = lr_(t-1) * lr_lambda(t)      (rounded at every step)

``--scheduler multiplicative:lr_lambda=decay.py:factor``.
"""

from __future__ import annotations

from . import _user

NAME = "multiplicative"
TORCH_CLASS = "MultiplicativeLR"
WHY = (
    "torch multiplies the previous lr by each step's factor, rounding t times, where the "
    "closed form multiplies the factors together first and the base lr once"
)

# options the tests try against torch (each scheduler file brings its own)
TRY = [dict(lr_lambda="torchgd.schedulers._examples:decay")]


Options, torch_kwargs = _user.Options, _user.torch_kwargs  # lr_lambda=FILE.py:NAME


_PRODUCTS: dict = {}  # lr_lambda -> [1, f(1), f(1) f(2), ...]: each product computed once


def textbook(t: int, base: float, o: Options) -> float:
    products = _PRODUCTS.setdefault(o.lr_lambda, [1.0])
    while len(products) <= t:
        products.append(products[-1] * _user.factor(o.lr_lambda, len(products)))
    return base * products[t]


def torch_exact(t: int, prev: float, base: float, o: Options) -> float:
    return prev if t == 0 else prev * _user.factor(o.lr_lambda, t)
