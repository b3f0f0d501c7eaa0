"""``torchgd check``: a gradient formula against autograd and central differences."""

from __future__ import annotations

from . import common
from .app import error


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "check",
        help="check a gradient formula against autograd and central differences",
        description="Compare the analytic gradient with autograd and with "
        "central differences at seeded random and special points, "
        "and run gradcheck/gradgradcheck on the formula. Exit code "
        "1 when a check fails.",
    )
    p.add_argument(
        "--problem",
        default="paraboloid",
        help=f"{', '.join(common.problem_names())} (default paraboloid), or your own as "
        "FILE.py:NAME",
    )
    p.add_argument("--data", default=None, help="data for the linear problem (default lecture)")
    p.add_argument("--points", type=int, default=16, help="random points (default 16)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random points")
    p.add_argument(
        "--h",
        default="1e-4",
        help="central-difference step (default 1e-4, the lecture's) or 'auto'",
    )
    p.add_argument("--dtype", default="float64", help="float64 or float32")
    p.add_argument(
        "--compile",
        action="store_true",
        help="also check the gradient of the kernel train --compile uses (data above one chunk)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import options

    options.check_dtype_name(args.dtype)
    h = args.h
    if h != "auto":
        try:
            h = float(h)
        except ValueError:
            raise error(f"--h must be a positive number or 'auto', got '{args.h}'") from None
    from .. import check, runs

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
