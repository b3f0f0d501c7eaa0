"""``torchgd sweep``: K learning rates as one vectorized run of the manual path, against the
theory."""

from __future__ import annotations

from .app import stderr
from .common import (
    FORMATS,
    add_device,
    add_json_or_quiet,
    add_scheduler,
    epochs,
    problem_options,
    rule_options,
    run_kwargs,
)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "sweep",
        parents=[problem_options(), rule_options(lr="range", spelling=False)],
        help="K learning rates at once, against the theory",
        description="Run K learning rates as one vectorized run of the manual "
        "path; print final loss, status, measured and predicted "
        "rate per lr, and the critical lr.",
        epilog="statuses: converged (the excess cost over the minimum fell 1e8-fold, or to "
        "rounding; with --weight-decay the minimum of cost + weight_decay/2 * |theta|^2, the "
        "ridge solution), floor (a stochastic run on noisy data that settled near the minimum: "
        "the noise floor), far (one that settled on a stable cycle far from it), stalled (the "
        "error stopped shrinking without blowing up), slow (still moving), diverged (stopped "
        "by the guard)",
    )
    p.add_argument("--log", action="store_true", help="log-spaced learning rates")
    add_scheduler(p, "each lane's schedule starts from its own lr")
    add_device(p)
    p.add_argument("--dtype", default="float64", help="float64 or float32")
    p.add_argument("--logdir", default="runs", help="parent of the run directory")
    p.add_argument("--name", default=None, help="run directory name (default: sweep-<timestamp>)")
    p.add_argument("--no-plots", action="store_true", help="draw no figure")
    p.add_argument("--format", default="png", choices=FORMATS, help="figure format")
    add_json_or_quiet(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import options
    from ..batching import parse_batching

    n_epochs = epochs(args)
    options.check_dtype_name(args.dtype)
    options.check_epochs(n_epochs)
    options.check_guard(0.0, args.patience)
    parse_batching(args.batching)
    lrs = options.parse_lrs(args.lr, args.log)
    from .. import runs, sweep
    from ..train import plan

    kwargs = run_kwargs(args, epochs=n_epochs, lr=lrs[0], paths=("manual",))
    p = plan(args.problem, args.data, **kwargs)
    sweep.check(p, lrs)  # before anything is written
    run_dir = runs.new_run_dir(args.logdir, args.name, "sweep")
    runs.write_json(run_dir / "config.json", {**sweep.config_of(p), "lrs": lrs})
    try:
        report = sweep.run(p, lrs)  # the same plan: the data are loaded once
    except KeyboardInterrupt:  # before the first epoch ended: nothing to report but that
        stop = {"config": sweep.config_of(p), "lrs": lrs, "interrupted": True, "epochs_done": 0}
        runs.write_json(run_dir / "summary.json", {**stop, "run_dir": str(run_dir)})
        if args.json:  # one JSON object, as train --json gives when interrupted
            print(runs.dumps({**stop, "run_dir": str(run_dir)}))
        stderr(f"torchgd: interrupted before the first epoch ended; the sweep is in {run_dir}")
        return 130
    report["run_dir"] = str(run_dir)
    if report["interrupted"]:
        runs.write_json(run_dir / "summary.json", report)
        if args.json:
            print(runs.dumps(report))
        elif not args.quiet:
            print(sweep.format_table(report))
        stderr(
            f"torchgd: interrupted after epoch {report['epochs_done']} of {n_epochs}; the lanes "
            f"as they were then are in {run_dir}"
        )
        return 130
    if not args.no_plots:
        from .. import plots

        plots.sweep(report, path=run_dir / f"sweep.{args.format}")
    runs.write_json(run_dir / "summary.json", report)
    if args.json:
        print(runs.dumps(report))
    elif not args.quiet:
        print(sweep.format_table(report))
        print(f"Run directory: {run_dir}")
    return 0
