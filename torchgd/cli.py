"""The ``torchgd`` command line. Heavy modules (torch, matplotlib, tensorboard) load lazily,
inside the command that needs them, so ``torchgd --help`` answers at once.

Exit codes: 0 done, 1 a check failed, 2 bad input (one line on stderr), 3 a run diverged,
74 a file could not be written (disk full, too large, no permission), 130 interrupted (Ctrl-C),
141 the reader of stdout went away (``| head``).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

PATHS = "manual,autograd,optim"
EXIT_IO = 74  # sysexits.h EX_IOERR: a file could not be written (disk full, too large, no access)


class Formatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the text already says it."""

    def _get_help_string(self, action):
        text = action.help or ""
        default = action.default
        if (
            "default" in text
            or any(default is v for v in (None, False, argparse.SUPPRESS))
            or not action.option_strings
        ):
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) and exit with code 2."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", Formatter)
        super().__init__(*args, **kwargs)

    def error(self, message):
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


def _init(text: str) -> dict:
    out = {}
    for part in filter(None, text.split(",")):
        name, eq, value = part.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            eq = ""
        if not eq or not name.strip():
            raise argparse.ArgumentTypeError(
                f"'{text}' is not NAME=VALUE[,NAME=VALUE...] (e.g. w=1.0 or x=-5,y=-2)"
            )
    return out


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--paths", default=PATHS, help=f"comma-separated subset of {PATHS} (default: all three)"
    )
    p.add_argument(
        "--rule",
        default="textbook",
        choices=["textbook", "torch-exact"],
        help="hand-written rule of the manual and autograd paths: textbook "
        "(w -= lr * grad) or torch-exact (torch.optim.SGD's operations)",
    )
    p.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    p.add_argument(
        "--dtype",
        default="float64",
        help="float64 (default; the lecture's digits exactly) or float32",
    )
    p.add_argument("--logdir", default="runs", help="parent of the run directory (default runs/)")
    p.add_argument(
        "--name", default=None, help="run directory name (default: <command>-<timestamp>)"
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--json", action="store_true", help="print exactly one JSON object on stdout, nothing else"
    )
    out.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="print every epoch (default: 10 to 99 lines: every 10th epoch, every 100th from "
        "1,000 epochs, every 1,000th from 10,000, ...; and the last)",
    )
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
    p.add_argument("--no-plots", action="store_true", help="draw no figures")
    p.add_argument(
        "--format",
        default="png",
        choices=["png", "svg", "pdf"],
        help="figure format (default png; TensorBoard shows PNG only)",
    )


def _add_problem_options(p: argparse.ArgumentParser) -> None:
    """What train and sweep share: problem, data, schedule, start, SGD options, the guard."""
    p.add_argument(
        "--problem",
        default="linear",
        help="linear (default; the lecture's y = w*x), paraboloid, elliptic, saddle, "
        "rosenbrock, square, xcos, or FILE.py:NAME",
    )
    p.add_argument(
        "--data",
        default="lecture",
        help="lecture (default), course, synthetic:N[,d=D,noise=S,seed=K,bias=B], or a file: "
        "CSV (last column y), .npy (2-D, last column y), .npz (x, y), .pt (dict of tensors x, y)",
    )
    p.add_argument("--bias", action="store_true", help="linear model with a bias: x @ w + b")
    p.add_argument("--schedule", default="batch", help="batch (default) | sgd | minibatch:B")
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
    p.add_argument(
        "--init",
        type=_init,
        default=None,
        metavar="NAME=VALUE,...",
        help="starting point, e.g. w=1.0 or x=-5,y=-2 (default: the problem's own, w=1.0 "
        "for the lecture)",
    )
    p.add_argument(
        "--momentum", type=float, default=0.0, help="SGD momentum mu: b = mu*b + (1-tau)*grad"
    )
    p.add_argument("--dampening", type=float, default=0.0, help="SGD dampening tau")
    p.add_argument(
        "--weight-decay", type=float, default=0.0, help="L2 penalty lambda: grad += lambda*w"
    )
    p.add_argument(
        "--nesterov", action="store_true", help="Nesterov momentum: step along grad + mu*b"
    )
    p.add_argument("--maximize", action="store_true", help="ascend: w += lr * grad")
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
        choices=["auto", "all"],
        default="auto",
        help="epochs kept in --json and summary.json: auto (default) keeps all up to 10,001 "
        "and 10,001 evenly spaced beyond (listed in history.epoch); all keeps every one",
    )


def build_parser() -> Parser:
    parser = Parser(
        prog="torchgd",
        description="Gradient descent made exact, visible and verifiable: the lecture's "
        "model trained by three paths in lockstep (manual formula, autograd, "
        "torch.optim.SGD), every step compared.",
        epilog="exit codes: 0 ok, 1 check failed, 2 bad input, 3 diverged, 74 cannot write a "
        "file (disk full, no permission), 130 interrupted, 141 stdout closed",
    )
    parser.add_argument("--version", action="version", version="torchgd 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    lec = sub.add_parser(
        "lecture",
        help="the lecture: batch GD and per-sample SGD, three paths",
        description="Run the lecture's batch gradient descent and its "
        "per-sample SGD (lr 0.01, 100 epochs, w0 = 1.0) through "
        "all paths, print the lecture's lines and the agreement.",
    )
    lec.add_argument(
        "--data",
        default="lecture",
        help="lecture (default), course, or any data train takes with one feature",
    )
    _add_run_options(lec)
    lec.set_defaults(func=cmd_lecture)

    tr = sub.add_parser(
        "train",
        help="train any problem with any schedule and options",
        description="Train by the selected paths in lockstep and compare them at every step.",
    )
    tr.add_argument("--lr", type=float, default=0.01, help="learning rate (default 0.01)")
    _add_problem_options(tr)
    tr.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="K",
        help="save a checkpoint every K epochs (always on Ctrl-C)",
    )
    tr.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted run from its checkpoint, bit for bit",
    )
    tr.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="add Gaussian noise (std SIGMA, seeded) to every path's gradient",
    )
    tr.add_argument(
        "--distributed",
        action="store_true",
        help="run as one of several processes started by torchrun: each works on its shard of "
        "the data, gradients are all-reduced, rank 0 writes (gloo on CPU, NCCL on CUDA)",
    )
    tr.add_argument(
        "--shadow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="float32 runs: also step a float64 manual path on the same data and report the "
        "distance (default: for data of at most 1,000,000 values)",
    )
    tr.add_argument(
        "--compile",
        action="store_true",
        help="the manual path sums each batch bigger than 524,288 rows in one loop compiled by "
        "torch.compile (needs a C++ compiler on CPU; compiling takes seconds before the run, "
        "fewer once inductor has cached it)",
    )
    _add_run_options(tr)
    tr.set_defaults(func=cmd_train)

    sw = sub.add_parser(
        "sweep",
        help="K learning rates at once, against the theory",
        description="Run K learning rates as one vectorized run of the manual "
        "path; print final loss, status, measured and predicted "
        "rate per lr, and the critical lr.",
    )
    sw.add_argument(
        "--lr", required=True, metavar="START:STOP:K", help="K learning rates from START to STOP"
    )
    sw.add_argument("--log", action="store_true", help="log-spaced learning rates")
    _add_problem_options(sw)
    sw.add_argument("--device", default="auto", help="auto | cpu | cuda | cuda:N | mps")
    sw.add_argument("--dtype", default="float64", help="float64 or float32")
    sw.add_argument("--logdir", default="runs", help="parent of the run directory")
    sw.add_argument("--name", default=None, help="run directory name (default: sweep-<timestamp>)")
    sw.add_argument("--no-plots", action="store_true", help="draw no figure")
    sw.add_argument("--format", default="png", choices=["png", "svg", "pdf"], help="figure format")
    swo = sw.add_mutually_exclusive_group()
    swo.add_argument(
        "--json", action="store_true", help="print exactly one JSON object on stdout, nothing else"
    )
    swo.add_argument("--quiet", action="store_true", help="print nothing but errors")
    sw.set_defaults(func=cmd_sweep)

    pl = sub.add_parser(
        "plot",
        help="draw a figure: field, cost, loss, schedules, trajectory, sweep",
        description="Draw one figure into a file. cost, loss, trajectory and sweep draw a saved "
        "run (--run RUN_DIR) or a fresh one made with the options below, whose defaults are "
        "train's (batch, lr 0.01, 100 epochs; a sweep: 0.01:0.3:30); the title says what was "
        "run. field draws a function; schedules runs batch, sgd and minibatch:2 itself.",
        epilog="what each kind takes: field --problem; schedules --data --lr --epochs --seed; "
        "cost and loss --run or --problem --data --schedule --lr --epochs --init --noise --seed; "
        "trajectory --run or --problem --lr --epochs --init --noise --seed; sweep --run or "
        "--problem --data --schedule --lr START:STOP:K --epochs --init --seed",
    )
    pl.add_argument(
        "kind",
        choices=["field", "cost", "loss", "schedules", "trajectory", "sweep"],
        help="field (a 2-D function and its gradient), cost (the linear model's cost(w) with "
        "each path's iterates), loss (per epoch), schedules (batch GD vs SGD vs mini-batch), "
        "trajectory (a function problem's iterates), sweep (final loss against lr)",
    )
    pl.add_argument(
        "--run",
        default=None,
        metavar="RUN_DIR",
        help="draw the run saved in RUN_DIR (its summary.json) as it was, instead of a fresh one",
    )
    pl.add_argument(
        "--problem",
        default=None,
        help="field: a 2-D function (default paraboloid); trajectory: a function problem "
        "(default elliptic); cost, loss, sweep: default linear",
    )
    pl.add_argument("--data", default=None, help="as for train (default lecture)")
    pl.add_argument("--schedule", default=None, help="batch (default) | sgd | minibatch:B")
    pl.add_argument(
        "--lr",
        default=None,
        metavar="LR",
        help="learning rate (default 0.01); sweep: START:STOP:K (default 0.01:0.3:30)",
    )
    pl.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="epochs, one step each for function problems (default 100)",
    )
    pl.add_argument(
        "--init",
        type=_init,
        default=None,
        metavar="NAME=VALUE,...",
        help="starting point, e.g. w=1.0 or x=-3,y=0 (default: the problem's)",
    )
    pl.add_argument(
        "--noise",
        type=float,
        default=None,
        metavar="SIGMA",
        help="Gaussian noise (std SIGMA, seeded) on every path's gradient (default 0)",
    )
    pl.add_argument(
        "--seed", type=int, default=None, help="seed of every shuffle and noise (default 0)"
    )
    pl.add_argument(
        "--format",
        default=None,
        choices=["png", "svg", "pdf"],
        help="figure format (default: --out's suffix, else png)",
    )
    pl.add_argument(
        "--out",
        default=None,
        metavar="FILE",
        help="FILE.png, FILE.svg or FILE.pdf, or a directory to write KIND.FORMAT into "
        "(default ./KIND.FORMAT)",
    )
    pl.set_defaults(func=cmd_plot)

    tb = sub.add_parser(
        "tb",
        help="start TensorBoard on runs/ at 127.0.0.1",
        description="Start TensorBoard on LOGDIR, bound to 127.0.0.1, and print "
        "its address. Ctrl-C stops it.",
    )
    tb.add_argument("logdir", nargs="?", default="runs", help="the log directory (default runs)")
    tb.add_argument("--port", type=int, default=6006, help="port (default 6006; 0 = any free)")
    tb.set_defaults(func=cmd_tb)

    ck = sub.add_parser(
        "check",
        help="check a gradient formula against autograd and central differences",
        description="Compare the analytic gradient with autograd and with "
        "central differences at seeded random and special points, "
        "and run gradcheck/gradgradcheck on the formula. Exit code "
        "1 when a check fails.",
    )
    ck.add_argument(
        "--problem",
        default="paraboloid",
        help="a built-in problem or FILE.py:NAME (default paraboloid)",
    )
    ck.add_argument("--data", default="lecture", help="data for the linear problem")
    ck.add_argument("--points", type=int, default=16, help="random points (default 16)")
    ck.add_argument("--seed", type=int, default=0, help="seed of the random points")
    ck.add_argument(
        "--h",
        default="1e-4",
        help="central-difference step (default 1e-4, the lecture's) or 'auto'",
    )
    ck.add_argument("--dtype", default="float64", help="float64 or float32")
    ck.add_argument(
        "--compile",
        action="store_true",
        help="also check the gradient of the kernel train --compile uses (data above one chunk)",
    )
    ck.add_argument("--json", action="store_true", help="print one JSON object")
    ck.set_defaults(func=cmd_check)

    be = sub.add_parser(
        "bench",
        help="measure speed as ratios in one run",
        description="Numerical-gradient speed-up over the lecture's loop, "
        "per-sample SGD steps/s of each path against pure Python, TensorBoard overhead, sweep "
        "speed-up, big-N epoch times against torch.dot, peak memory, start-up times. Writes "
        "bench.json and bench.txt to the run directory.",
    )
    be.add_argument("--quick", action="store_true", help="CI-sized runs")
    be.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="big N: also time the manual path with train --compile (default: in full runs)",
    )
    be.add_argument(
        "--only",
        default=None,
        help="comma-separated sections: numerical,sgd,logging,sweep,big_n,memory,startup",
    )
    be.add_argument("--big-n", type=int, default=None, help="samples for big_n (default 10M)")
    be.add_argument("--memory-n", type=int, default=None, help="samples for memory (default 100M)")
    be.add_argument("--json", action="store_true", help="print one JSON object")
    be.add_argument("--logdir", default="runs", help="parent of the run directory")
    be.add_argument("--name", default=None, help="run directory name (default: bench-<timestamp>)")
    be.set_defaults(func=cmd_bench)
    return parser


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _run_kwargs(args, epochs: int) -> dict:
    """The options train and sweep share: schedule, seed, start, SGD options, the guard."""
    return dict(
        schedule=args.schedule,
        shuffle=args.shuffle,
        seed=args.seed,
        epochs=epochs,
        init=args.init,
        momentum=args.momentum,
        dampening=args.dampening,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        maximize=args.maximize,
        guard=not args.no_guard,
        patience=args.patience,
        bias=args.bias,
        history=args.history,
    )


def _plan_kwargs(args) -> dict:
    return dict(paths=args.paths, device=args.device, dtype=args.dtype, rule=args.rule)


LECTURE_HEADERS = {
    "batch": "Gradient descent (batch): w = w - lr * 1/N sum 2*x_n*(x_n*w - y_n), one step per "
    "epoch; loss is the cost before the update",
    "sgd": "Stochastic gradient descent (sgd): w = w - lr * 2*x*(x*w - y), one step per sample; "
    "loss is the last sample's, after its update",
}


def _check_logging(args) -> None:
    if args.log_every is not None and args.log_every < 1:
        raise _error(f"--log-every must be a whole number >= 1, got {args.log_every}")
    if not 0 <= args.smoothing < 1:
        raise _error(f"--smoothing must be in [0, 1), got {args.smoothing}")


def _run(plan, args, run_dir, header=None, resume=None, checkpoint_every=None, group=None):
    """Execute one plan into ``run_dir``: config first, the console, then the summary.

    ``checkpoint_every`` (train): a checkpoint every K epochs (0: only on Ctrl-C); None: none.
    """
    from . import runs, train
    from .callbacks.console import Console, agreement_table
    from .callbacks.progress import Progress

    if resume is None:
        args.trial = Path(os.path.relpath(run_dir, args.logdir)).as_posix()
        options = {
            "log_every": args.log_every,
            "smoothing": args.smoothing,
            "checkpoint_every": checkpoint_every,
            "trial": args.trial,  # the run's name in TensorBoard's HParams tab
        }
        if group is not None:
            options["distributed"] = group.info()
        runs.write_json(run_dir / "config.json", {**plan.config, "run_options": options})
    human = not (args.json or args.quiet)
    callbacks, progress = [], None
    if human:
        progress = Progress(plan.epochs)
        callbacks.append(progress)
    if not args.no_tensorboard:
        from .callbacks.tensorboard import TensorBoard

        n = len(plan.dataset) if plan.dataset is not None else 1
        total = plan.epochs * (plan.schedule.steps_per_epoch(n) if plan.dataset else 1)
        callbacks.append(
            TensorBoard(
                run_dir,
                lr=plan.hp.lr,
                total_steps=total,
                log_every=args.log_every,
                smoothing=args.smoothing,
                trial=args.trial,
            )
        )
    if human:
        from .callbacks.console import describe

        line = header or describe(plan.config, plan.dataset)
        if resume is not None:
            at = resume["position"]
            line = line.replace("Training ", "Resuming ", 1) + (
                f"; from its checkpoint at epoch {at['epoch']}, step {at['step']}"
            )
        print(line)
        print(
            f"  (lines show the {plan.names[0]} path; the table compares {', '.join(plan.names)})"
        )
        every = 1 if args.verbose else None
        callbacks.append(
            Console(
                plan.problem,
                plan.names[0],
                plan.epochs,
                every=every,
                progress=progress,
                resumed=resume is not None,
            )
        )
    checkpointer = None
    if checkpoint_every is not None:
        checkpointer = train.Checkpointer(run_dir, checkpoint_every)
    result = train.execute(plan, callbacks, resume=resume, checkpoint=checkpointer, group=group)
    summary = {**result.to_json(), "run_dir": str(run_dir)}
    runs.write_json(run_dir / "summary.json", summary)
    if human:
        print(agreement_table(result))
    if not args.no_plots:  # after the summary: Ctrl-C while drawing loses no result
        from .callbacks.figures import draw

        draw(_drawer(args), summary, run_dir, args.format, str(run_dir / "compare"), plan.dataset)
    return result, summary


def _drawer(args):
    """The command's figure drawer (``torchgd.drawing``): started as early as possible, so
    that it imports matplotlib and draws while this process imports torch and trains."""
    if getattr(args, "drawer", None) is None:
        from .drawing import Drawer

        args.drawer = Drawer()
    return args.drawer


def _figures_done(args) -> None:
    """Wait for every figure asked for; show the PNGs in TensorBoard's Images tab, each group
    in its TensorBoard run."""
    drawer = getattr(args, "drawer", None)
    if drawer is None:
        return
    groups = drawer.wait()
    if not args.no_tensorboard and args.format == "png":
        from .callbacks.tensorboard import write_figures

        for logdir, figures in groups.items():
            if logdir is not None:
                write_figures(logdir, figures)


def _finish(results, run_dir, args) -> int:
    if any(r.status == "interrupted" for r in results):
        _stderr(f"torchgd: interrupted; everything up to the interrupt is in {run_dir}")
        return 130
    for r in results:
        if r.status == "diverged":
            from .train import divergence_message

            _stderr(
                f"torchgd: {divergence_message(r.diverged, r.config['lr'])}; "
                f"the run is in {run_dir}"
            )
            return 3
    if not (args.json or args.quiet):
        print(f"Run directory: {run_dir}")
    return 0


def cmd_lecture(args) -> int:
    from . import options

    options.check_dtype_name(args.dtype)
    _check_logging(args)
    if not args.no_plots:  # the figures that need no run, drawn while torch imports
        drawer, early = _drawer(args), {}
        for kind, kw in (("field", {}), ("schedules", {"data": args.data, "epochs": 30})):
            early[kind] = drawer.scratch() / f"{kind}.{args.format}"
            drawer.draw(kind, early[kind], **kw)
    from . import runs, train

    plans = {
        s: train.plan(
            "linear",
            args.data,
            schedule=s,
            lr=0.01,
            epochs=100,
            init={"w": 1.0},
            **_plan_kwargs(args),
        )
        for s in ("batch", "sgd")
    }
    run_dir = runs.new_run_dir(args.logdir, args.name, "lecture")
    summary, results = {"run_dir": str(run_dir)}, []
    try:  # Ctrl-C anywhere (a part, its figures, between parts): the summary of what finished
        for schedule, plan in plans.items():
            sub = run_dir / schedule
            sub.mkdir()
            result, summary[schedule] = _run(plan, args, sub, LECTURE_HEADERS[schedule])
            results.append(result)
            if result.status != "completed":
                break
            if not (args.json or args.quiet):
                print()
        if not args.no_plots:
            for scratch in early.values():
                args.drawer.place(scratch, run_dir / scratch.name, str(run_dir / "figures"))
            _figures_done(args)
    finally:
        for part in plans:  # a part whose summary was written just before an interrupt
            written = run_dir / part / "summary.json"
            if part not in summary and written.exists():
                import json

                summary[part] = json.loads(written.read_text())
        runs.write_json(run_dir / "summary.json", summary)
    if args.json:
        print(runs.dumps(summary))
    return _finish(results, run_dir, args)


def _resume(args) -> int:
    import json
    from pathlib import Path

    from . import checkpoints, runs, train

    run_dir = Path(args.resume)
    _refuse_changes(args)
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise _error(f"cannot resume '{run_dir}': no readable config.json ({exc})") from None
    finished = _finished(run_dir)
    if finished is not None:
        if args.json:
            print(runs.dumps(finished))
        elif not args.quiet:
            print(
                f"{run_dir} has already finished ({finished['status']} after "
                f"{finished.get('epochs')} epochs); nothing to resume"
            )
        return 0
    state = checkpoints.load(run_dir / checkpoints.NAME)
    group = _group(args, saved.get("device", "cpu"))
    if group is not None:  # rank r continues on its own device (cuda:r; the cpu stays the cpu)
        saved = {**saved, "device": group.device}
    _compiling(saved.get("compile", False) and (group is None or group.rank == 0), args)
    plan = train.plan_from_config(saved, rows=_rows(group))
    if {"compile": False, **state["config"], "device": None} != {**plan.config, "device": None}:
        raise _error(f"the checkpoint in '{run_dir}' does not belong to its config.json")
    if group is not None and group.rank != 0:  # the other ranks compute; rank 0 writes
        return _status(train.execute(plan, [], resume=state, group=group))
    _compile_note(plan, args)
    opts = saved.get("run_options", {})
    args.log_every, args.smoothing = opts.get("log_every"), opts.get("smoothing", 0.9)
    args.trial = opts.get("trial", run_dir.name)
    every = opts.get("checkpoint_every") or 0
    result, summary = _run(plan, args, run_dir, resume=state, checkpoint_every=every, group=group)
    _figures_done(args)
    if args.json:
        print(runs.dumps(summary))
    return _finish([result], run_dir, args)


# what --resume may be given besides the run: how to show it, and how to run it
RESUME_OPTIONS = {"resume", "json", "quiet", "verbose", "no_plots", "no_tensorboard", "format"}
RESUME_OPTIONS |= {"distributed", "command", "func"}


def _refuse_changes(args) -> None:
    """--resume continues a run as its config.json says: an option that would change it is
    refused (found by parsing the command line again with every default suppressed, so that
    only the options actually given appear)."""
    parser = build_parser()
    train_parser = parser._subparsers._group_actions[0].choices["train"]
    for action in train_parser._actions:
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(args.argv))
    changed = sorted(set(given) - RESUME_OPTIONS)
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise _error(
            f"--resume continues the run exactly as its config.json says; {flags} would change "
            "it (start a new run instead)"
        )


def _finished(run_dir) -> dict | None:
    """The summary of a run that has ended (completed or diverged), or None."""
    import json

    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    ended = isinstance(summary, dict) and summary.get("status") not in (None, "interrupted")
    return summary if ended else None


def _group(args, device: str):
    """This process's place among several (``--distributed``), or None."""
    if not args.distributed:
        return None
    from . import distributed

    return distributed.init(device)


def _status(result) -> int:
    """The exit code of a rank that does not report: the same as rank 0's."""
    return {"interrupted": 130, "diverged": 3}.get(result.status, 0)


def cmd_train(args) -> int:
    try:
        return _train(args)
    finally:
        if args.distributed:
            from . import distributed

            distributed.close()


def _train(args) -> int:
    from . import options, schedules

    _check_logging(args)
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise _error(f"--checkpoint-every must be a whole number >= 0, got {args.checkpoint_every}")
    if args.resume:
        return _resume(args)
    if args.epochs is not None and args.steps is not None:
        raise _error("give --epochs or --steps, not both")
    epochs = args.epochs if args.epochs is not None else args.steps
    epochs = 100 if epochs is None else epochs
    hyper = dict(
        lr=args.lr,
        momentum=args.momentum,
        dampening=args.dampening,
        weight_decay=args.weight_decay,
        nesterov=args.nesterov,
        maximize=args.maximize,
    )
    options.check_dtype_name(args.dtype)
    options.SGD(**hyper)
    options.check_epochs(epochs)
    schedules.parse(args.schedule)
    if not args.no_plots and not args.distributed:
        _drawer(args)  # imports matplotlib while this process imports torch
    from . import problems, runs, train

    if args.distributed and not getattr(problems.get(args.problem), "needs_data", False):
        raise _error(
            f"--distributed splits the data across processes; problem '{args.problem}' has none"
        )
    group = _group(args, args.device)
    if group is not None:
        args.device = group.device  # cuda:LOCAL_RANK on CUDA
    _compiling(args.compile and (group is None or group.rank == 0), args)
    plan = train.plan(
        args.problem,
        args.data,
        lr=args.lr,
        noise=args.noise,
        shadow=args.shadow,
        compile=args.compile,
        rows=_rows(group),
        **_run_kwargs(args, epochs),
        **_plan_kwargs(args),
    )
    if group is not None and group.rank != 0:  # the other ranks compute; rank 0 writes
        return _status(train.execute(plan, [], group=group))
    _compile_note(plan, args)
    run_dir = runs.new_run_dir(args.logdir, args.name, "train")
    result, summary = _run(plan, args, run_dir, checkpoint_every=args.checkpoint_every, group=group)
    _figures_done(args)
    if args.json:
        print(runs.dumps(summary))
    return _finish([result], run_dir, args)


def _rows(group):
    """The rows a rank keeps: every rank but 0 only its shard (rank 0 writes the figures and
    the report, which use the whole data)."""
    return group.shard if group is not None and group.rank != 0 else None


def _compiling(compile: bool, args) -> None:
    """Said before the plan is made, since compiling can take a while."""
    if compile and not (args.json or args.quiet):
        print("--compile: compiling the manual path's batch sum with torch.compile ...", flush=True)


def _compile_note(plan, args) -> None:
    """One line on what --compile did, for people (not with --json or --quiet)."""
    if not plan.config.get("compile") or args.json or args.quiet:
        return
    from .fused import nothing_to_compile

    if plan.fused is None:
        print(nothing_to_compile())
    else:
        print(
            "--compile: the manual path sums each batch in one loop compiled by torch.compile "
            f"({plan.fused.seconds:.1f} s to compile or load from the cache)"
        )


def cmd_check(args) -> int:
    from . import options

    options.check_dtype_name(args.dtype)
    h = args.h
    if h != "auto":
        try:
            h = float(h)
        except ValueError:
            raise _error(f"--h must be a positive number or 'auto', got '{args.h}'") from None
    from . import check, runs

    report = check.check_gradients(
        args.problem,
        points=args.points,
        seed=args.seed,
        h=h,
        dtype=args.dtype,
        data=args.data,
        compile=args.compile,
    )
    print(runs.dumps(report) if args.json else check.format_report(report))
    return 0 if report["ok"] else 1


def cmd_bench(args) -> int:
    from . import bench, runs

    only = bench.SECTIONS
    if args.only is not None:
        only = tuple(s.strip() for s in args.only.split(",") if s.strip())
        bad = [s for s in only if s not in bench.SECTIONS]
        if bad or not only:
            raise _error(
                f"unknown bench section '{bad[0] if bad else args.only}': choose from "
                f"{','.join(bench.SECTIONS)}"
            )
    for flag, value in (("--big-n", args.big_n), ("--memory-n", args.memory_n)):
        if value is not None and value < 1:
            raise _error(f"{flag} must be a whole number >= 1, got {value}")
    run_dir = runs.new_run_dir(args.logdir, args.name, "bench")
    report = bench.run(args.quick, only, args.big_n, args.memory_n, args.compile)
    report["run_dir"] = str(run_dir)
    runs.write_json(run_dir / "bench.json", report)
    table = bench.format_table(report)
    runs.write_atomic(run_dir / "bench.txt", table + "\n")
    print(runs.dumps(report) if args.json else table)
    return 0


def cmd_sweep(args) -> int:
    from . import options, schedules

    if args.epochs is not None and args.steps is not None:
        raise _error("give --epochs or --steps, not both")
    epochs = args.epochs if args.epochs is not None else args.steps
    epochs = 100 if epochs is None else epochs
    options.check_dtype_name(args.dtype)
    options.check_epochs(epochs)
    options.check_guard(0.0, args.patience)
    schedules.parse(args.schedule)
    lrs = options.parse_lrs(args.lr, args.log)
    from . import runs
    from .sweep import check, format_table
    from .sweep import run as run_sweep

    kwargs = dict(device=args.device, dtype=args.dtype, **_run_kwargs(args, epochs))
    from .train import plan

    p = plan(args.problem, args.data, lr=lrs[0], paths=("manual",), **kwargs)
    check(p, lrs)  # before anything is written
    run_dir = runs.new_run_dir(args.logdir, args.name, "sweep")
    report = run_sweep(p, lrs)  # the same plan: the data are loaded once
    report["run_dir"] = str(run_dir)
    runs.write_json(run_dir / "config.json", report["config"])
    if not args.no_plots:
        from . import plots

        plots.sweep(report, path=run_dir / f"sweep.{args.format}")
    runs.write_json(run_dir / "summary.json", report)
    if args.json:
        print(runs.dumps(report))
    elif not args.quiet:
        print(format_table(report))
        print(f"Run directory: {run_dir}")
    return 0


def cmd_plot(args) -> int:
    """Check every option against the kind first (one line, exit 2), then run and draw."""
    import json
    import math

    from . import options, schedules

    fresh = {
        "cost": ("problem", "data", "schedule", "lr", "epochs", "init", "noise", "seed"),
        "loss": ("problem", "data", "schedule", "lr", "epochs", "init", "noise", "seed"),
        "trajectory": ("problem", "lr", "epochs", "init", "noise", "seed"),
        "sweep": ("problem", "data", "schedule", "lr", "epochs", "init", "seed"),
    }
    takes = {"field": ("problem",), "schedules": ("data", "lr", "epochs", "seed"), **fresh}
    kind = args.kind
    given = [n for n in fresh["cost"] if getattr(args, n) is not None]

    def flags(names) -> str:
        return ", ".join(f"--{n}" for n in names)

    if args.run is not None and kind not in fresh:
        raise _error(
            f"plot {kind} draws no saved run: --run does not apply (it takes "
            f"{flags(takes[kind])}, --out, --format)"
        )
    if args.run is not None and given:
        raise _error(
            f"{flags(given)} {'describe' if len(given) > 1 else 'describes'} a fresh run; with "
            "--run the figure shows the saved run as it was: drop one or the other"
        )
    if [n for n in given if n not in takes[kind]]:
        raise _error(
            f"plot {kind} does not take {flags(n for n in given if n not in takes[kind])} (it "
            f"takes {flags(takes[kind])}{', --run' if kind in fresh else ''}, --out, --format)"
        )

    # where the figure goes: a file whose suffix is its format, in a directory that exists
    fmt = args.format
    out = Path(args.out) if args.out is not None else Path(f"{kind}.{fmt or 'png'}")
    if args.out is not None and (out.is_dir() or args.out.endswith(("/", os.sep))):
        out = out / f"{kind}.{fmt or 'png'}"
    suffix = out.suffix.lstrip(".").lower()
    if suffix not in ("png", "svg", "pdf"):
        raise _error(f"--out {args.out}: name the file .png, .svg or .pdf, or give a directory")
    if fmt is not None and fmt != suffix:
        raise _error(f"--format {fmt} but --out {args.out} is a .{suffix} file: make them agree")
    if not out.parent.is_dir():
        raise _error(f"--out {args.out}: directory '{out.parent}' does not exist")

    # the fresh run's settings, train's defaults, each checked before anything runs
    lr = lrs = None
    if kind == "sweep":
        lrs = options.parse_lrs(args.lr or "0.01:0.3:30")
    else:
        try:
            lr = 0.01 if args.lr is None else float(args.lr)
        except ValueError:
            raise _error(f"--lr must be a number, got '{args.lr}'") from None
        if not math.isfinite(lr) or lr <= 0:
            raise _error(f"--lr must be a positive number, got {args.lr}")
    epochs = options.check_epochs(100 if args.epochs is None else args.epochs)
    noise = 0.0 if args.noise is None else args.noise
    options.check_guard(noise, 5)
    schedule = args.schedule or "batch"
    schedules.parse(schedule)
    data, seed = args.data or "lecture", args.seed or 0
    problem = args.problem or {"field": "paraboloid", "trajectory": "elliptic"}.get(kind, "linear")
    if kind == "cost" and problem != "linear":
        raise _error("plot cost needs a run of the linear model with one weight w")

    from . import plots

    if kind == "field":
        plots.field(problem, path=out)
    elif kind == "schedules":
        plots.schedules(data, lr=lr, epochs=epochs, seed=seed, path=out)
    else:
        if args.run is not None:
            summary_file = Path(args.run)
            summary_file = summary_file if summary_file.is_file() else summary_file / "summary.json"
            try:
                summary = json.loads(summary_file.read_text())
            except (OSError, ValueError) as exc:
                raise _error(f"cannot read run summary '{summary_file}': {exc}") from None
            if kind == "sweep" and "lrs" not in summary:
                raise _error(f"'{summary_file}' is not a sweep's summary")
            if kind != "sweep" and "paths" not in summary:
                raise _error(
                    f"'{summary_file}' holds no single run (a lecture run has batch/ "
                    "and sgd/ inside: give one of them)"
                )
        elif kind == "sweep":
            from .sweep import sweep

            summary = sweep(
                problem, data, lrs=lrs, schedule=schedule, epochs=epochs, init=args.init, seed=seed
            )
        else:
            from .train import fit

            summary = fit(
                problem,
                data,
                schedule=schedule,
                init=args.init,
                lr=lr,
                epochs=epochs,
                noise=noise,
                seed=seed,
            ).to_json()
        getattr(plots, kind)(summary, path=out)
    print(out)
    return 0


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _check_port(port: int) -> None:
    """Refuse a busy port before printing an address that would never answer."""
    import socket

    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            raise _error(
                f"port {port} is in use; choose another --port (0: any free one)"
            ) from None


def cmd_tb(args) -> int:
    import os
    import signal
    import subprocess
    import tempfile
    import time

    if not os.path.isdir(args.logdir):
        raise _error(f"log directory '{args.logdir}' does not exist; run torchgd lecture first")
    if not 0 <= args.port < 65536:
        raise _error(f"--port must be in 0..65535, got {args.port}")
    if args.port:
        _check_port(args.port)
    port = args.port or _free_port()
    cmd = [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        args.logdir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    # Ctrl-C and SIGTERM stop the server, even where SIGINT came in ignored (a shell's
    # background job): our handlers, not the inherited ones
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.default_int_handler)
    with tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, text=True)
        print(
            f"TensorBoard on {args.logdir}: http://127.0.0.1:{port}/ (Ctrl-C to stop)", flush=True
        )
        try:
            while proc.poll() is None:  # short sleeps, not a blocking read: Ctrl-C acts at once
                time.sleep(0.2)
        except KeyboardInterrupt:
            proc.terminate()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            return 0
        if proc.returncode:
            err.seek(0)
            last = err.read().strip().splitlines()
            raise _error(
                f"TensorBoard stopped (exit {proc.returncode}): "
                f"{last[-1] if last else 'no message'}"
            )
    return 0


def _error(message: str):
    from .errors import TorchgdError

    return TorchgdError(message)


def entry() -> None:
    """The ``torchgd`` console script: ``main()``, then ``quick_exit``."""
    quick_exit(main())


def quick_exit(code: int) -> None:
    """End the process without Python's teardown, which after a run that imported torch takes
    0.6 to 0.8 s (freeing torch's modules; measured: ``import torch, torch._dynamo`` alone
    exits 0.6 s sooner this way). By now every file is closed (callbacks, checkpoints and JSON
    are closed or replaced atomically before ``main`` returns) and the drawer has finished;
    stdout and stderr are flushed here."""
    try:
        sys.stdout.flush()
    except BrokenPipeError:  # `| head` left before the last line
        code = code or 141
    except (OSError, ValueError):
        pass
    try:
        sys.stderr.flush()
    except (OSError, ValueError):
        pass
    os._exit(code)


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = sys.argv[1:] if argv is None else list(argv)
    if args.command is None:  # plain `torchgd`: what it can do
        parser.print_help()
        return 0
    try:
        return _dispatch(args)
    finally:
        drawer = getattr(args, "drawer", None)
        if drawer is not None:  # an error or Ctrl-C: stop drawing; finished figures stay
            drawer.close()


def _dispatch(args) -> int:
    try:
        return args.func(args)
    except KeyboardInterrupt:
        _stderr("torchgd: interrupted")
        return 130
    except BrokenPipeError:  # `torchgd ... | head`: the reader left; stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # for Python's last flush
        return 141  # 128 + SIGPIPE, what a shell reports for a tool that SIGPIPE ended
    except OSError as exc:  # disk full, a file too large, no permission: the run's files stay
        where = f"'{exc.filename}': " if exc.filename else ""
        _stderr(
            f"torchgd {args.command}: error: {where}{exc.strerror or exc} "
            "(everything written before it is kept)"
        )
        return EXIT_IO
    except Exception as exc:
        from .errors import TorchgdError

        if isinstance(exc, TorchgdError):
            _stderr(f"torchgd {args.command}: error: {exc}")
            return 2
        raise
