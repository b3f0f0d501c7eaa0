"""``torchgd bench``: speed as ratios, in one run; bench.json and bench.txt in its directory."""

from __future__ import annotations

import argparse

from .app import error


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "bench",
        help="measure speed as ratios in one run",
        description="Numerical-gradient speed-up over the lecture's loop, "
        "per-sample SGD steps/s of each path against pure Python, TensorBoard overhead, sweep "
        "speed-up, big-N epoch times against torch.dot, peak memory, start-up times. Writes "
        "bench.json and bench.txt to the run directory.",
    )
    p.add_argument("--quick", action="store_true", help="CI-sized runs")
    p.add_argument(
        "--compile",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="big N: also time the manual path with train --compile (default: in full runs)",
    )
    p.add_argument(
        "--only",
        default=None,
        help="comma-separated sections: numerical,sgd,logging,sweep,big_n,memory,startup",
    )
    p.add_argument("--big-n", type=int, default=None, help="samples for big_n (default 10M)")
    p.add_argument("--memory-n", type=int, default=None, help="samples for memory (default 100M)")
    p.add_argument(
        "--device",
        default="cpu",
        help="where the per-sample SGD and big-N rows run: cpu | cuda | cuda:N (the GPU rows)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--logdir", default="runs", help="parent of the run directory")
    p.add_argument("--name", default=None, help="run directory name (default: bench-<timestamp>)")
    p.set_defaults(func=run)


def run(args) -> int:
    from .. import bench, runs

    only = _sections(args.only, bench.SECTIONS)
    for flag, value in (("--big-n", args.big_n), ("--memory-n", args.memory_n)):
        if value is not None and value < 1:
            raise error(f"{flag} must be a whole number >= 1, got {value}")
    from ..device import resolve_device

    device = resolve_device(args.device)  # a missing device: one line, exit 2, nothing written
    run_dir = runs.new_run_dir(args.logdir, args.name, "bench")
    report = bench.run(args.quick, only, args.big_n, args.memory_n, args.compile, device)
    report["run_dir"] = str(run_dir)
    runs.write_json(run_dir / "bench.json", report)
    table = bench.format_table(report)
    runs.write_atomic(run_dir / "bench.txt", table + "\n")
    print(runs.dumps(report) if args.json else table)
    return 0


def _sections(text: str | None, sections: tuple) -> tuple:
    """--only: the sections named, each one of ``sections`` (all of them when not given)."""
    if text is None:
        return sections
    only = tuple(s.strip() for s in text.split(",") if s.strip())
    bad = [s for s in only if s not in sections]
    if bad or not only:
        raise error(
            f"unknown bench section '{bad[0] if bad else text}': choose from {','.join(sections)}"
        )
    return only
