"""RunConfig: every option of a run, its default and what it means, in one place.

``plan(problem, data, **options)`` takes these fields as keywords (its signature and the part
of its docstring that lists them are made from here); ``config.json`` records them and
``plan_from_config`` reads them back (``recorded``); the command line reads them from its parsed
options (``from_args``), and ``train`` has a flag for every one (made from the field where none
is written by hand: ``cli.common.add_field_options``). A new run option is one field here, and
its test; the rule's own options (``lr`` aside) are its ``Hyper``'s fields (``torchgd.rules``),
not run options.

Imports no torch (the command line reads its options before torch is imported).
"""

from __future__ import annotations

import dataclasses
import inspect
import numbers
from dataclasses import dataclass, field

PATH_NAMES = ("manual", "autograd", "optim")  # = tuple(torchgd.paths.PATHS) (tested)


def option(default, doc: str, *, required=True, args=None, record=True):
    """A run option: its ``default``, what it means (``doc``, for plan's docstring);
    ``required``: a ``config.json`` must hold it (False: a run of an earlier version may lack
    it, and gets the default; None: Python only, never recorded); ``args``: how the command line
    gives it, a function of the parsed options (default: the option of the same name);
    ``record``: False where another part records it (a scheduler: ``hooks.of_plan``, as its
    canonical spec)."""
    meta = {"doc": doc, "required": required, "args": args, "record": record}
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class RunConfig:
    """Every run option with its default (``torchgd.plan`` resolves and checks them)."""

    batching: object = option(
        None,
        "which samples each step sees, ``batch`` (None: the default), ``sgd`` or "
        "``minibatch:B`` (``torchgd.batching``; ``schedule=``, its old name, still works in "
        "this version and warns)",
    )
    shuffle: bool | None = option(
        None, "a seeded random order each epoch (None: sgd in data order, minibatch shuffled)"
    )
    seed: int = option(0, "the seed of every shuffle and of the gradient noise")
    optimizer: str = option(
        "sgd",
        "the update rule, ``sgd`` (the lecture's), any other name of ``torchgd.rules.ALL`` "
        "(one per file in torchgd/rules/) or a user's ``FILE.py:NAME``; its options are "
        "keywords too (SGD: momentum, dampening, weight_decay, nesterov, maximize; Adam: betas, "
        "eps, weight_decay, amsgrad, maximize; ...)",
        required=False,
    )
    lr: float | None = option(
        None, "the learning rate (None: the rule's default, 0.01 for SGD as in the lecture)"
    )
    epochs: int = option(100, "epochs (for a problem without data: steps)")
    init: object = option(
        None, "the start over the problem's own: ``{'w': 1.0}`` or ``'w=1.0,b=0'``"
    )
    paths: object = option(
        PATH_NAMES, "which paths run in lockstep: manual, autograd, optim (a tuple or 'a,b')"
    )
    device: str = option("cpu", "cpu, cuda, cuda:N, mps or auto (CUDA where present)")
    dtype: str = option("float64", "float64 (the lecture's digits exactly) or float32")
    spelling: str | None = option(
        None,
        "how the manual and autograd paths write the rule by hand, ``textbook`` (None: the "
        "default) or ``torch-exact`` (``rule=``, its old name, still works and warns)",
    )
    noise: float = option(
        0.0,
        "standard deviation of Gaussian noise added to every path's gradient (the same draw "
        "for every path, seeded by ``(seed, step)``)",
    )
    guard: bool = option(
        True,
        "stop with status ``diverged`` on a non-finite loss or parameter, or a loss that grew "
        "``patience`` epochs in a row",
        args=lambda a: not a.no_guard,
    )
    patience: int = option(5, "the guard's epochs of growth in a row")
    bias: bool = option(False, "the linear model with a bias, ``x @ w + b``")
    shadow: bool | None = option(
        None,
        "for float32 runs, also step a float64 manual path on the same data and report the "
        "distance to it (None: for data of at most ``planning.SHADOW_MAX_VALUES`` values)",
        required=False,
    )
    compile: bool = option(
        False,
        "the manual path sums a batch bigger than one chunk with one kernel compiled by "
        "``torch.compile`` (``torchgd.fused``), compiled before anything is written",
        required=False,
    )
    history: str = option(
        "auto",
        "the epochs the result keeps: ``auto``, every one up to 10,001 epochs and 10,001 "
        "evenly spaced beyond (listed in ``history['epoch']``); ``all``; ``steps``, every "
        "epoch and every step (``history['steps']``: step, epoch, the batch's loss before the "
        "update, the parameters after it, the gradient used)",
        required=False,
    )
    scheduler: object = option(
        None,
        "an lr scheduler, ``'cosine:T_max=100'`` (``torchgd.schedulers``), its ``Options``, or "
        "a user's scheduler file ``'FILE.py:key=value'``",
        required=False,
        record=False,
    )
    scheduler_every: str | None = option(
        None, "step the scheduler every ``epoch`` (None: the default) or every ``step``",
        required=False, record=False,
    )  # fmt: skip
    hyper_at: object = option(
        None,
        "hyperparameters that change during the run, a function ``hyper_at(step, epoch, hp) "
        "-> Hyper`` called before every step's update with the plan's ``hp`` (a step decay: "
        "``dataclasses.replace(hp, lr=hp.lr * 0.5 ** (epoch // 10))``); every path, the float64 "
        "shadow and torch.optim's param_groups use what it gives, and the lr of every step is "
        "recorded. It must be a pure function of its arguments (a resumed run calls it again); "
        "None: the plan's ``hp`` throughout, at no cost per step",
        required=None,
    )

    def __post_init__(self):
        """The options whose type says what they mean: True/False ones, and whole numbers."""
        from .errors import TorchgdError

        for name in ("guard", "bias", "compile", "shuffle", "shadow"):
            value = getattr(self, name)
            if not (isinstance(value, bool) or (value is None and FIELDS[name].default is None)):
                none = " or None" if FIELDS[name].default is None else ""
                raise TorchgdError(f"{name} must be True or False{none}, got {value!r}")
        seed = self.seed
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral) or seed < 0:
            raise TorchgdError(f"--seed must be a whole number >= 0, got {self.seed!r}")
        object.__setattr__(self, "seed", int(self.seed))  # numpy's int64 too, as a plain int


FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}
RENAMED = {  # keywords renamed in this version, still taken: old: (new, its default, why)
    "schedule": ("batching", "batch", "an lr schedule is scheduler="),
    "rule": ("spelling", "textbook", "the rule itself is optimizer="),
}


def split(options: dict) -> tuple[RunConfig, dict]:
    """``plan``'s keywords as the run's options and the rule's (every other keyword); an old
    name of ``RENAMED`` is taken with a warning at the caller's line."""
    from .options import renamed

    rest = {k: v for k, v in options.items() if k not in FIELDS}
    run = {k: v for k, v in options.items() if k in FIELDS}
    for old, (new, default, why) in RENAMED.items():
        run[new] = renamed(rest, old, new, run.get(new), default, why)
    return RunConfig(**run), rest


def current(config: dict) -> tuple[dict, str | None]:
    """A ``config.json`` of the version before the renames read with today's keys, and what
    to say of it (None: nothing was renamed)."""
    old = [k for k in RENAMED if k in config and RENAMED[k][0] not in config]
    if not old:
        return config, None
    config = {RENAMED[k][0] if k in old else k: v for k, v in config.items()}  # in its place
    said = ", ".join(f'"{k}" (now "{RENAMED[k][0]}")' for k in old)
    return config, f"its config.json says {said}, a key of an earlier version: read as the new"


def recorded(config: dict) -> dict:
    """The options a run's ``config.json`` recorded, as ``plan``'s keywords (KeyError where a
    required one is missing); an old name of ``RENAMED`` is read as the new one."""
    config, _ = current(config)
    out = {}
    for name, f in FIELDS.items():
        need = f.metadata["required"]
        if need:
            out[name] = config[name]
        elif need is False:
            out[name] = config.get(name, f.default)
    return out


def from_args(args, **given) -> dict:
    """The run options a command's parsed options hold (those its parser has), as ``plan``'s
    keywords; ``given``: what the command sets itself."""
    out = {}
    for name, f in FIELDS.items():
        read = f.metadata["args"]
        if name in given or f.metadata["required"] is None:
            continue
        try:
            value = read(args) if read else getattr(args, name)
        except AttributeError:  # an option this command does not have
            continue
        out[name] = value
    return {**out, **given}


def signature(before: list, after: list) -> inspect.Signature:
    """``plan``'s signature: ``before``, every run option as a keyword with its default,
    ``after``."""
    kw = inspect.Parameter.KEYWORD_ONLY
    options = [inspect.Parameter(n, kw, default=f.default) for n, f in FIELDS.items()]
    return inspect.Signature([*before, *options, *after])


def describe() -> str:
    """The run options, one paragraph each, for plan's docstring."""
    import textwrap

    paragraphs = [f"``{n}`` (default {f.default!r}): {f.metadata['doc']}." for n, f in
                  FIELDS.items()]  # fmt: skip
    wrap = lambda text: textwrap.fill(text, 92, subsequent_indent="    ")  # noqa: E731
    return "\n\n    ".join(wrap(text) for text in paragraphs)  # under plan's "    {options}"
