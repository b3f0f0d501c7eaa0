"""What every rule module shares: the ``Hyper`` base (its dict, torch's keyword arguments, the
state it keeps), torch's argument checks and one rule's state in a path.

Not a rule itself (a leading underscore: ``torchgd.rules`` does not list it). Imports no torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict

from ..errors import TorchgdError


def help_(text: str, **more) -> dict:
    """A field's metadata: its ``--help`` text (and, with ``metavar``, how to write it)."""
    return {"help": text, **more}


def like(hyper, name: str, **changes):
    """A field as another rule's ``Hyper`` declares it (its default and help), ``changes``
    made: the options several rules share are written once."""
    from dataclasses import field

    f = hyper.__dataclass_fields__[name]
    return field(**{"default": f.default, "metadata": f.metadata, **changes})


def pair(option: str, example: str):
    """A parser of ``--OPTION a,b`` as a pair of numbers (``--betas 0.9,0.999``)."""

    def parse(text) -> tuple:
        parts = str(text).split(",")
        try:
            if len(parts) != 2:
                raise ValueError
            return float(parts[0]), float(parts[1])
        except ValueError:
            raise invalid(f"--{option} takes two numbers, e.g. {example}; got '{text}'") from None

    return parse


def as_pair(hp, name: str, parse) -> None:
    """``hp.<name>`` as a tuple: from config.json's list, or the command line's ``"a,b"``."""
    value = getattr(hp, name)
    if isinstance(value, list):
        object.__setattr__(hp, name, tuple(value))
    elif isinstance(value, str):
        object.__setattr__(hp, name, parse(value))
    if not isinstance(getattr(hp, name), tuple) or len(getattr(hp, name)) != 2:
        raise invalid(f"--{name.replace('_', '-')} takes two numbers; got {value}")
    hp.numbers(name)


def invalid(message: str) -> TorchgdError:
    """torch.optim's own words for a bad argument, as torchgd's one-line error."""
    return TorchgdError(message)


class Base:
    """Methods every rule's ``Hyper`` dataclass has (it declares its fields and checks)."""

    def asdict(self) -> dict:
        return asdict(self)

    def torch_kwargs(self) -> dict:
        """The keyword arguments of the rule's ``torch.optim`` class."""
        return self.asdict()

    def numbers(self, *names) -> None:
        """torchgd's own check, before torch's: each option a number (or a tuple of them, where
        the field is one: ``--eps 1e-3,1`` is Adafactor's pair, not Adam's number)."""
        for name in names:
            value, kind = getattr(self, name), str(self.__dataclass_fields__[name].type)
            if isinstance(value, tuple) and "tuple" not in kind:
                import sys

                rule = getattr(sys.modules.get(type(self).__module__), "NAME", "this rule")
                raise TorchgdError(
                    f"--{name.replace('_', '-')} takes one number for {rule} (a pair only for "
                    f"another rule), got {','.join(map(str, value))}"
                )
        self._each(names, lambda v: not isinstance(v, bool) and isinstance(v, (int, float)))

    def finite(self, *names) -> None:
        """torchgd's own check, after torch's: finite too (torch takes ``inf``)."""
        self._each(names, math.isfinite)

    def _each(self, names, ok) -> None:
        for name in names:
            value = getattr(self, name)
            if not all(ok(v) for v in (value if isinstance(value, tuple) else (value,))):
                raise TorchgdError(
                    f"--{name.replace('_', '-')} must be a finite number, got {value}"
                )

    @property
    def state_names(self) -> tuple:
        """The per-parameter state this configuration keeps (what the report compares)."""
        return ()


def zeros(params: dict, names) -> dict:
    """Per parameter: the step count at 0 and each state in ``names`` at zero (as torch makes
    them at the first step)."""
    import torch

    return {
        n: {"step": 0, **{s: torch.zeros_like(t.detach()) for s in names}}
        for n, t in params.items()
    }


def begin(state: dict, name: str, theta, grad, hp, init) -> tuple:
    """One parameter's step begins: its state (made by ``init`` on first use), its step count
    advanced, and the gradient, negated to ascend with ``maximize``."""
    if not state.get(name):
        state[name] = init({name: theta}, hp)[name]
    st = state[name]
    st["step"] += 1
    return st, -grad if hp.maximize else grad


def foreach(t) -> bool:
    """Whether ``torch.optim`` steps a parameter like ``t`` with its multi-tensor (foreach)
    kernels, as it does by default on CUDA (torch's own choice, ``_default_to_fused_or_foreach``):
    there the torch-exact spellings call the same ``torch._foreach_*`` operations, whose CUDA
    kernels round differently from the single-tensor ones (measured on an H100: Adagrad and Adam
    up to 119 ulp apart)."""
    from torch.optim.optimizer import _default_to_fused_or_foreach

    return _default_to_fused_or_foreach([t], differentiable=False, use_fused=False)[1]


def slot(state: dict, name: str) -> dict:
    """The state of parameter ``name`` (created empty on first use)."""
    return state.setdefault(name, {})
