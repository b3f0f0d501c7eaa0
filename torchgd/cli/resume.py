"""``torchgd train --resume RUN_DIR``: continue an interrupted run from its checkpoint, bit for
bit, exactly as its config.json says."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .app import error, negatives_glued, stderr
from .running import compile_note, compiling, figures_done, finish, group, rank_status, rows
from .running import run as run_plan

# what --resume may be given besides the run: how to show it, and how to run it
# (--no-plots, --no-tensorboard and --format are the run's own, kept in its config.json: given
# again, they must say what the run started with)
RESUME_OPTIONS = {"resume", "json", "quiet", "verbose", "distributed", "command", "func"}
OUTPUTS = {"no_plots": False, "no_tensorboard": False, "format": "png"}  # and their defaults


def resume(args) -> int:
    from .. import checkpoints, runs, train

    run_dir = Path(args.resume)
    refuse_changes(args)
    try:
        saved = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as exc:
        raise error(f"cannot resume '{run_dir}': no readable config.json ({exc})") from None
    from ..runconfig import current

    saved, said = current(saved)
    if said and not args.quiet:
        stderr(f"torchgd: {run_dir}: {said}")
    ended = finished(run_dir)
    if ended is not None:
        say_finished(run_dir, ended, args)
        return 0
    check_files(saved, run_dir)
    state = checkpoints.load(run_dir / checkpoints.NAME)
    ranks = group(args, saved.get("device", "cpu"))
    if ranks is not None:  # rank r continues on its own device (cuda:r; the cpu stays the cpu)
        saved = {**saved, "device": ranks.device}
    compiling(saved.get("compile", False) and (ranks is None or ranks.rank == 0), args)
    plan = train.plan_from_config(saved, rows=rows(ranks))
    own = current(state["config"])[0]  # a checkpoint of the version before the renames too
    if {"compile": False, **own, "device": None} != {**plan.config, "device": None}:
        raise error(f"the checkpoint in '{run_dir}' does not belong to its config.json")
    if ranks is not None and ranks.rank != 0:  # the other ranks compute; rank 0 writes
        return rank_status(train.execute(plan, [], resume=state, group=ranks))
    compile_note(plan, args)
    restore_outputs(args, saved, run_dir)
    every = saved.get("run_options", {}).get("checkpoint_every") or 0
    result, summary = run_plan(
        plan, args, run_dir, resume=state, checkpoint_every=every, group=ranks
    )
    figures_done(args)
    if args.json:
        print(runs.dumps(summary))
    return finish([result], run_dir, args)


def refuse_changes(args) -> None:
    """--resume continues a run as its config.json says: an option that would change it is
    refused (found by parsing the command line again with every default suppressed, so that
    only the options actually given appear)."""
    parser = args.build_parser()  # the command line's own (given by main: no import cycle)
    command_parser = parser._subparsers._group_actions[0].choices[args.command]
    for action in command_parser._actions:
        action.default = argparse.SUPPRESS
    given = vars(parser.parse_args(negatives_glued(args.argv)))
    args.outputs_given = {k: v for k, v in given.items() if k in OUTPUTS}
    changed = sorted(set(given) - RESUME_OPTIONS - set(OUTPUTS))
    if changed:
        flags = ", ".join("--" + k.replace("_", "-") for k in changed)
        raise error(
            f"--resume continues the run exactly as its config.json says; {flags} would change "
            "it (start a new run instead)"
        )


def finished(run_dir) -> dict | None:
    """The summary of a run that has ended (completed or diverged), or None."""
    try:
        summary = json.loads((run_dir / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    ended = isinstance(summary, dict) and summary.get("status") not in (None, "interrupted")
    return summary if ended else None


def say_finished(run_dir, finished: dict, args) -> None:
    from .. import runs

    if args.json:
        print(runs.dumps(finished))
    elif not args.quiet:
        print(
            f"{run_dir} has already finished ({finished['status']} after "
            f"{finished.get('epochs')} epochs); nothing to resume"
        )


def restore_outputs(args, saved: dict, run_dir) -> None:
    """The options that shape a run's output, as its ``config.json`` recorded them."""
    opts = saved.get("run_options", {})
    args.log_every, args.smoothing = opts.get("log_every"), opts.get("smoothing", 0.9)
    args.trial = opts.get("trial", Path(run_dir).name)
    for key, default in OUTPUTS.items():  # the run's own outputs, as it started
        own = opts.get(key, default)
        given = getattr(args, "outputs_given", {}).get(key, own)
        if given != own:  # the same as the run's own is no change (torchrun passes it again)
            flag = "--" + key.replace("_", "-")
            raise error(
                f"--resume continues the run exactly as its config.json says; {flag} would "
                f"change it (it started with {key.replace('_', '-')} = {own}; start a new run "
                "instead)"
            )
        setattr(args, key, own)


def check_files(saved: dict, run_dir) -> None:
    """Refuse to resume a run whose problem, rule or data file changed since it started."""
    from ..planning import changed_files

    changed = changed_files(saved)
    if changed:
        raise error(
            f"cannot resume '{run_dir}': '{changed[0]}' changed since the run started (its "
            "SHA-256 is not the one config.json recorded), so the run would not continue "
            "exactly; start a new run"
        )
