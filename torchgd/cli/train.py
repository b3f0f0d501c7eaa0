"""``torchgd train``: any problem, batching and options, every path in lockstep, compared at
every step; ``--resume`` (in ``resume.py``) continues an interrupted run."""

from __future__ import annotations

import argparse

from .app import error, parent, stderr
from .common import (
    add_field_options,
    add_scheduler,
    check_logging,
    check_rule,
    epochs,
    problem_options,
    rule_options,
    run_kwargs,
    run_options,
)
from .running import compile_note, compiling, drawer, figures_done, finish, group, rank_status, rows
from .running import run as run_plan


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        parents=[problem_options(), rule_options(lr="one"), _train_options(), run_options()],
        help="train any problem with any batching and options",
        description="Train by the selected paths in lockstep and compare them at every step.",
    )
    add_field_options(p)  # train takes every run option: one that has no flag above gets one
    p.set_defaults(func=run)


def _train_options() -> argparse.ArgumentParser:
    """train's own options (a parent, so that --help lists them before the run options)."""
    p = parent()
    p.add_argument(
        "--checkpoint-every",
        type=int,
        default=0,
        metavar="K",
        help="save a checkpoint every K epochs (0: only on Ctrl-C; one is always saved then)",
    )
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted run from its checkpoint, bit for bit",
    )
    p.add_argument(
        "--noise",
        type=float,
        default=0.0,
        metavar="SIGMA",
        help="add Gaussian noise (std SIGMA, seeded) to every path's gradient",
    )
    add_scheduler(p, "the optim path runs torch.optim.lr_scheduler's class, the others "
                  "torchgd's in the run's --spelling")  # fmt: skip
    p.add_argument(
        "--distributed",
        action="store_true",
        help="run as one of several processes started by torchrun: each works on its shard of "
        "the data, gradients are all-reduced, rank 0 writes (gloo on CPU, NCCL on CUDA)",
    )
    p.add_argument(
        "--shadow",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="float32 runs: also step a float64 manual path on the same data and report the "
        "distance (default: for data of at most 1,000,000 values)",
    )
    p.add_argument(
        "--compile",
        action="store_true",
        help="the manual path sums each batch bigger than 524,288 rows in one loop compiled by "
        "torch.compile (needs a C++ compiler on CPU; compiling takes seconds before the run, "
        "fewer once inductor has cached it)",
    )
    return p


def run(args) -> int:
    try:
        return _train(args)
    finally:
        if args.distributed:
            from .. import distributed

            distributed.close()


def _train(args) -> int:
    check_logging(args)
    if args.checkpoint_every is not None and args.checkpoint_every < 0:
        raise error(f"--checkpoint-every must be a whole number >= 0, got {args.checkpoint_every}")
    if args.resume:
        from .resume import resume

        return resume(args)
    n_epochs = _check(args)
    from .. import runs, train

    _say_loading(args)
    plan, ranks = _plan(args, n_epochs)
    if ranks is not None and ranks.rank != 0:  # the other ranks compute; rank 0 writes
        return rank_status(train.execute(plan, [], group=ranks))
    compile_note(plan, args)
    run_dir = runs.new_run_dir(args.logdir, args.name, "train")
    try:
        result, summary = run_plan(
            plan, args, run_dir, checkpoint_every=args.checkpoint_every, group=ranks
        )
    except Exception as exc:  # a user's problem or rule that breaks mid-run: one line
        from ..errors import failure
        from ..planning import user_code

        if not user_code(plan.problem, plan.hp):
            raise
        what = failure(exc)
        runs.write_json(
            run_dir / "summary.json",
            {"config": plan.config, "status": "failed", "error": what, "run_dir": str(run_dir)},
        )
        stderr(f"torchgd: the run failed: your code raised {what}; what ran is in {run_dir}")
        return 2
    figures_done(args)
    if args.json:
        print(runs.dumps(summary))
    return finish([result], run_dir, args)


BIG = 5_000_000  # rows (or 64 MiB of a file): loading and analysing them takes seconds


def _say_loading(args) -> None:
    """For big data, a line before the seconds of loading it (and computing its theory) in
    which nothing else would be said (100 million rows: 45 s of silence)."""
    if args.json or args.quiet or not args.data:
        return
    import os
    import re

    spec = str(args.data)
    rows = re.match(r"synthetic:(\d+)", spec)
    big = int(rows.group(1)) >= BIG if rows else (
        os.path.isfile(spec) and os.path.getsize(spec) >= 64 << 20
    )  # fmt: skip
    if big:
        print(f"Loading {spec} and checking every value ...", flush=True)


def _check(args) -> int:
    """Every option that can be checked without torch; the epochs to run."""
    from .. import options
    from ..batching import parse_batching

    n_epochs = epochs(args)
    options.check_dtype_name(args.dtype)
    check_rule(args)
    options.check_epochs(n_epochs)
    parse_batching(args.batching)
    if not args.no_plots and not args.distributed:
        drawer(args)  # imports matplotlib while this process imports torch
    return n_epochs


def _plan(args, n_epochs: int):
    """The plan (every argument checked and resolved) and this process's group, or None."""
    from .. import problems, rules, train

    if args.distributed and not getattr(problems.get(args.problem), "needs_data", False):
        raise error(
            f"--distributed splits the data across processes; problem '{args.problem}' has none"
        )
    ranks = group(args, args.device)
    if ranks is not None:
        args.device = ranks.device  # cuda:LOCAL_RANK on CUDA
    compiling(args.compile and (ranks is None or ranks.rank == 0), args)
    plan = train.plan(
        args.problem, args.data, rows=rows(ranks), **run_kwargs(args, epochs=n_epochs)
    )
    if ranks is not None and rules.evaluates(plan.hp):
        raise error(f"--distributed: {rules.of(plan.hp).NAME} {rules.AGAIN}")
    return plan, ranks
