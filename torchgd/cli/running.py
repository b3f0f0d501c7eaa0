"""Executing a plan into a run directory (lecture and train): config, callbacks, summary,
figures, and the exit code of the results."""

from __future__ import annotations

import os
from pathlib import Path

from .app import stderr


def run(plan, args, run_dir, header=None, resume=None, checkpoint_every=None, group=None):
    """Execute one plan into ``run_dir``: config first, the console, then the summary.

    ``checkpoint_every`` (train): a checkpoint every K epochs (0: only on Ctrl-C); None: none.
    """
    from .. import runs, train
    from ..callbacks.console import agreement_table

    if resume is None:
        _write_config(plan, args, run_dir, checkpoint_every, group)
    human = not (args.json or args.quiet)
    progress = None
    if human:
        from ..callbacks.progress import Progress

        progress = Progress(plan.epochs)
    callbacks = [progress] if human else []
    writer = None
    if not args.no_tensorboard:  # an auxiliary writer: a full disk stops it, not the run
        writer = keep_going(_tensorboard(plan, args, run_dir))
        callbacks.append(writer)
    if human:
        callbacks.append(_console(plan, args, header, resume, progress))
    checkpointer = None
    if checkpoint_every is not None:
        checkpointer = train.Checkpointer(run_dir, checkpoint_every)
    result = train.execute(plan, callbacks, resume=resume, checkpoint=checkpointer, group=group)
    summary = {**result.to_json(), "run_dir": str(run_dir)}
    failed = getattr(writer, "write_error", None)
    if failed is not None:  # the result first; what could not be written is said at the end
        args.write_errors = [*getattr(args, "write_errors", []), failed]
        summary["not_written"] = [_what_failed(failed)]
    if human:
        print(agreement_table(result))
    runs.write_json(run_dir / "summary.json", summary)
    if not args.no_plots:  # after the summary: Ctrl-C while drawing loses no result
        from ..callbacks.figures import draw

        draw(drawer(args), summary, run_dir, args.format, str(run_dir / "compare"), plan.dataset)
    return result, summary


def _write_config(plan, args, run_dir, checkpoint_every, group) -> None:
    """config.json: the plan's config and the options that only shape the run's output."""
    from .. import runs

    args.trial = Path(os.path.relpath(run_dir, args.logdir)).as_posix()
    options = {
        "log_every": args.log_every,
        "smoothing": args.smoothing,
        "checkpoint_every": checkpoint_every,
        "trial": args.trial,  # the run's name in TensorBoard's HParams tab
        # what the run writes (--resume keeps them)
        "no_plots": bool(args.no_plots),
        "no_tensorboard": bool(args.no_tensorboard),
        "format": args.format,
    }
    if group is not None:
        options["distributed"] = group.info()
    runs.write_json(run_dir / "config.json", {**plan.config, "run_options": options})


def _tensorboard(plan, args, run_dir):
    from ..callbacks.tensorboard import TensorBoard

    n = len(plan.dataset) if plan.dataset is not None else 1
    total = plan.epochs * (plan.schedule.steps_per_epoch(n) if plan.dataset else 1)
    return TensorBoard(
        run_dir,
        lr=plan.hp.lr,
        total_steps=total,
        log_every=args.log_every,
        smoothing=args.smoothing,
        trial=args.trial,
    )


def _console(plan, args, header, resume, progress):
    """The console callback, after the run's first line (what it runs) is printed."""
    from ..callbacks.console import Console, describe

    line = header or describe(plan.config, plan.dataset)
    if resume is not None:
        at = resume["position"]
        line = line.replace("Training ", "Resuming ", 1) + (
            f"; from its checkpoint at epoch {at['epoch']}, step {at['step']}"
        )
    print(line)
    print(f"  (lines show the {plan.names[0]} path; the table compares {', '.join(plan.names)})")
    return Console(
        plan.problem,
        plan.names[0],
        plan.epochs,
        every=1 if args.verbose else None,
        progress=progress,
        resumed=resume is not None,
    )


def drawer(args):
    """The command's figure drawer (``torchgd.drawing``): started as early as possible, so
    that it imports matplotlib and draws while this process imports torch and trains."""
    if getattr(args, "drawer", None) is None:
        from ..drawing import Drawer

        args.drawer = Drawer()
    return args.drawer


def figures_done(args) -> None:
    """Wait for every figure asked for; show the PNGs in TensorBoard's Images tab, each group
    in its TensorBoard run."""
    drawer = getattr(args, "drawer", None)
    if drawer is None:
        return
    groups = drawer.wait()
    if not args.no_tensorboard and args.format == "png":
        from ..callbacks.tensorboard import write_figures

        for logdir, figures in groups.items():
            if logdir is not None:
                write_figures(logdir, figures)


def keep_going(callback):
    """``callback`` (an auxiliary writer: TensorBoard's events) made to stop writing at its
    first OSError (disk full, file too large) instead of stopping the run; the error is kept
    in ``callback.write_error`` for the end of the command (``finish``: exit 74)."""
    from ..interfaces import CALLBACK_HOOKS

    callback.write_error = None

    def guarded(method):
        def call(*args, **kwargs):
            if callback.write_error is not None:
                return None
            try:
                return method(*args, **kwargs)
            except OSError as exc:
                callback.write_error = exc
                return None

        return call

    for hook in (*CALLBACK_HOOKS, "state_dict", "resume"):
        method = getattr(callback, hook, None)
        if callable(method):
            setattr(callback, hook, guarded(method))
    return callback


def _what_failed(exc: OSError) -> str:
    where = f"'{exc.filename}': " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def finish(results, run_dir, args) -> int:
    """The exit code of the results: 74 when an auxiliary file could not be written (the
    result is written: said last, in one line), 130 interrupted, 3 diverged (one line on
    stderr), else 0."""
    failed = getattr(args, "write_errors", None)
    if failed:
        from .app import EXIT_IO

        stderr(
            f"torchgd {args.command}: error: {_what_failed(failed[0])}: the run finished and its "
            f"result is in {run_dir} (summary.json), but the TensorBoard events stop there"
        )
        return EXIT_IO
    if any(r.status == "interrupted" for r in results):
        again = ""
        if any(Path(run_dir).glob("**/checkpoint.pt")):
            again = f"; continue it with: torchgd {args.command} --resume {run_dir}"
        stderr(f"torchgd: interrupted; everything up to the interrupt is in {run_dir}{again}")
        return 130
    for r in results:
        if r.status == "diverged":
            from ..train import divergence_message

            stderr(
                f"torchgd: {divergence_message(r.diverged, r.config['lr'], r.config)}; "
                f"the run is in {run_dir}"
            )
            return 3
    if not (args.json or args.quiet):
        print(f"Run directory: {run_dir}")
    return 0


def group(args, device: str):
    """This process's place among several (``--distributed``), or None."""
    if not args.distributed:
        return None
    from .. import distributed

    return distributed.init(device)


def rows(group):
    """The rows a rank keeps: every rank but 0 only its shard (rank 0 writes the figures and
    the report, which use the whole data)."""
    return group.shard if group is not None and group.rank != 0 else None


def rank_status(result) -> int:
    """The exit code of a rank that does not report: the same as rank 0's."""
    return {"interrupted": 130, "diverged": 3}.get(result.status, 0)


def compiling(compile: bool, args) -> None:
    """Said before the plan is made, since compiling can take a while."""
    if compile and not (args.json or args.quiet):
        print("--compile: compiling the manual path's batch sum with torch.compile ...", flush=True)


def compile_note(plan, args) -> None:
    """One line on what --compile did, for people (not with --json or --quiet)."""
    if not plan.config.get("compile") or args.json or args.quiet:
        return
    from ..fused import nothing_to_compile

    if plan.fused is None:
        print(nothing_to_compile())
    else:
        print(
            "--compile: the manual path sums each batch in one loop compiled by torch.compile "
            f"({plan.fused.seconds:.1f} s to compile or load from the cache)"
        )
