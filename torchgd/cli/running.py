"""Executing a plan into a run directory (lecture and train): config, callbacks, summary,
figures, and the exit code of the results."""

from __future__ import annotations

from pathlib import Path

from .app import stderr


def run(plan, args, run_dir, header=None, resume=None, checkpoint_every=None, group=None):
    """Execute one plan into ``run_dir``: config first, the console, then the summary.

    ``checkpoint_every`` (train): a checkpoint every K epochs (0: only on Ctrl-C); None: none.
    """
    from .. import rundir, runs, train
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
        writer = rundir.tensorboard_writer(plan, run_dir, _options(args))
        callbacks.append(writer)
    if human:
        console = _console(plan, args, header, resume, progress)
        if args.verbose and _per_sample(plan):  # the lecture's line for every sample
            from ..callbacks.console import Samples

            callbacks.append(Samples(plan.names[0], console))
        callbacks.append(console)
    checkpointer = None
    if checkpoint_every is not None:
        checkpointer = train.Checkpointer(run_dir, checkpoint_every)
    result = train.execute(plan, callbacks, resume=resume, checkpoint=checkpointer, group=group)
    summary = rundir.summary_of(result, run_dir, writer)
    if writer is not None and writer.write_error is not None:  # said at the end (finish)
        args.write_errors = [*getattr(args, "write_errors", []), writer.write_error]
    if human:
        print(agreement_table(result))
    runs.write_json(run_dir / "summary.json", summary)
    if not args.no_plots:  # after the summary: Ctrl-C while drawing loses no result
        rundir.figures(summary, run_dir, plan.dataset, drawer(args), args.format, str(run_dir))
    return result, summary


def _options(args) -> dict:
    """What the TensorBoard writer takes of the run's output options."""
    return {"log_every": args.log_every, "smoothing": args.smoothing, "trial": args.trial}


def _write_config(plan, args, run_dir, checkpoint_every, group) -> None:
    """config.json: the plan's config and the options that only shape the run's output."""
    from .. import rundir

    options = rundir.options(
        run_dir, args.logdir, log_every=args.log_every, smoothing=args.smoothing,
        checkpoint_every=checkpoint_every, plots=not args.no_plots,
        tensorboard=not args.no_tensorboard, fmt=args.format,
    )  # fmt: skip
    args.trial = options["trial"]  # the run's name in TensorBoard's HParams tab
    if group is not None:
        options["distributed"] = group.info()
    rundir.write_config(plan, run_dir, options)


def _per_sample(plan) -> bool:
    """One sample a step on the lecture's one-feature model (``sgd``, or ``minibatch:1``)."""
    ds = plan.dataset
    return (
        ds is not None
        and plan.problem.name == "linear"
        and ds.x.dim() == 1
        and not plan.config.get("bias")
        and plan.batching.size(len(ds)) == 1
    )


def _console(plan, args, header, resume, progress):
    """The console callback, after the run's first line (what it runs) is printed."""
    from ..callbacks.console import Console, describe

    line = header or describe(plan.config, plan.dataset)
    if resume is not None:
        at = resume["position"]
        line = line.replace("Training ", "Resuming ", 1) + (
            f"; from its checkpoint after step {at['step']}, resuming at epoch {at['epoch']}"
            + (f", batch {at['batch'] + 1}" if at.get("batch") else "")
        )
    print(line)
    print(f"  (lines show the {plan.names[0]} path; the table compares {', '.join(plan.names)})")
    if resume is None:
        from ..hooks import against_the_limit

        said = against_the_limit(plan)  # a scheduled lr against the stability limit
        if said:
            print(f"  ({said})")
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


def finish(results, run_dir, args) -> int:
    """The exit code of the results: 74 when an auxiliary file could not be written (the
    result is written: said last, in one line), 130 interrupted, 3 diverged (one line on
    stderr), else 0."""
    failed = getattr(args, "write_errors", None)
    if failed:
        from .. import rundir
        from .app import EXIT_IO

        stderr(
            f"torchgd {args.command}: error: {rundir.what_failed(failed[0])}: the run finished "
            "and its "
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
