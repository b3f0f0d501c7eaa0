"""A run directory, written from a plan: ``config.json`` first, TensorBoard's events as the run
goes, ``summary.json`` when it ends, then the figures. ``torchgd train`` and ``lecture`` write it
through the command line; ``torchgd.fit(..., logdir="runs")`` writes the same files::

    runs/<name>/config.json        the plan's configuration and the options of its output
    runs/<name>/events.out.tfevents.*   TensorBoard events (one TensorBoard run)
    runs/<name>/summary.json       the result (what ``--json`` prints)
    runs/<name>/loss.png ...       the figures

A TensorBoard writer that fails (disk full) stops writing; the run goes on and its result is
written (``write_error`` says what could not be).
"""

from __future__ import annotations

from pathlib import Path


def options(run_dir, logdir, *, log_every=None, smoothing=0.9, checkpoint_every=None,
            plots=True, tensorboard=True, fmt="png") -> dict:  # fmt: skip
    """The options that shape a run's output (``config.json``'s ``run_options``)."""
    import os

    return {
        "log_every": log_every,
        "smoothing": smoothing,
        "checkpoint_every": checkpoint_every,
        "trial": Path(os.path.relpath(run_dir, logdir)).as_posix(),  # HParams' trial name
        "no_plots": not plots,
        "no_tensorboard": not tensorboard,
        "format": fmt,
    }


def write_config(plan, run_dir, run_options: dict) -> None:
    from . import runs

    runs.write_json(Path(run_dir) / "config.json", {**plan.config, "run_options": run_options})


def tensorboard_writer(plan, run_dir, run_options: dict):
    """The TensorBoard callback of a run, made to survive a full disk (``keep_going``)."""
    from .callbacks.tensorboard import TensorBoard

    n = len(plan.dataset) if plan.dataset is not None else 1
    total = plan.epochs * (plan.batching.steps_per_epoch(n) if plan.dataset else 1)
    return keep_going(
        TensorBoard(
            run_dir,
            lr=plan.hp.lr,
            total_steps=total,
            log_every=run_options["log_every"],
            smoothing=run_options["smoothing"],
            trial=run_options["trial"],
        )
    )


def keep_going(callback):
    """``callback`` (an auxiliary writer: TensorBoard's events) made to stop writing at its
    first OSError (disk full, file too large) instead of stopping the run; the error is kept
    in ``callback.write_error``."""
    from .interfaces import CALLBACK_HOOKS

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


def what_failed(exc: OSError) -> str:
    where = f"'{exc.filename}': " if exc.filename else ""
    return f"{where}{exc.strerror or exc}"


def summary_of(result, run_dir, writer=None) -> dict:
    """``summary.json``'s object: the result, where it is, and what could not be written."""
    summary = {**result.to_json(), "run_dir": str(run_dir)}
    failed = getattr(writer, "write_error", None)
    if failed is not None:
        summary["not_written"] = [what_failed(failed)]
    return summary


def figures(summary: dict, run_dir, dataset, drawer, fmt="png", group=None) -> None:
    """Queue the run's figures (``loss``; ``cost`` or ``trajectory``) on ``drawer``."""
    from .callbacks.figures import draw

    draw(drawer, summary, run_dir, fmt, group, dataset)


def fit_into(plan, logdir, name=None, *, callbacks=(), tensorboard=True, plots=True):
    """``torchgd.fit(..., logdir=...)``: the plan run into a new directory under ``logdir``,
    with the files ``train`` writes; returns the Result (its ``run_dir`` set)."""
    import warnings

    from . import runs, train

    run_dir = runs.new_run_dir(logdir, name, "fit")
    opts = options(run_dir, logdir, plots=plots, tensorboard=tensorboard)
    write_config(plan, run_dir, opts)
    writer = tensorboard_writer(plan, run_dir, opts) if tensorboard else None
    result = train.execute(plan, [*callbacks, *([writer] if writer else [])])
    summary = summary_of(result, run_dir, writer)
    runs.write_json(run_dir / "summary.json", summary)
    result.run_dir = run_dir
    if plots:
        from .drawing import Drawer

        drawer = Drawer(background=False)  # drawn here, before fit returns
        figures(summary, run_dir, plan.dataset, drawer, group=str(run_dir))
        groups = drawer.wait()
        if tensorboard:  # the figures in TensorBoard's Images tab too, as train shows them
            from .callbacks.tensorboard import write_figures

            for where, pngs in groups.items():
                if where is not None:
                    write_figures(where, pngs)
    if summary.get("not_written"):
        warnings.warn(
            f"{summary['not_written'][0]}: the run's result is in {run_dir}, but its "
            "TensorBoard events stop there",
            stacklevel=3,
        )
    return result
