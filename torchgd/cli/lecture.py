"""``torchgd lecture``: the lecture's batch GD and per-sample SGD through every path."""

from __future__ import annotations

from .app import error
from .common import check_logging, plan_kwargs, rule_options, run_options
from .running import drawer, figures_done, finish
from .running import run as run_plan

HEADERS = {
    "batch": "Gradient descent (batch): w = w - lr * 1/N sum 2*x_n*(x_n*w - y_n), one step per "
    "epoch; loss is the cost before the update",
    "sgd": "Stochastic gradient descent (sgd): w = w - lr * 2*x*(x*w - y), one step per sample; "
    "loss is the last sample's, after its update",
}


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "lecture",
        parents=[run_options(), rule_options(lr=None, sgd=False)],  # the lecture's lr, plain SGD
        help="the lecture: batch GD and per-sample SGD, three paths",
        description="Run the lecture's batch gradient descent and its "
        "per-sample SGD (lr 0.01, 100 epochs, w0 = 1.0) through "
        "all paths, print the lecture's lines and the agreement.",
    )
    p.add_argument(
        "--data",
        default="lecture",
        help="lecture (default), course, or any data train takes with one feature",
    )
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import options

    options.check_dtype_name(args.dtype)
    check_logging(args)
    early = _draw_early(args)
    from .. import runs, train

    plans = {
        s: train.plan(
            "linear",
            args.data,
            schedule=s,
            lr=0.01,
            epochs=100,
            init={"w": 1.0},
            **plan_kwargs(args),
        )
        for s in ("batch", "sgd")
    }
    features = plans["batch"].dataset.x
    if features.dim() == 2:  # checked before anything is written
        raise error(
            f"lecture fits y = w*x: --data needs one feature, '{args.data}' has "
            f"{features.shape[1]} (train takes any number: torchgd train --data {args.data})"
        )
    run_dir = runs.new_run_dir(args.logdir, args.name, "lecture")
    summary, results = {"run_dir": str(run_dir)}, []
    try:  # Ctrl-C anywhere (a part, its figures, between parts): the summary of what finished
        for schedule, plan in plans.items():
            sub = run_dir / schedule
            sub.mkdir()
            result, summary[schedule] = run_plan(plan, args, sub, HEADERS[schedule])
            results.append(result)
            if result.status != "completed":
                break
            if not (args.json or args.quiet):
                print()
        if not args.no_plots:
            for scratch in early.values():
                args.drawer.place(scratch, run_dir / scratch.name, str(run_dir / "figures"))
            figures_done(args)
    finally:
        _write_summary(run_dir, plans, summary)
    if args.json:
        print(runs.dumps(summary))
    return finish(results, run_dir, args)


def _draw_early(args) -> dict:
    """The figures that need no run, drawn while torch imports: {kind: scratch file}."""
    early = {}
    if not args.no_plots:
        figures = drawer(args)
        for kind, kw in (("field", {}), ("schedules", {"data": args.data, "epochs": 30})):
            early[kind] = figures.scratch() / f"{kind}.{args.format}"
            figures.draw(kind, early[kind], **kw)
    return early


def _write_summary(run_dir, plans, summary) -> None:
    """summary.json of both parts, with a part whose summary was written just before an
    interrupt."""
    from .. import runs

    for part in plans:
        written = run_dir / part / "summary.json"
        if part not in summary and written.exists():
            import json

            summary[part] = json.loads(written.read_text())
    runs.write_json(run_dir / "summary.json", summary)
