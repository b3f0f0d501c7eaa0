"""The extension points, declared in one place: Problem, Path, Rule and Callback.

Each is a ``typing.Protocol``: any object with these members fits, no base class needed. What a
user brings (a problem from ``FILE.py:NAME``, a callback passed to ``fit``) is checked once,
when the run is planned: a missing required member is one ``TorchgdError`` line (exit 2 at the
command line) before anything is written, and optional members get the defaults listed here,
so a minimal problem -- name, param_names, start, loss, grad -- works in every command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from .errors import TorchgdError

Params = dict  # parameter name -> tensor


@runtime_checkable
class Problem(Protocol):
    """A cost and its derivative written out by hand.

    Required: ``name``; ``param_names``; ``start`` (name -> number or list); ``loss(params,
    x, y)`` -> the cost; ``grad(params, x, y)`` -> dict of d cost / d param (the analytic
    formula, checked against autograd at every step). Optional members and their defaults are
    in ``PROBLEM_DEFAULTS``."""

    name: str
    param_names: tuple
    start: dict

    def loss(self, params: Params, x, y) -> Any: ...

    def grad(self, params: Params, x, y) -> Params: ...


PROBLEM_REQUIRED = ("name", "param_names", "start", "loss", "grad")
PROBLEM_DEFAULTS: dict[str, Callable[[Any], Any]] = {
    "needs_data": lambda p: False,  # a function of the parameters alone: x and y are None
    "description": lambda p: p.name,  # the one line the console and plots show
    "box": lambda p: (-4.0, 4.0),  # where ``torchgd check`` samples points
    "special_points": lambda p: (),  # (name, point) pairs ``torchgd check`` also tries
    "minimum": lambda p: None,  # the known minimizer, if any (sweeps measure the distance)
    "grad_bound": lambda p: None,  # params, x, y, n -> bound on |formula - autograd|
    "chunk_rows": lambda p: None,  # big batches come in chunks of this many rows (with sums)
    "bias": lambda p: False,
    "f": lambda p: _f_of(p),  # a data-free problem's cost as f(*coordinates), for contours
    # (batch_sizes, dtype, max_rel) -> why the formula and autograd round differently, in words
    "gradient_words": lambda p: lambda sizes, dtype, max_rel: _rounding_words(p, dtype, max_rel),
}


def _rounding_words(problem, dtype, max_rel: float) -> str:
    """Why a hand-written gradient and autograd's differ, for any problem: rounding."""
    import torch

    name, eps = str(dtype).removeprefix("torch."), torch.finfo(dtype).eps
    return (
        f"the hand-written formula and autograd's chain rule through "
        f"f ({getattr(problem, 'description', problem.name)}) compute the derivative with "
        f"different operations in a different order, each rounded to {name} (max relative "
        f"difference {max_rel:.3g}, eps {eps:.3g}): rounding, not a wrong formula"
    )


def _f_of(problem):
    """``f(a, b, ...)``: the loss at the point whose parameters are the coordinates, elementwise
    over tensors of points (as the contour and trajectory figures call it)."""

    def f(*coords):
        return problem.loss(dict(zip(problem.param_names, coords)), None, None)

    return f


class _WithDefaults:
    """A user's problem with the optional members it lacks filled in from the defaults."""

    def __init__(self, inner):
        self.__dict__["_inner"] = inner

    def __getattr__(self, name):
        try:
            return getattr(self._inner, name)
        except AttributeError:
            if name in PROBLEM_DEFAULTS:
                return PROBLEM_DEFAULTS[name](self._inner)
            raise

    def __repr__(self) -> str:
        return repr(self._inner)


READ_DIRECTLY = ("needs_data", "description")  # the others are read through ``optional``


def optional(problem, name: str):
    """The problem's optional member ``name``, or its default."""
    value = getattr(problem, name, _MISSING)
    return PROBLEM_DEFAULTS[name](problem) if value is _MISSING else value


_MISSING = object()


def as_problem(problem, where: str = "the problem"):
    """``problem`` checked against ``Problem``, with defaults for its optional members."""
    if isinstance(problem, type):  # the class where an instance is expected
        raise TorchgdError(
            f"{where} is the class {problem.__name__}, not a problem: give an instance, "
            f"{problem.__name__}(...) (a problem object holds its settings, such as "
            "Linear(bias=True))"
        )
    missing = [a for a in PROBLEM_REQUIRED if not hasattr(problem, a)]
    if missing:
        raise TorchgdError(
            f"{where} is not a problem: it lacks {', '.join(missing)} (a problem has "
            f"{', '.join(PROBLEM_REQUIRED)}; see torchgd.problems.FunctionProblem)"
        )
    lacking = [a for a in READ_DIRECTLY if not hasattr(problem, a)]
    if not getattr(problem, "needs_data", False) and not hasattr(problem, "f"):
        lacking.append("f")  # figures of a function draw its cost over the plane
    return _WithDefaults(problem) if lacking else problem


@runtime_checkable
class Path(Protocol):
    """One way of taking a step (``torchgd.paths``): it holds its own copy of the parameters.

    ``accumulate(x, y, n)`` takes a batch (``n`` None) or one chunk of a batch of n rows;
    ``update(noise)`` applies the rule and returns ``(loss before the update, gradient used)``;
    ``formula()`` (paths with ``uses_autograd``) the analytic gradient at the parameters the
    step's gradient was taken at; ``state_dict``/``load_state_dict`` for checkpoints."""

    name: str
    uses_autograd: bool
    params: Params

    def accumulate(self, x, y, n: int | None = None) -> None: ...

    def update(self, noise=None) -> tuple: ...

    def values(self) -> Params: ...

    def buffers(self) -> Params: ...

    def state_dict(self) -> dict: ...

    def load_state_dict(self, state: dict) -> None: ...


@runtime_checkable
class Rule(Protocol):
    """An update rule as a plug-in: a module of ``torchgd/rules/`` (``rules.REQUIRED`` lists
    these members; ``rules/sgd.py`` is the model), optax-style ``init(params, hp) -> state``
    and ``update(params, grads, state, hp, spelling)`` in place (``state[name]`` a dict named
    as torch names it), plus the hyperparameters' dataclass (``Hyper``), the ``torch.optim``
    class it mirrors, the names of its per-parameter state, and how its two spellings
    differ."""

    NAME: str
    TORCH_CLASS: str
    STATE: tuple
    Hyper: type

    def init(self, params: Params, hp) -> dict: ...

    def update(self, params: Params, grads: Params, state: dict, hp, spelling: str) -> None: ...

    def explain_update(self, hp, w, g) -> str: ...

    def explain_state(self, hp) -> str: ...


@runtime_checkable
class Callback(Protocol):
    """What consumes a run's records; every member is optional (``CALLBACK_HOOKS``).

    ``on_start(config, paths)``; ``on_step(step)`` after every step (a ``records.Step`` of
    tensors on the run's device: reading them waits for the device, so only callbacks that
    need every step as it happens define it); ``on_block(block)`` per block of steps (a
    ``records.HostBlock`` of Python numbers, copied from the device once per block);
    ``on_epoch(epoch)``; ``on_end(result)``; ``flush()`` before a checkpoint is written;
    ``state_dict()`` / ``resume(state, step)`` to carry state across ``--resume``;
    ``close()`` on every exit."""

    def on_start(self, config: dict, paths: dict) -> None: ...

    def on_end(self, result) -> None: ...


CALLBACK_HOOKS = ("on_start", "on_step", "on_block", "on_epoch", "on_end", "flush", "close")


def _nothing(*args, **kwargs) -> None:
    return None


def overrides(cb, hook: str) -> bool:
    """Whether ``cb`` does something on ``hook`` (not the base class's nothing)."""
    from .callbacks import Callback as Base

    method = getattr(type(cb), hook, None)
    return callable(getattr(cb, hook, None)) and method is not getattr(Base, hook, None)


def check_callbacks(callbacks) -> list:
    """Each callback checked once: its hooks must be callable where it defines them."""
    for cb in callbacks:
        for hook in (*CALLBACK_HOOKS, "state_dict", "resume"):
            if hasattr(cb, hook) and not callable(getattr(cb, hook)):
                raise TorchgdError(f"callback {type(cb).__name__}.{hook} is not callable")
    return list(callbacks)


def call(callbacks, hook: str, *args) -> None:
    """``hook(*args)`` on every callback that has it."""
    for cb in callbacks:
        getattr(cb, hook, _nothing)(*args)
