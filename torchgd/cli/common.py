"""The option groups several commands share, each declared once, with its validators and the
reader that turns parsed options into keyword arguments of ``train.plan``.

A group is a parent parser (``parents=[...]``, built without ``--help``) or, where commands take
different parts of it, a function that adds options to a parser.
"""

from __future__ import annotations

import argparse
import functools

from .. import rules
from ..options import SPELLINGS
from .app import error, parent

PATHS = "manual,autograd,optim"
FORMATS = ["png", "svg", "pdf"]


def init_point(text: str) -> dict:
    """``--init``: ``NAME=VALUE[,NAME=VALUE...]`` to a dict of floats (``options.init_point``)."""
    from ..errors import TorchgdError
    from ..options import init_point as parse

    try:
        return parse(text)
    except TorchgdError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def lr_defaults() -> str:
    """Each built-in rule's default lr, from its ``Hyper`` (torch.optim's defaults)."""
    import dataclasses

    out = []
    for name, module in rules.ALL.items():
        lr = next(f.default for f in dataclasses.fields(module.Hyper) if f.name == "lr")
        out.append(f"{name} {lr:g}" + (" as in the lecture" if name == "sgd" else ""))
    return ", ".join(out)


@functools.cache
def problem_names() -> list[str]:
    """The built-in problems' names, read from ``torchgd.problems.PROBLEMS`` without importing
    it (``--help`` must not import torch): the keys of that dict, in its order. Read once a
    process (each command's parser asks; parsing the file took 9 ms a time)."""
    import ast
    from pathlib import Path

    tree = ast.parse((Path(__file__).parents[1] / "problems.py").read_text())
    for node in tree.body:
        target = getattr(node, "target", None) or (getattr(node, "targets", None) or [None])[0]
        if getattr(target, "id", None) == "PROBLEMS":
            return [k.value for k in node.value.keys]
    raise RuntimeError("torchgd/problems.py has no PROBLEMS")


# --lr, as each command takes it: one rate (train), K rates (sweep), either (plot)
LR = {
    "one": dict(
        type=float,
        default=None,
        help=f"learning rate (default: the rule's; {lr_defaults()}, as torch.optim)",
    ),
    "range": dict(
        required=True, metavar="START:STOP:K", help="K learning rates from START to STOP"
    ),
    "one-or-range": dict(
        default=None,
        metavar="LR",
        help="learning rate (default 0.01); sweep: START:STOP:K (default 0.01:0.3:30)",
    ),
}


def add_rule_options(
    p: argparse.ArgumentParser, *, lr: str | None, spelling: bool = True, sgd: bool = True
) -> None:
    """The update rule and its hyperparameters, declared here only: ``--lr`` as ``LR[lr]``
    (None: no --lr), ``--spelling`` (how the hand-written rule is written), and with ``sgd``
    ``--optimizer`` and every rule's options, generated from the fields of the rules'
    ``Hyper`` classes (``torchgd.rules``) with their help; an option not given is None (the
    rule's default)."""
    if lr is not None:
        p.add_argument("--lr", **LR[lr])
    if spelling:
        old_name(p, "--rule", "spelling", choices=list(SPELLINGS))
        p.add_argument(
            "--spelling",
            default="textbook",
            choices=list(SPELLINGS),
            help="how the manual and autograd paths write the rule (--optimizer) by hand: "
            "textbook (the formula as a textbook writes it: SGD's w -= lr * grad, d2l.ai's "
            "Adagrad/RMSprop/Adam) or torch-exact (the torch.optim class's own operations, "
            "bit for bit)",
        )
    if not sgd:
        return
    p.add_argument(
        "--optimizer",
        default="sgd",
        metavar="NAME",
        help=f"the update rule: {' | '.join(rules.ALL)} (default sgd, the lecture's), or your "
        "own as FILE.py:NAME (README: 'Your own rule'); the optim path runs the matching "
        "torch.optim class",
    )
    for f in USER_FIELDS:  # a user's rule's own options (--optimizer FILE.py:NAME)
        flag = "--" + f.name.replace("_", "-")
        kind = "store_true" if f.type in (bool, "bool") else "store"
        extra = {} if kind == "store_true" else {"type": _field_type(f)}
        p.add_argument(flag, action=kind, default=None, help="your rule's option", **extra)
    for name, (f, takers) in rules.options().items():  # from the Hyper fields and their help
        flag = "--" + name.replace("_", "-")
        who = "all" if len(takers) == len(rules.ALL) else ", ".join(takers)
        text = _helps(name, takers)
        if f.type in (bool, "bool"):
            p.add_argument(flag, action="store_true", default=None, help=f"{text} [{who}]")
            continue
        defaults = {rules.ALL[r].Hyper.__dataclass_fields__[name].default for r in takers}
        default = ", ".join(f"{r} {_num(_default(r, name))}" for r in takers)
        if len(defaults) == 1:
            default = _num(defaults.pop())
        p.add_argument(
            flag,
            type=_option_type(name, takers),
            default=None,
            metavar=f.metadata.get("metavar"),
            help=f"{text} [{who}; default {default}]",
        )


def _option_type(name: str, takers: list):
    """How the command line reads a rule option: the field's own parser, else a float; where
    the rules that take it read it differently (``--eps``: a number, Adafactor's a pair), a
    number, or what the other parser makes of anything else (the rule then checks its own)."""
    parsers = []
    for rule in takers:
        parse = rules.ALL[rule].Hyper.__dataclass_fields__[name].metadata.get("parse", float)
        if parse not in parsers:
            parsers.append(parse)
    if len(parsers) == 1:
        return float if parsers[0] is float else _parsed(parsers[0])
    others = [q for q in parsers if q is not float]
    pairs = [
        r for r in takers if rules.ALL[r].Hyper.__dataclass_fields__[name].metadata.get("parse")
    ]

    def number_or(text):
        try:
            return float(text)
        except ValueError:
            pass
        try:
            return others[0](text)
        except ValueError:
            metavar = rules.ALL[pairs[0]].Hyper.__dataclass_fields__[name].metadata.get("metavar")
            raise ValueError(
                f"--{name.replace('_', '-')} takes a number ({metavar} for {', '.join(pairs)}); "
                f"got '{text}'"
            ) from None

    number_or.__name__ = f"{name} value"
    return _parsed(number_or)


def _parsed(parse):
    """A field's own parser as an argparse type: its message, not argparse's "invalid value"."""

    def parsed(text):
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parsed.__name__ = parse.__name__
    return parsed


USER_FIELDS: list = []  # set by ``user_rule_fields`` before the parser is built


def user_rule_fields(argv) -> None:
    """A user's rule named by ``--optimizer FILE.py:NAME`` in ``argv``: its ``Hyper`` fields
    that no built-in rule has become options of this command line too."""
    spec = None
    for i, a in enumerate(argv):
        if a == "--optimizer" and i + 1 < len(argv):
            spec = argv[i + 1]
        elif a.startswith("--optimizer="):
            spec = a.partition("=")[2]
    USER_FIELDS.clear()
    if spec and ":" in spec and spec not in rules.ALL:
        import dataclasses

        rule = rules.load(spec)  # bad: one line, exit 2 (the caller turns it into one)
        known = {"lr", *rules.options()}
        USER_FIELDS.extend(f for f in dataclasses.fields(rule.Hyper) if f.name not in known)


def _field_type(f):
    if f.type in (int, "int"):
        return int
    if f.type in (str, "str"):
        return str
    return float


def _helps(name: str, takers: list) -> str:
    """The option's help: one text, or each rule's where they differ (--weight-decay is L2
    for most rules, decoupled for adamw)."""
    groups: dict = {}
    for rule in takers:
        text = rules.ALL[rule].Hyper.__dataclass_fields__[name].metadata["help"]
        groups.setdefault(text, []).append(rule)
    if len(groups) == 1:
        return next(iter(groups)).replace("%", "%%")
    parts = []
    for text, rs in groups.items():  # "adafactor: Adafactor: eps1,eps2": its name said once
        head = f"{rs[0]}: "
        parts.append(
            f"{', '.join(rs)}: {text[len(head) :] if text.lower().startswith(head) else text}"
        )
    return "; ".join(parts).replace("%", "%%")


def _default(rule: str, name: str):
    return rules.ALL[rule].Hyper.__dataclass_fields__[name].default


def _num(value) -> str:
    if value is None:
        return "None"
    return ",".join(map(_num, value)) if isinstance(value, tuple) else f"{value:g}"


def rule_options(**kwargs) -> argparse.ArgumentParser:
    """``add_rule_options`` as a parent parser."""
    p = parent()
    add_rule_options(p, **kwargs)
    return p


def rule_kwargs(args) -> dict:
    """The rule's options given (all but --lr), as keyword arguments."""
    return {
        name: getattr(args, name)
        for name in [*rules.options(), *(f.name for f in USER_FIELDS)]
        if getattr(args, name, None) is not None
    }


def check_rule(args) -> None:
    """--optimizer, --lr and the rule's options, checked as its torch.optim class checks them
    (a user's FILE.py:NAME rule is loaded and checked when the run is planned)."""
    if args.optimizer in rules.ALL or ":" not in args.optimizer:
        rules.hyper(args.optimizer, args.lr, rule_kwargs(args))


def add_device(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")


def add_json_or_quiet(p: argparse.ArgumentParser) -> None:
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--json", action="store_true", help="print exactly one JSON object on stdout, nothing else"
    )
    out.add_argument("--quiet", action="store_true", help="print nothing but errors")


def run_options() -> argparse.ArgumentParser:
    """What lecture and train share: the paths, where they run, what they print and write."""
    p = parent()
    p.add_argument(
        "--paths", default=PATHS, help=f"comma-separated subset of {PATHS} (default: all three)"
    )
    add_device(p)
    p.add_argument(
        "--dtype",
        default="float64",
        help="float64 (default; the lecture's digits exactly) or float32",
    )
    p.add_argument("--logdir", default="runs", help="parent of the run directory (default runs/)")
    p.add_argument(
        "--name", default=None, help="run directory name (default: <command>-<timestamp>)"
    )
    add_json_or_quiet(p)
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print every epoch (default: 10 to 99 lines: every 10th epoch, every 100th from "
        "1,000 epochs, every 1,000th from 10,000, ...; and the last)",
    )
    _add_logging_options(p)
    p.add_argument("--no-plots", action="store_true", help="draw no figures")
    p.add_argument(
        "--format",
        default="png",
        choices=FORMATS,
        help="figure format (default png; TensorBoard shows PNG only)",
    )
    return p


def _add_logging_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--log-every",
        type=int,
        default=None,
        metavar="K",
        help="TensorBoard: log every K-th step (default: every step for runs under "
        "10,000 steps, else about 5,000 steps in all)",
    )
    p.add_argument(
        "--smoothing",
        type=float,
        default=0.9,
        metavar="BETA",
        help="TensorBoard loss/smoothed: bias-corrected moving average (default 0.9)",
    )
    p.add_argument("--no-tensorboard", action="store_true", help="write no event files")


def check_logging(args) -> None:
    if args.log_every is not None and args.log_every < 1:
        raise error(f"--log-every must be a whole number >= 1, got {args.log_every}")
    if not 0 <= args.smoothing < 1:
        raise error(f"--smoothing must be in [0, 1), got {args.smoothing}")


def problem_options() -> argparse.ArgumentParser:
    """What train and sweep share: problem, data, batching, start, the guard, the history."""
    p = parent()
    p.add_argument(
        "--problem",
        default="linear",
        help=f"{', '.join(problem_names())} (default linear, the lecture's y = w*x), or your own "
        "as FILE.py:NAME",
    )
    p.add_argument(
        "--data",
        default=None,
        help="lecture (default), course, synthetic:N[,d=D,noise=S,seed=K,bias=B], or a file: "
        "CSV (last column y), .npy (2-D, last column y), .npz (x, y), .pt (dict of tensors x, y)",
    )
    p.add_argument("--bias", action="store_true", help="linear model with a bias: x @ w + b")
    _add_batching_options(p)
    p.add_argument(
        "--init",
        type=init_point,
        default=None,
        metavar="NAME=VALUE,...",
        help="starting point, e.g. w=1.0 or x=-5,y=-2 (default: the problem's own, w=1.0 "
        "for the lecture)",
    )
    _add_guard_options(p)
    return p


def old_name(p: argparse.ArgumentParser, flag: str, dest: str, **kwargs) -> None:
    """An option's name before this version: still taken, not in the help, and said on
    stderr (``cli.said_renamed``)."""
    p.add_argument(flag, dest=dest, default=argparse.SUPPRESS, help=argparse.SUPPRESS, **kwargs)


def add_batching(p: argparse.ArgumentParser, default) -> None:
    """``--batching``: which samples each step sees (an lr scheduler is ``--scheduler``)."""
    p.add_argument(
        "--batching",
        default=default,
        metavar="BATCHING",
        help="which samples each step sees: batch (default; full-batch gradient descent) | "
        "sgd (one sample a step) | minibatch:B",
    )
    old_name(p, "--schedule", "batching")


def _add_batching_options(p: argparse.ArgumentParser) -> None:
    add_batching(p, default="batch")
    p.add_argument(
        "--shuffle",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a seeded random order each epoch, or the data's order (--no-shuffle); default: "
        "sgd in order, minibatch:B shuffled",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every shuffle and noise")
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs (default 100); for function problems one step each",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps, for problems without data (same as --epochs there; default 100)",
    )


def _add_guard_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--patience",
        type=int,
        default=5,
        help="divergence guard: stop when the cost over all data grew this many epochs in a "
        "row and rose above its lowest by more than 100 times it (sgd, minibatch) or 1 time "
        "it, i.e. doubled (batch, function problems) (default 5)",
    )
    p.add_argument("--no-guard", action="store_true", help="never stop for divergence")
    p.add_argument(
        "--history",
        choices=["auto", "all", "steps"],
        default="auto",
        help="epochs kept in --json and summary.json: auto (default) keeps all up to 10,001 "
        "and 10,001 evenly spaced beyond (listed in history.epoch); all keeps every one; steps "
        "keeps every epoch and every step (history.steps: loss, parameters, gradient)",
    )


def epochs(args) -> int:
    """--epochs or --steps (the same for function problems), 100 when neither is given."""
    if args.epochs is not None and args.steps is not None:
        raise error("give --epochs or --steps, not both")
    epochs = args.epochs if args.epochs is not None else args.steps
    return 100 if epochs is None else epochs


def add_scheduler(p, where: str) -> None:
    """``--scheduler`` and ``--scheduler-every`` (train, sweep); ``where``: who runs which."""
    from .. import schedulers  # imports no torch

    p.add_argument(
        "--scheduler",
        default=None,
        metavar="NAME:key=value,...",
        help="an lr scheduler with torch's keyword names, e.g. step:step_size=10,gamma=0.5 "
        f"or cosine:T_max=100,eta_min=0.001 ({', '.join(sorted(schedulers.ALL))}; torch's "
        "class names too; milestones as 10/20; A@5@B one after another, A+B both at once; "
        "your own scheduler file as FILE.py:key=value); " + where,
    )
    p.add_argument(
        "--scheduler-every",
        choices=["epoch", "step"],
        default=None,
        help="step the scheduler after every epoch (default) or every step",
    )


def run_kwargs(args, **given) -> dict:
    """The run options this command's parsed options hold (``torchgd.runconfig.from_args``)
    and the rule's options given, as ``train.plan``'s keywords; ``given``: what the command
    sets itself."""
    from ..runconfig import from_args

    return {**from_args(args, **given), **rule_kwargs(args)}


def add_field_options(p: argparse.ArgumentParser) -> None:
    """A flag for each run option of ``torchgd.runconfig.RunConfig`` that ``p`` has none for
    (a new field): ``--its-name``, typed by its default (True/False: ``--x``/``--no-x``), its
    doc as help. The flags written by hand above say more (choices, metavars, checks)."""
    from .. import runconfig

    have = {action.dest for action in p._actions}
    for name, f in runconfig.FIELDS.items():
        if name in have or f.metadata["required"] is None or f.metadata["args"]:
            continue  # given by hand, Python only, or read from another option
        default, flag = f.default, "--" + name.replace("_", "-")
        doc = f.metadata["doc"].replace("``", "").replace("%", "%%")
        shown = "none" if default is None else default
        if isinstance(default, tuple):
            shown = ",".join(map(str, default))
        if isinstance(default, bool) or str(f.type).replace(" ", "") == "bool|None":
            shown = {True: "on", False: "off", None: "unset"}[default]
            p.add_argument(flag, action=argparse.BooleanOptionalAction, default=default,
                           help=f"{doc} (default {shown})")  # fmt: skip
        else:
            kind = type(default) if isinstance(default, (int, float)) else str
            p.add_argument(flag, type=kind, default=default, help=f"{doc} (default {shown})")
