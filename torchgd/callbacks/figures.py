"""Draws a run's figures into its run directory once it has ended and its summary is written.

``loss`` for every run; ``cost`` for the linear model with one weight; ``trajectory`` for
function problems.
"""

from __future__ import annotations

from pathlib import Path


def kinds_for(config: dict) -> list[str]:
    kinds = ["loss"]
    one_weight = isinstance(config["init"].get("w"), float) and not config.get("bias")
    if config["problem"] == "linear" and one_weight:
        kinds.append("cost")
    elif config["data"] is None:
        kinds.append("trajectory")
    return kinds


def draw(result, run_dir, fmt: str = "png", dataset=None) -> list[Path]:
    """Draw a finished run's figures into ``run_dir``; returns the files written.

    Called after ``summary.json`` is written, outside the training loop, so Ctrl-C while
    drawing stops at once and keeps every file finished before it (each figure is written
    whole, atomically)."""
    if not result.epochs:
        return []
    from .. import plots

    summary, written = result.to_json(), []
    for kind in kinds_for(summary["config"]):
        path = Path(run_dir) / f"{kind}.{fmt}"
        extra = {"dataset": dataset} if kind == "cost" else {}
        getattr(plots, kind)(summary, path=path, **extra)  # the figure is not kept
        written.append(path)
    return written
