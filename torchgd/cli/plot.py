"""``torchgd plot KIND``: one figure into a file, of a saved run or of a fresh one.

Every option is checked against the kind first (one line, exit 2), then the run is made or
read and the figure drawn.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import TorchgdError
from .app import error
from .common import FORMATS, add_batching, init_point, rule_options

# what each kind takes: a fresh run's settings (also --run), or a figure of its own
RUN_KINDS = {
    "cost": ("problem", "data", "bias", "batching", "lr", "epochs", "init", "noise", "seed"),
    "loss": ("problem", "data", "bias", "batching", "lr", "epochs", "init", "noise", "seed"),
    "trajectory": ("problem", "lr", "epochs", "init", "noise", "seed"),
    "sweep": ("problem", "data", "bias", "batching", "lr", "epochs", "init", "seed"),
    "schedule": (
        "problem",
        "data",
        "bias",
        "batching",
        "lr",
        "epochs",
        "init",
        "noise",
        "seed",
        "scheduler",
        "scheduler_every",
    ),
}
TAKES = {
    "field": ("problem",),
    "batchings": ("data", "lr", "epochs", "seed"),
    "race": ("problem", "lr", "epochs", "steps", "init", "scheduler"),
    **RUN_KINDS,
}
FRESH = ("problem", "data", "bias", "batching", "lr", "epochs", "steps", "init", "noise", "seed",
         "scheduler", "scheduler_every")  # fmt: skip
RACE_PROBLEMS = "elliptic,rosenbrock"
KINDS = ("field", "cost", "loss", "batchings", "trajectory", "sweep", "race", "schedule")
OLD_KINDS = {"schedules": "batchings"}  # renamed in this version: still taken, and said


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "plot",
        parents=[rule_options(lr="one-or-range", spelling=False, sgd=False)],
        help="draw a figure: field, cost, loss, batchings, trajectory, sweep, race, schedule",
        description="Draw one figure into a file. cost, loss, trajectory and sweep draw a saved "
        "run (--run RUN_DIR) or a fresh one made with the options below, whose defaults are "
        "train's (batch, lr 0.01, 100 epochs; a sweep: 0.01:0.3:30); the title says what was "
        "run. field draws a function; batchings runs batch, sgd and minibatch:2 itself; race "
        "runs every update rule on 2-D functions, each at the lr of one shared grid (--lr "
        "START:STOP:K, log-spaced, default 1e-3:10:13) that first reaches the minimum and "
        "stays (else ends lowest), 300 steps. schedule draws a run with an lr scheduler "
        "(--scheduler, as for train) step by step: the lr of every path against the critical "
        "lr, and the loss beneath.",
        epilog="what each kind takes: field --problem; batchings --data --lr --epochs --seed; "
        "cost and loss --run or --problem --data --bias --batching --lr --epochs --init --noise "
        "--seed; trajectory --run or --problem --lr --epochs --init --noise "
        "--seed; sweep --run or --problem --data --bias --batching --lr START:STOP:K --epochs "
        "--init --seed; race --problem P1,P2,... --lr START:STOP:K --epochs or --steps --init "
        "--scheduler; schedule --run or --scheduler --scheduler-every and loss's options",
    )
    p.add_argument(
        "kind",
        choices=[*KINDS, *OLD_KINDS],
        metavar="{" + ",".join(KINDS) + "}",
        help="field (a 2-D function and its gradient), cost (the linear model's cost(w) with "
        "each path's iterates), loss (per epoch), batchings (batch GD vs SGD vs mini-batch), "
        "trajectory (a function problem's iterates), sweep (final loss against lr), race "
        "(every update rule's iterates and loss from the same start, each at its best lr of "
        "the same grid), schedule (a scheduled run's lr per step against the critical lr, and "
        "its loss)",
    )
    p.add_argument(
        "--run",
        default=None,
        metavar="RUN_DIR",
        help="draw the run saved in RUN_DIR (its summary.json) as it was, instead of a fresh one",
    )
    _add_fresh_run_options(p)
    p.add_argument(
        "--format",
        default=None,
        choices=FORMATS,
        help="figure format (default: --out's suffix, else png)",
    )
    p.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="FILE.png, FILE.svg or FILE.pdf, or a directory to write KIND.FORMAT into "
        "(default ./KIND.FORMAT)",
    )
    p.set_defaults(func=run)


def _add_fresh_run_options(p: argparse.ArgumentParser) -> None:
    """The settings of a fresh run; None when not given (train's defaults, checked per kind)."""
    p.add_argument(
        "--problem",
        default=None,
        help="field: a 2-D function (default paraboloid); trajectory: a function problem "
        "(default elliptic); cost, loss, sweep: default linear; race: 2-D function problems, "
        f"comma-separated (default {RACE_PROBLEMS})",
    )
    p.add_argument("--data", default=None, help="as for train (default lecture)")
    p.add_argument(
        "--bias",
        action="store_true",
        default=None,
        help="cost, loss, sweep, schedule: fit y = x.w + b, as for train (cost: contours "
        "over w and b; default: no bias)",
    )
    add_batching(p, default=None)
    p.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs, one step each for function problems (default 100; race 300)",
    )
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        help="race: steps, the same as --epochs for function problems (default 300)",
    )
    p.add_argument(
        "--init",
        type=init_point,
        default=None,
        metavar="NAME=VALUE,...",
        help="starting point, e.g. w=1.0 or x=-3,y=0 (default: the problem's)",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=None,
        metavar="SIGMA",
        help="Gaussian noise (std SIGMA, seeded) on every path's gradient (default 0)",
    )
    p.add_argument(
        "--seed", type=int, default=None, help="seed of every shuffle and noise (default 0)"
    )
    p.add_argument(
        "--scheduler",
        default=None,
        metavar="NAME:key=value,...",
        help="schedule and race: the lr scheduler, as for train (e.g. cosine:T_max=100; race: "
        "each rule's lanes from their own lr)",
    )
    p.add_argument(
        "--scheduler-every",
        default=None,
        choices=["epoch", "step"],
        help="schedule: step the scheduler every epoch (default) or every step",
    )


def run(args) -> int:
    if args.kind in OLD_KINDS:
        new = OLD_KINDS[args.kind]
        print(f"torchgd: plot {args.kind} is now plot {new}; {args.kind} still works in this "
              "version", file=sys.stderr)  # fmt: skip
        args.kind = new
    _check_kind(args)
    out = _out_file(args)
    fresh = _fresh(args)
    from .. import plots

    kind = args.kind
    if kind == "field":
        plots.field(fresh.problem, path=out)
    elif kind == "batchings":
        plots.batchings(
            fresh.data or "lecture", lr=fresh.lr, epochs=fresh.epochs, seed=fresh.seed, path=out
        )
    elif kind == "race":
        plots.race(fresh.problem, lrs=fresh.lrs, steps=fresh.epochs, init=fresh.init,
                   scheduler=fresh.scheduler, path=out)  # fmt: skip
    elif kind == "schedule":
        summary = _saved(args) if args.run is not None else _made(kind, fresh)
        if not summary["config"].get("scheduler"):
            raise error(f"'{args.run}' has no lr scheduler: plot loss draws it")
        plots.schedule(summary, critical_lr=plots.limit(summary), path=out)
    else:
        summary = _saved(args) if args.run is not None else _made(kind, fresh)
        getattr(plots, kind)(summary, path=out)
    print(out)
    return 0


def _flags(names) -> str:
    return ", ".join(f"--{n}" for n in names)


def _check_kind(args) -> None:
    """Refuse --run where no run is drawn, --run with a fresh run's settings, and options the
    kind does not take."""
    kind = args.kind
    given = [n for n in FRESH if getattr(args, n) is not None]
    if args.run is not None and kind not in RUN_KINDS:
        raise error(
            f"plot {kind} draws no saved run: --run does not apply (it takes "
            f"{_flags(TAKES[kind])}, --out, --format)"
        )
    if args.run is not None and given:
        raise error(
            f"{_flags(given)} {'describe' if len(given) > 1 else 'describes'} a fresh run; with "
            "--run the figure shows the saved run as it was: drop one or the other"
        )
    if [n for n in given if n not in TAKES[kind]]:
        raise error(
            f"plot {kind} does not take {_flags(n for n in given if n not in TAKES[kind])} (it "
            f"takes {_flags(TAKES[kind])}{', --run' if kind in RUN_KINDS else ''}, --out, --format)"
        )


def _out_file(args) -> Path:
    """Where the figure goes: a file whose suffix is its format, in a directory that exists."""
    kind, fmt = args.kind, args.format
    out = Path(args.out) if args.out is not None else Path(f"{kind}.{fmt or 'png'}")
    if args.out is not None and (out.is_dir() or args.out.endswith(("/", os.sep))):
        out = out / f"{kind}.{fmt or 'png'}"
    suffix = out.suffix.lstrip(".").lower()
    if suffix not in ("png", "svg", "pdf"):
        raise error(f"--out {args.out}: name the file .png, .svg or .pdf, or give a directory")
    if fmt is not None and fmt != suffix:
        raise error(f"--format {fmt} but --out {args.out} is a .{suffix} file: make them agree")
    if not out.parent.is_dir():
        raise error(f"--out {args.out}: directory '{out.parent}' does not exist")
    return out


def _fresh(args) -> argparse.Namespace:
    """The fresh run's settings, train's defaults, each checked before anything runs."""
    from .. import options
    from ..batching import parse_batching

    kind = args.kind
    if kind == "race":
        return _race(args)
    lr = lrs = None
    if kind == "sweep":
        lrs = options.parse_lrs(args.lr or "0.01:0.3:30")
    else:
        lr = _lr(args.lr)
    epochs = options.check_epochs(100 if args.epochs is None else args.epochs)
    noise = 0.0 if args.noise is None else args.noise
    options.check_guard(noise, 5)
    batching = args.batching or "batch"
    parse_batching(batching)
    data, seed = args.data, args.seed or 0
    problem = args.problem or {"field": "paraboloid", "trajectory": "elliptic"}.get(kind, "linear")
    if kind == "cost" and problem != "linear":
        raise error("plot cost needs a run of the linear model with one weight w")
    if kind == "schedule" and args.run is None and args.scheduler is None:
        raise error("plot schedule draws a run with an lr scheduler: give --scheduler "
                    "NAME:key=value,... (e.g. cosine:T_max=100) or --run RUN_DIR")  # fmt: skip
    return argparse.Namespace(
        problem=problem,
        data=data,
        bias=bool(args.bias),
        batching=batching,
        lr=lr,
        lrs=lrs,
        epochs=epochs,
        init=args.init,
        noise=noise,
        seed=seed,
        scheduler=args.scheduler,
        scheduler_every=args.scheduler_every,
    )


def _race(args) -> argparse.Namespace:
    """plot race's settings: the problems (each a 2-D function), the shared lr grid, the
    steps and the start, each checked before anything runs."""
    from .. import options, plots

    given = RACE_PROBLEMS if args.problem is None else args.problem
    names = [n.strip() for n in given.split(",")]
    if not all(names):
        raise error(f"--problem '{args.problem}': give problems separated by commas, e.g. "
                    f"{RACE_PROBLEMS}")  # fmt: skip
    for name in names:
        plots.race_problem(name)
    text = args.lr or plots.RACE_LRS
    try:
        lrs = options.parse_lrs(text, log=True)
    except TorchgdError:
        raise error(
            f"--lr {text}: plot race takes START:STOP:K, K >= 2 learning rates log-spaced "
            f"from START to STOP, 0 < START < STOP, that every rule shares (default "
            f"{plots.RACE_LRS})"
        ) from None
    if args.epochs is not None and args.steps is not None:
        raise error("give --epochs or --steps, not both (one step an epoch here)")
    flag, steps = ("--steps", args.steps) if args.steps is not None else ("--epochs", args.epochs)
    steps = plots.RACE_STEPS if steps is None else steps
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise error(f"{flag} must be a whole number >= 1, got {steps}")
    return argparse.Namespace(
        problem=names, lrs=lrs, epochs=steps, init=args.init, scheduler=args.scheduler
    )


def _lr(text: str | None) -> float:
    import math

    try:
        lr = 0.01 if text is None else float(text)
    except ValueError:
        raise error(f"--lr must be a number, got '{text}'") from None
    if not math.isfinite(lr) or lr <= 0:
        raise error(f"--lr must be a finite number > 0, got {text}")
    return lr


def _saved(args) -> dict:
    """The summary of the run in --run, which must be of the kind's sort (a sweep or one run)."""
    import json

    summary_file = Path(args.run)
    summary_file = summary_file if summary_file.is_file() else summary_file / "summary.json"
    try:
        summary = json.loads(summary_file.read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot read run summary '{summary_file}': {exc}") from None
    from ..runconfig import current

    if isinstance(summary, dict) and isinstance(summary.get("config"), dict):
        summary["config"], said = current(summary["config"])
        if said:
            print(f"torchgd: {args.run}: {said}", file=sys.stderr)
    if args.kind == "sweep" and "lrs" not in summary:
        raise error(f"'{summary_file}' is not a sweep's summary")
    if args.kind != "sweep" and "paths" not in summary:
        raise error(
            f"'{summary_file}' holds no single run (a lecture run has batch/ "
            "and sgd/ inside: give one of them)"
        )
    return summary


def _made(kind: str, f: argparse.Namespace) -> dict:
    """The summary of a fresh run (a sweep for ``sweep``) with settings ``f``."""
    common = dict(bias=f.bias, batching=f.batching, epochs=f.epochs, init=f.init, seed=f.seed)
    if kind == "sweep":
        from ..sweep import sweep

        return sweep(f.problem, f.data, lrs=f.lrs, **common)
    from ..planning import plan
    from ..train import execute

    # plan's errors, worded for the command line (fit words them for Python)
    scheduled = dict(scheduler=f.scheduler, scheduler_every=f.scheduler_every, history="steps")
    options = {**common, **(scheduled if kind == "schedule" else {})}
    return execute(plan(f.problem, f.data, lr=f.lr, noise=f.noise, **options)).to_json()
