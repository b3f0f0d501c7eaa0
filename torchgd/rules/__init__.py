"""Update rules as plug-ins: one module per rule, found here by its file alone.

A rule module (``sgd.py`` is the model; ``adagrad``, ``rmsprop``, ``adadelta``, ``adam``,
``adamw`` follow it) holds, in the spirit of optax's ``(init, update)`` pairs and of
``torch/optim/sgd.py``:

* ``NAME`` (what ``--optimizer`` and the configuration call it) and ``TORCH_CLASS`` (the
  ``torch.optim`` class the optim path runs, and the one the hand-written spellings mirror);
* ``Hyper``: a frozen dataclass of hyperparameters with torch's defaults, checked in
  ``__post_init__`` as torch checks them (in torch's words); each field's
  ``metadata["help"]`` becomes a command-line option (``--weight-decay`` for
  ``weight_decay``; booleans are flags); ``state_names``: the state this configuration keeps;
* ``init(params, hp) -> state`` and ``update(params, grads, state, hp, spelling)``, in place,
  with the algorithm as math in the module docstring, in two spellings: ``textbook`` (the
  formula as a textbook writes it) and ``torch-exact`` (torch's operations, bit for bit);
  ``state[name]`` is a dict named as torch names it (``exp_avg``, ``step``, ...);
* ``STATE`` (every per-parameter state it can keep, torch's names) with ``FORMULAS`` (how each
  is updated), and ``explain_update(hp, w, g)`` / ``explain_state(hp)``: which operations
  differ between the spellings.

Adding a rule is one new file in this folder plus its tests; a user's own rule is
``--optimizer FILE.py:NAME`` (``load``). Nothing here imports torch.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
from pathlib import Path
from types import SimpleNamespace

from ..errors import TorchgdError
from ._base import Base
from .sgd import Hyper as SGD
from .sgd import update as sgd_

RULES = ("textbook", "torch-exact")  # the two spellings of every rule (``--spelling``)
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
USER_REQUIRED = ("TORCH_CLASS", "Hyper", "update")  # a user's rule: the rest has defaults

__all__ = [
    "ALL",
    "RULES",
    "SGD",
    "Base",
    "all_on",
    "combinations",
    "get",
    "load",
    "of",
    "options",
    "sgd_",
    "variants",
]


ORDER = ("sgd", "adagrad", "rmsprop", "adadelta", "adam", "adamw")  # as courses teach them


def _discover() -> dict:
    found = {}
    key = lambda m: (ORDER.index(m.name) if m.name in ORDER else len(ORDER), m.name)  # noqa: E731
    for info in sorted(pkgutil.iter_modules(__path__), key=key):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        missing = [a for a in REQUIRED if not hasattr(module, a)]
        if missing:
            raise ImportError(f"torchgd rule module {info.name} lacks {', '.join(missing)}")
        found[module.NAME] = module
    return found


ALL = _discover()  # name -> rule module, built in
_BY_HYPER = {module.Hyper: module for module in ALL.values()}  # + users' rules once loaded


def of(hp):
    """The rule whose hyperparameters ``hp`` are (found by its ``Hyper`` class); a namespace
    of values without one is SGD's."""
    return _BY_HYPER.get(type(hp), ALL["sgd"])


def get(name: str):
    """The rule called ``name``, or a user's ``FILE.py:NAME`` / ``package.module:NAME``."""
    if name in ALL:
        return ALL[name]
    if isinstance(name, str) and ":" in name:
        return load(name)
    by_class = {m.TORCH_CLASS.lower(): m for m in ALL.values()}
    if str(name).lower() in by_class:  # torch's class name: Adam, NAdam, ...
        return by_class[str(name).lower()]
    if str(name).lower() in NOT_HERE:
        raise TorchgdError(f"--optimizer {name}: {NOT_HERE[str(name).lower()]}")
    raise TorchgdError(f"unknown optimizer '{name}': use one of {', '.join(ALL)} or FILE.py:NAME")


# torch.optim's rules torchgd does not run, and why (said in one line, not "unknown")
NOT_HERE = {
    "sparseadam": "torch.optim.SparseAdam takes sparse gradients only (it refuses dense ones) "
    "and every problem here has dense gradients; its step is Adam's on the rows a sparse "
    "gradient touches: use adam",
    "muon": "torch.optim.Muon orthogonalises the update of a 2-D weight matrix (Newton-Schulz); "
    "the problems here have vectors of weights, where it has nothing to orthogonalise",
}


def hyper(optimizer: str, lr, given: dict, words=()):
    """The rule's ``Hyper`` from ``lr`` (None: the rule's default) and the options ``given``,
    checked as torch checks them; an option the rule does not take is refused, saying whose
    it is (``words``: other argument names a misspelling may have meant)."""
    rule = get(optimizer)
    known = [f.name for f in dataclasses.fields(rule.Hyper)]
    for key in given:
        if key not in known:
            raise TorchgdError(_not_an_option(key, rule.NAME, known, words))
    options = given if lr is None else {"lr": lr, **given}
    try:
        return rule.Hyper(**options)
    except TorchgdError as exc:  # torch's words: said of the option that broke them
        culprit, said = _culprit(rule.Hyper, options), str(exc)
        named = culprit and culprit.split(" ")[0].rstrip(":") in said  # torchgd's own words
        raise TorchgdError(said if named else f"{culprit}{said}") from None


def _culprit(Hyper, options: dict) -> str:
    """``--name value: `` of the one option that torch's checks refuse on its own (else "")."""
    for key, value in options.items():
        try:
            Hyper(**{key: value})
        except TorchgdError:
            flag = f"--{key.replace('_', '-')}"
            if isinstance(value, bool):
                return f"{flag}: " if value else f"--no-{flag[2:]}: "
            return f"{flag} {','.join(map(str, value)) if isinstance(value, tuple) else value}: "
        except Exception:  # an option that needs another (nesterov: momentum): not alone
            continue
    return ""


def _not_an_option(key: str, name: str, known: list, words) -> str:
    """Why ``key`` is refused: another rule's option, or no option at all (with a guess)."""
    import difflib

    whose = options().get(key)
    takes = f"{name} takes {', '.join(k for k in known if k != 'lr')}"
    if whose:
        return (
            f"{key} (--{key.replace('_', '-')}) is an option of {', '.join(whose[1])}, not of "
            f"{name}: choose one of those with --optimizer (optimizer= in Python); {takes}"
        )
    near = difflib.get_close_matches(key, [*words, *known], n=1)
    if near:
        return f"unknown argument '{key}': did you mean '{near[0]}'?"
    return f"unknown argument '{key}'; {takes}, besides the run's own (see plan)"


def options() -> dict:
    """Every built-in rule's options but the learning rate: name -> (field, [rule names])."""
    out: dict = {}
    for module in ALL.values():
        for f in dataclasses.fields(module.Hyper):
            if f.name != "lr":
                out.setdefault(f.name, (f, []))[1].append(module.NAME)
    return out


def state_names(hp) -> tuple:
    """The per-parameter state ``hp``'s configuration keeps (its rule's ``STATE`` if its
    ``Hyper`` does not say)."""
    names = getattr(hp, "state_names", None)
    return tuple(of(hp).STATE if names is None else names)


def adaptive(hp) -> bool:
    """Whether the rule scales its steps by the gradients seen (every torch.optim rule here
    but SGD): its steps stay about lr near a minimum (see ``torchgd.guard``)."""
    rule = of(hp)
    return getattr(rule, "ADAPTIVE", rule.TORCH_CLASS != "SGD")


AGAIN = (
    "evaluates the loss again within a step, on the same whole batch: no gradient noise "
    "(--noise) and no torchrun, whose sums cover one evaluation"
)


def evaluates(hp) -> bool:
    """Whether the rule evaluates the loss and gradient again within a step (L-BFGS: its
    ``update`` takes ``evaluate``)."""
    return bool(getattr(of(hp), "EVALUATES", False))


def check_noise(hp, noise) -> None:
    """Gradient noise is one draw a step: a rule that evaluates again cannot take it."""
    if noise and evaluates(hp):
        raise TorchgdError(f"--noise: {of(hp).NAME} {AGAIN}")


def hovers(hp) -> bool:
    """Whether the cost may rise for a while on the way down, so that the divergence guard
    counts only a rise above the start: an adaptive rule, or one with momentum (heavy-ball
    overshoots and comes back)."""
    return adaptive(hp) or bool(getattr(hp, "momentum", 0))


def torch_kwargs(hp) -> dict:
    """The keyword arguments of the rule's ``torch.optim`` class."""
    return hp.torch_kwargs() if hasattr(hp, "torch_kwargs") else dataclasses.asdict(hp)


def words(config: dict, num=str, sep=" ") -> list[str]:
    """A run's rule and the options it was given away from their defaults, for a title or the
    first line: ``adam``, ``betas 0.8,0.99``, ``amsgrad`` (SGD's name is left out: the
    lecture's rule). ``num`` formats a number, ``sep`` goes between a name and its value."""
    name = config.get("optimizer", "sgd")
    try:
        rule = get(name)
    except TorchgdError:  # a user's rule file that is gone: its name only
        return [name]
    out = [] if rule.NAME == "sgd" else [rule.NAME]
    for f in dataclasses.fields(rule.Hyper):
        value = config.get(f.name, f.default)
        value = tuple(value) if isinstance(value, list) else value
        if f.name == "lr" or value == f.default:
            continue
        if isinstance(value, bool):
            out.append(f.name)
        elif isinstance(value, str):  # L-BFGS's line search: a name
            out.append(f"{f.name.replace('_', ' ')}{sep}{value}")
        else:
            shown = ",".join(map(num, value)) if isinstance(value, tuple) else num(value)
            out.append(f"{f.name.replace('_', ' ')}{sep}{shown}")
    return out


# -- a user's own rule ------------------------------------------------------------------------

_LOADED: dict = {}


def load(spec: str):
    """A user's rule, ``FILE.py:NAME`` or ``package.module:NAME``: NAME is any object (a
    class, a module, a namespace) with ``TORCH_CLASS``, ``Hyper`` (a dataclass with ``lr``)
    and ``update``; ``NAME``, ``STATE``, ``FORMULAS``, ``init`` and the explanations get
    defaults. Checked here, once: a missing member is one line, not a traceback later."""
    where, _, attr = spec.rpartition(":")
    key = str(Path(where).resolve()) + ":" + attr if where.endswith(".py") else spec
    if key in _LOADED:
        return _LOADED[key]
    from ..loading import attribute

    obj = attribute(spec, "optimizer")
    if obj is None:
        raise TorchgdError(f"'{spec}' is not an optimizer rule (no {attr} there)")
    missing = [a for a in USER_REQUIRED if not hasattr(obj, a)]
    if missing:
        raise TorchgdError(
            f"optimizer rule '{spec}' lacks {', '.join(missing)} (a rule needs TORCH_CLASS, "
            "Hyper and update; see torchgd/rules/sgd.py)"
        )
    if not dataclasses.is_dataclass(obj.Hyper) or "lr" not in {
        f.name for f in dataclasses.fields(obj.Hyper)
    }:
        raise TorchgdError(f"optimizer rule '{spec}': its Hyper must be a dataclass with an lr")
    from ..runconfig import FIELDS

    taken = [f.name for f in dataclasses.fields(obj.Hyper) if f.name in FIELDS and f.name != "lr"]
    if taken:  # plan(patience=3) could not say whose it is
        raise TorchgdError(
            f"optimizer rule '{spec}': its option {taken[0]!r} is the name of one of torchgd's "
            f"run options: name it otherwise in its Hyper"
        )
    rule = SimpleNamespace(
        NAME=getattr(obj, "NAME", attr),
        TORCH_CLASS=obj.TORCH_CLASS,
        STATE=tuple(getattr(obj, "STATE", ())),
        FORMULAS=dict(getattr(obj, "FORMULAS", {})),
        Hyper=obj.Hyper,
        init=getattr(obj, "init", lambda params, hp: {}),
        update=obj.update,
        explain_update=getattr(obj, "explain_update", _explain_update(obj.TORCH_CLASS)),
        explain_state=getattr(obj, "explain_state", _explain_state(obj.TORCH_CLASS)),
        spec=key,
    )
    _LOADED[key] = _BY_HYPER[obj.Hyper] = rule
    return rule


def _explain_update(torch_class):
    def explain(hp, w, g) -> str:
        return (
            f"your rule and torch.optim.{torch_class} compute the step with different "
            "operations (or a different formula): compare them operation by operation with "
            f"torch/optim/{torch_class.lower()}.py's single-tensor function"
        )

    return explain


def _explain_state(torch_class):
    def explain(hp) -> str:
        return f"your rule updates its state with other operations than torch.optim.{torch_class}"

    return explain


# -- what the generated tests try: two values per option, read from the rule itself ----------


def _guess(default):
    """Another value for an option without ``metadata["other"]``: a flag flipped, 0 -> 0.1, a
    number (or each of a tuple of numbers) halved; None where no guess is safe."""
    if isinstance(default, bool):
        return not default
    if isinstance(default, (int, float)):
        return 0.1 if default == 0 else default / 2
    if isinstance(default, tuple) and all(isinstance(v, float) for v in default):
        return tuple(v / 2 for v in default)
    return None


def variants(rule) -> dict:
    """Two values of every option of ``rule`` (a rule module, built in or a user's): torch's
    default and another one (the field's ``metadata["other"]``, else ``_guess``); the
    learning rate only where the rule names another. The exactness tests try every
    combination of them, so a new rule is tested the moment its file exists."""
    out = {}
    for f in dataclasses.fields(rule.Hyper):
        other = f.metadata.get("other", _guess(f.default) if f.name != "lr" else None)
        if other is not None:
            out[f.name] = [f.default, other]
    return out


def combinations(rule):
    """Every combination of ``variants(rule)`` that the rule accepts (torch refuses some:
    SGD's Nesterov momentum needs a momentum and no dampening), as keyword dicts."""
    import itertools

    grid = variants(rule)
    for values in itertools.product(*grid.values()):
        options = dict(zip(grid, values))
        try:
            rule.Hyper(**options)
        except (TorchgdError, ValueError, TypeError):  # a user's Hyper may check in its own way
            continue
        yield options


def all_on(rule) -> dict:
    """Every option of ``rule`` at its other value at once, where the rule accepts it (taken
    in field order; one the rule refuses with the others on stays at its default), and the
    learning rate (the other one where the rule names it, else its default)."""
    on = {"lr": next(f.default for f in dataclasses.fields(rule.Hyper) if f.name == "lr")}
    for name, (_, other) in variants(rule).items():
        if name == "maximize":  # the direction: a test chooses it
            continue
        try:
            rule.Hyper(**{**on, name: other})
        except (TorchgdError, ValueError, TypeError):
            continue
        on[name] = other
    return on
