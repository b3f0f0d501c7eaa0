"""Update rules as plug-ins: one module per rule, found here by its file alone.

A rule module (``sgd.py`` is the model) holds, in the spirit of optax's ``(init, update)``
pairs and of ``torch/optim/sgd.py``:

* ``NAME`` (what ``--optimizer`` and the configuration call it) and ``TORCH_CLASS`` (the
  ``torch.optim`` class the optim path runs, and the one the hand-written spellings mirror);
* ``Hyper``: a frozen dataclass of hyperparameters, checked in ``__post_init__`` as torch
  checks them; each field's ``metadata["help"]`` becomes a command-line option
  (``--weight-decay`` for ``weight_decay``; booleans are flags);
* ``init(params) -> state`` and ``update(params, grads, state, hp, spelling)``, in place, with
  the algorithm as math in the module docstring, in two spellings: ``textbook`` (the formula as
  written) and ``torch-exact`` (torch's operations, bit for bit);
* ``STATE``: the name of the per-parameter state that the report compares (None if none), and
  ``explain_update(hp, w, g)`` / ``explain_state(hp)``: which operations round differently
  between the spellings.

Adding a rule is one new file in this folder plus its tests. Nothing here imports torch.
"""

from __future__ import annotations

import importlib
import pkgutil

from ..errors import TorchgdError
from .sgd import Hyper as SGD
from .sgd import update as sgd_

RULES = ("textbook", "torch-exact")  # the two spellings of every rule (``--rule``)
REQUIRED = (
    "NAME",
    "TORCH_CLASS",
    "STATE",
    "Hyper",
    "init",
    "update",
    "explain_update",
    "explain_state",
)

__all__ = ["ALL", "RULES", "SGD", "get", "of", "sgd_"]


def _discover() -> dict:
    found = {}
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        missing = [a for a in REQUIRED if not hasattr(module, a)]
        if missing:
            raise ImportError(f"torchgd rule module {info.name} lacks {', '.join(missing)}")
        found[module.NAME] = module
    return found


ALL = _discover()  # name -> rule module


def of(hp):
    """The rule whose hyperparameters ``hp`` are (its ``Hyper``'s module); a namespace of
    values (a sweep's lanes) is SGD's."""
    import sys

    module = sys.modules.get(type(hp).__module__)
    return module if module in ALL.values() else ALL["sgd"]


def get(name: str):
    """The rule called ``name``."""
    if name not in ALL:
        raise TorchgdError(f"unknown optimizer '{name}': use one of {', '.join(ALL)}")
    return ALL[name]
