"""Learning-rate schedulers as plug-ins, one module per scheduler, found by its file alone
(as ``torchgd.rules`` finds update rules). A scheduler module holds:

* ``NAME`` (what ``--scheduler`` calls it) and ``TORCH_CLASS`` (its
  ``torch.optim.lr_scheduler`` class, which the optim path runs; the class name is accepted
  as a name too);
* ``Options``: a frozen dataclass of torch's keyword arguments with torch's defaults, checked
  as torch checks them (in torch's words);
* ``textbook(t, base, o)``: the closed form a book writes, the lr after ``t`` scheduler steps;
* ``torch_exact(t, prev, base, o)``: torch's own recursive (chainable) ``get_lr``, the lr
  after ``t`` steps from the one after ``t - 1`` (``prev``), operation for operation; at
  ``t = 0`` torch's first step on the lr it finds (``prev``: the base lr, or in a chain the lr
  the member before left), the lr before any of the run's steps;
* ``WHY``: where the two forms round differently, for the report;
* optional: ``Schedule``, a class of its own where the lr is not a function of the step
  alone (ReduceLROnPlateau: ``observe(cost)`` after every epoch), ``EVERY``: the ways it may be
  stepped; ``momentum(t, o)`` where the scheduler also cycles momentum (``cycle_momentum``:
  SGD's and RMSprop's ``momentum``, Adam's ``beta1``), ``fits(o, units)`` where it can step only
  so often (OneCycleLR's ``total_steps``), ``torch_kwargs(o)`` where torch takes other objects
  than the options (a user's function for ``lr_lambda``), ``PEAK``: the option that sets the
  peak lr where ``--lr`` does not (OneCycleLR's ``max_lr``).

``--scheduler NAME:key=value,...`` (torch's names and values); ``--scheduler-every epoch|step``.
The manual and autograd paths take ``Schedule.lr_at`` in the run's spelling (``--spelling``:
textbook = closed form, torch-exact = torch's recursion); the optim path runs torch's class.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

from ..errors import TorchgdError

EVERY = ("epoch", "step")


def _discover() -> dict:
    found = {}
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found[module.NAME] = module
    return found


ALL = _discover()  # name -> scheduler module
_BY_CLASS = {m.TORCH_CLASS.lower(): m for m in ALL.values()}


def get(name: str):
    """The scheduler called ``name`` (``step``), by torch's class name (``StepLR``), or a
    user's own scheduler file ``FILE.py``, a module like those in this folder."""
    if name.endswith(".py"):
        return user_module(name)
    module = ALL.get(name) or _BY_CLASS.get(name.lower())
    if module is None:
        raise TorchgdError(
            f"unknown scheduler '{name}': use one of {', '.join(ALL)} (or torch's class names: "
            f"{', '.join(m.TORCH_CLASS for m in ALL.values())}), or your own file FILE.py"
        )
    return module


REQUIRED = ("NAME", "TORCH_CLASS", "WHY", "Options", "textbook", "torch_exact")


def label(module) -> str:
    """How messages name a scheduler: torch's class, or a user's file."""
    spec = getattr(module, "SPEC", None)
    return f"the scheduler file {spec.rpartition('/')[2]}" if spec else module.TORCH_CLASS


def users_file(module) -> bool:
    """Whether ``module`` is a user's scheduler file (a composition takes built-in members
    only: ``_compose.parse`` refuses a file there)."""
    return hasattr(module, "SPEC")


def tried(module, options, base: float, spelling: str, units: int, spec: str):
    """A user's scheduler file run once before anything is written: every lr of the run in
    both spellings, and torch's class stepped as the optim path steps it; whatever raises is
    one line naming the file and where in it. Returns the schedule in the run's spelling, its
    lrs computed."""
    import torch

    from ..errors import failure

    try:
        forms = {}
        for form in ("textbook", "torch-exact"):  # the run's, and the one the report compares
            forms[form] = make(module, options, base, form)
            try:
                check(forms[form], units, spec)
            except TorchgdError as exc:
                name = form.replace("-", "_")
                raise TorchgdError(f"{exc} (the file's {name}, the {form} spelling)") from None
        trial = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
        torch_lrs(forms[spelling].torch_scheduler(trial), trial, units, spec)
        return forms[spelling]
    except TorchgdError:
        raise
    except Exception as exc:
        raise TorchgdError(f"--scheduler {spec}: the scheduler file raised {failure(exc)}") from exc


def torch_lrs(scheduler, optimizer, units: int, spec: str) -> None:
    """torch's class from a user's file stepped as the optim path will step it: every lr it
    sets a finite number >= 0 (else the optim path would train with it)."""
    import math

    for t in range(1, units):
        optimizer.step()  # no gradient: nothing moves; torch wants a step before the scheduler's
        scheduler.step()
        lr = optimizer.param_groups[0]["lr"]
        if not (isinstance(lr, float | int) and math.isfinite(lr) and lr >= 0):
            raise TorchgdError(
                f"--scheduler {spec}: torch's {type(scheduler).__name__} built from the file sets "
                f"lr {lr!r} at scheduler step {t} (an lr must be a finite number >= 0)"
            )


def user_module(path: str):
    """A user's scheduler file, checked for what a scheduler module holds; its ``SPEC`` (what
    the run's config records) is the file's absolute path, so a run resumes from anywhere."""
    from pathlib import Path

    from ..loading import module_file

    module = module_file(Path(path), "scheduler")
    missing = [m for m in REQUIRED if not hasattr(module, m)]
    if missing:
        raise TorchgdError(
            f"scheduler file '{path}' lacks {', '.join(missing)}: a scheduler file holds "
            f"{', '.join(REQUIRED)} (docs/layout.md, Recipes)"
        )
    if not dataclasses.is_dataclass(module.Options):
        raise TorchgdError(
            f"scheduler file '{path}': Options must be a dataclass of its options (@dataclass)"
        )
    import torch

    if not hasattr(torch.optim.lr_scheduler, str(module.TORCH_CLASS)):
        raise TorchgdError(
            f"scheduler file '{path}' names TORCH_CLASS '{module.TORCH_CLASS}', which "
            "torch.optim.lr_scheduler does not have (the class the optim path runs)"
        )
    module.SPEC = str(Path(path).resolve())
    return module


_KINDS = {
    "int": "a whole number",
    "float": "a finite number",
    "tuple": "whole numbers like 10/20",
    "bool": "True or False",
}


def _value(field, text: str):
    """A ``key=value`` of the command line as the option's type: ints, finite floats, lists
    of whole numbers (``10/20``), True/False, words; ``None`` where the option may be None."""
    import math

    kind = field.type if isinstance(field.type, str) else field.type.__name__
    if kind.endswith(" | None"):
        if text == "None":
            return None
        kind = kind[: -len(" | None")]
    try:
        if kind == "bool":
            if text not in ("True", "False", "true", "false"):
                raise ValueError
            return text in ("True", "true")
        if kind == "int":
            return int(text)
        if kind == "float":
            value = float(text)
            if not math.isfinite(value):
                raise ValueError
            return value
        if kind in ("tuple", "list"):
            return tuple(int(v) for v in text.split("/") if v)
    except ValueError:
        hint = " (A@5@B runs A, then B from step 5)" if "@" in text else ""
        raise TorchgdError(
            f"--scheduler: {field.name}={text} is not {_KINDS.get(kind, kind)}{hint}"
        ) from None
    return text


def parse(spec):
    """``"step:step_size=10,gamma=0.5"`` as ``(module, Options)``; milestones as ``10/20``;
    a sequence ``A@5@B`` or a chain ``A+B`` as a composition (``_compose``). Python may give
    the object instead: a scheduler's ``Options`` (``schedulers.get("cosine").Options(T_max=
    100)``) or a ``(module, Options)`` pair (what this returns)."""
    from . import _compose

    if not isinstance(spec, str):
        return _of_object(spec)
    if _compose.is_composed(str(spec)):
        return _compose.parse(str(spec), _one)
    return _one(spec)


def cycles(spec) -> bool:
    """Whether the scheduler ``spec`` (None: none) cycles the momentum too."""
    return bool(spec) and _cycles(*parse(spec))


def _cycles(module, options) -> bool:
    """Whether ``module`` with ``options`` sets the momentum too (``cycle_momentum``)."""
    return hasattr(module, "momentum") and bool(getattr(options, "cycle_momentum", False))


def _of_object(obj):
    """A scheduler given as an object: its ``Options`` or ``(module, Options)``."""
    from . import _compose

    composed = (_compose.SEQUENTIAL, _compose.CHAINED)
    if isinstance(obj, tuple) and len(obj) == 2 and (obj[0] in ALL.values() or obj[0] in composed):
        module, options = obj
        own = _compose.Options if module in composed else module.Options
        if type(options) is not own:
            raise TorchgdError(
                f"scheduler: {options!r} are not {module.TORCH_CLASS}'s options (give "
                f"{module.TORCH_CLASS}'s Options, or the Options alone)"
            )
        return obj
    for module in ALL.values():
        if type(obj) is module.Options:
            return module, obj
        if obj is module.Options:
            raise TorchgdError(
                f"scheduler: give {module.TORCH_CLASS}'s Options with its values, e.g. "
                f"Options({', '.join(f'{k}={v!r}' for k, v in module.TRY[0].items())})"
            )
    raise TorchgdError(
        f"scheduler must be a spec like 'cosine:T_max=100', a scheduler's Options (e.g. "
        f"torchgd.schedulers.get('cosine').Options(T_max=100)) or (module, Options); got {obj!r}"
    )


def _one(spec: str):
    name, _, body = str(spec).partition(":")
    module = get(name.strip())
    fields = {f.name: f for f in dataclasses.fields(module.Options)}
    given = {}
    for part in filter(None, (p.strip() for p in body.split(","))):
        key, eq, text = part.partition("=")
        if key in given:
            raise TorchgdError(f"--scheduler {spec}: {key} is given twice")
        if not eq or key not in fields:
            what = "is not key=value" if not eq else f"is not an option of {label(module)}"
            raise TorchgdError(
                f"--scheduler {spec}: '{part}' {what}; it takes "
                + ", ".join(f"{k}=" for k in fields)
            )
        given[key] = _value(fields[key], text)
    try:
        options = module.Options(**given)
    except (TorchgdError, ValueError) as exc:  # torch's own words (a user's), of this option
        raise TorchgdError(f"--scheduler {spec}: {exc}") from None
    except TypeError:
        missing = [
            k for k, f in fields.items() if f.default is dataclasses.MISSING and k not in given
        ]
        example = next((t for t in getattr(module, "TRY", ()) if set(missing) <= set(t)), None)
        example = ",".join(f"{k}={example[k]}" for k in missing) if example else f"{missing[0]}=..."
        raise TorchgdError(
            f"--scheduler {spec}: {label(module)} needs {', '.join(missing)}, e.g. "
            f"{getattr(module, 'SPEC', module.NAME)}:{example}"
        ) from None
    return module, options


def spec_of(module, options) -> str:
    """The canonical spec of a scheduler, as ``config.json`` keeps it."""
    from . import _compose

    if module in (_compose.SEQUENTIAL, _compose.CHAINED):
        return _compose.spec(options, spec_of)
    parts = []
    for f in dataclasses.fields(options):
        v = getattr(options, f.name)
        parts.append(f"{f.name}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}")
    return f"{getattr(module, 'SPEC', module.NAME)}:{','.join(parts)}"


def short_spec(spec: str) -> str:
    """A spec with only the options away from their defaults (for a title):
    ``onecycle:max_lr=0.3,total_steps=400``."""
    from . import _compose

    if _compose.is_composed(str(spec)):
        return str(spec)
    module, options = parse(spec)
    parts = [
        f"{f.name}={'/'.join(map(str, v)) if isinstance(v, tuple) else v}"
        for f in dataclasses.fields(options)
        if (v := getattr(options, f.name)) != f.default
    ]
    return f"{getattr(module, 'SPEC', module.NAME)}:{','.join(parts)}" if parts else module.NAME


def lr_words(spec: str, lr, every: str) -> str:
    """A scheduled run's lr in words, for its first line and a figure's title: ``lr 0.1
    scheduled by cosine:T_max=50 every epoch``; where the scheduler sets the lr from its own
    options (OneCycleLR's max_lr), that ``--lr`` plays no part; a cycled momentum is said."""
    from . import _compose

    short = short_spec(spec)
    if _compose.is_composed(str(spec)):
        return f"lr {lr} scheduled by {short} every {every}"
    module, options = parse(spec)
    cycles = getattr(options, "cycle_momentum", False) and hasattr(module, "momentum")
    momentum = (
        f"; momentum cycled {options.base_momentum}-{options.max_momentum} by it (in place of "
        "the rule's own)"
        if cycles
        else ""
    )
    peak = getattr(module, "PEAK", None)
    if peak is not None:
        return f"lr set by {short} every {every} from its own options, not --lr {lr}{momentum}"
    return f"lr {lr} scheduled by {short} every {every}{momentum}"


def check(schedule, units: int, spec: str) -> None:
    """Every lr ``schedule`` gives over ``units`` scheduler steps: a finite number >= 0, as
    torch.optim requires of an lr (said before anything runs, not by torch mid-run)."""
    import math

    fits = getattr(schedule.module, "fits", None)
    if fits is not None:
        fits(schedule.options, units)  # OneCycleLR: total_steps >= the steps the run takes
    for t in range(units):
        try:
            lr = schedule.lr_at(t)
        except ArithmeticError as exc:  # 0 ** -1, gamma ** t beyond a float: no lr at all
            raise TorchgdError(
                f"--scheduler {spec} gives no lr after {t} of its steps ({type(exc).__name__}: "
                f"{exc}): a learning rate must be a finite number >= 0"
            ) from None
        if not (math.isfinite(lr) and lr >= 0):
            raise TorchgdError(
                f"--scheduler {spec} gives lr {lr} after {t} of its steps: a learning rate "
                "must be a finite number >= 0"
            )


def make(module, options, base: float, spelling: str):
    """The schedule of ``module`` from the base lr, in one spelling: ``Schedule``, or the
    module's own class where its lr follows the run (ReduceLROnPlateau: the costs)."""
    return getattr(module, "Schedule", Schedule)(module, options, base, spelling)


class Schedule:
    """The lr after ``t`` scheduler steps, in one spelling, from the base lr: ``lr_at(t)``,
    computed once per ``t`` (the recursion from 0, kept), so it is a pure function of ``t``."""

    def __init__(self, module, options, base: float, spelling: str):
        self.module, self.options, self.base = module, options, base
        self.exact = spelling == "torch-exact"
        first = module.torch_exact if self.exact else lambda t, _, b, o: module.textbook(t, b, o)
        self.lrs = [first(0, base, base, options)]  # torch's first step, at construction

    def lr_at(self, t: int) -> float:
        m, o, lrs = self.module, self.options, self.lrs
        while len(lrs) <= t:
            k = len(lrs)
            lrs.append(
                m.torch_exact(k, lrs[-1], self.base, o)
                if self.exact
                else m.textbook(k, self.base, o)
            )
        return lrs[t]

    @property
    def cycles_momentum(self) -> bool:
        """Whether the scheduler sets the momentum too (``cycle_momentum``)."""
        return _cycles(self.module, self.options)

    def momentum_at(self, t: int) -> float:
        """The momentum (SGD's, or Adam's beta1) after ``t`` scheduler steps."""
        return self.module.momentum(t, self.options)

    def torch_scheduler(self, optimizer):
        """torch's own class on ``optimizer`` (the optim path's)."""
        from ._torch import torch_scheduler

        return torch_scheduler(self.module, self.options, optimizer)
