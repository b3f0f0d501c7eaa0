"""``torchgd lecture``: the lecture's batch GD and per-sample SGD through every path."""

from __future__ import annotations

from .app import error, stderr
from .common import check_logging, rule_options, run_options
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
    p.add_argument(
        "--resume",
        default=None,
        metavar="RUN_DIR",
        help="continue an interrupted lecture: the part that was interrupted from its "
        "checkpoint, bit for bit, then the rest",
    )
    p.set_defaults(func=run)


def _plans(data, paths, device, dtype, spelling) -> dict:
    """The lecture's two parts: lr 0.01, 100 epochs from w = 1.0, batch GD and per-sample SGD."""
    from .. import train

    return {
        s: train.plan(
            "linear",
            data,
            batching=s,
            lr=0.01,
            epochs=100,
            init={"w": 1.0},
            paths=paths,
            device=device,
            dtype=dtype,
            spelling=spelling,
        )  # fmt: skip
        for s in PARTS
    }


PARTS = ("batch", "sgd")


def run(args) -> int:
    from .. import options

    if args.resume:
        return resume(args)
    options.check_dtype_name(args.dtype)
    check_logging(args)
    early = _draw_early(args)
    from .. import runs

    plans = _plans(args.data, args.paths, args.device, args.dtype, args.spelling)
    features = plans["batch"].dataset.x
    if features.dim() == 2:  # checked before anything is written
        raise error(
            f"lecture fits y = w*x: --data needs one feature, '{args.data}' has "
            f"{features.shape[1]} (train takes any number: torchgd train --data {args.data})"
        )
    run_dir = runs.new_run_dir(args.logdir, args.name, "lecture")
    return _run_parts(args, run_dir, plans, early, {})


def _run_parts(args, run_dir, plans, early, resumed: dict) -> int:
    """Each part into its directory (``resumed``: a part's checkpoint, or its summary if it
    finished), then the figures; the top summary.json, whatever happens."""
    from .. import runs

    summary, results = {"run_dir": str(run_dir)}, []
    try:  # Ctrl-C anywhere (a part, its figures, between parts): the summary of what finished
        for batching, plan in plans.items():
            done = resumed.get(batching)
            if isinstance(done, dict) and done.get("status") == "completed":
                summary[batching] = done
                continue
            sub = run_dir / batching
            sub.mkdir(exist_ok=done is not None)
            result, summary[batching] = run_plan(
                plan, args, sub, HEADERS[batching], resume=done, checkpoint_every=0
            )
            results.append(result)
            if result.status != "completed":
                break
            if not (args.json or args.quiet):
                print()
        if not args.no_plots:
            for scratch in early.values():
                args.drawer.place(scratch, run_dir / scratch.name, str(run_dir / "figures"))
            figures_done(args)
    except KeyboardInterrupt:  # between the parts or in the figures: said with the run's path
        _write_summary(run_dir, plans, summary)
        stderr(
            f"torchgd: interrupted; everything up to the interrupt is in {run_dir}; continue "
            f"it with: torchgd lecture --resume {run_dir}"
        )
        return 130
    finally:
        _write_summary(run_dir, plans, summary)
    if args.json:
        print(runs.dumps(summary))
    return finish(results, run_dir, args)


def resume(args) -> int:
    """``lecture --resume RUN_DIR``: the parts that finished stay as they are; the one that was
    interrupted continues from its checkpoint (bit for bit), the rest run as they would have."""
    import json
    from pathlib import Path

    from .. import checkpoints
    from .resume import check_files, finished, refuse_changes, restore_outputs, say_finished

    run_dir = Path(args.resume)
    refuse_changes(args)
    try:
        saved = json.loads((run_dir / "batch" / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot resume '{run_dir}': not a lecture's run directory ({exc})") from None
    check_files(saved, run_dir)
    done = {part: finished(run_dir / part) for part in PARTS}
    if all(d is not None for d in done.values()):
        say_finished(run_dir, {"status": "completed", "epochs": 100}, args)
        return 0
    data = (saved.get("data_meta") or {}).get("file") or saved["data"]
    plans = _plans(data, saved["paths"], saved["device"], saved["dtype"],
                   saved.get("spelling", saved.get("rule")))  # fmt: skip
    resumed: dict = {}
    for part in PARTS:
        if done[part] is not None:
            resumed[part] = done[part]
        elif (run_dir / part / checkpoints.NAME).exists():
            resumed[part] = checkpoints.load(run_dir / part / checkpoints.NAME)
        elif (run_dir / part).exists():  # interrupted before its first checkpoint: run it anew
            import shutil

            shutil.rmtree(run_dir / part)
    restore_outputs(args, saved, run_dir)
    early = {}
    if not args.no_plots:
        missing = [
            k for k in ("field", "batchings") if not (run_dir / f"{k}.{args.format}").exists()
        ]
        early = {k: v for k, v in _draw_early(args, data).items() if k in missing}
    return _run_parts(args, run_dir, plans, early, resumed)


def _draw_early(args, data=None) -> dict:
    """The figures that need no run, drawn while torch imports: {kind: scratch file}."""
    early = {}
    if not args.no_plots:
        figures = drawer(args)
        data = args.data if data is None else data
        for kind, kw in (("field", {}), ("batchings", {"data": data, "epochs": 100})):
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
