"""Draws a run's figures into its run directory once it has ended and its summary is written.

``loss`` for every run; ``cost`` for the linear model with one weight (a curve; contours over
(w, b) with a bias); ``trajectory`` for function problems.
"""

from __future__ import annotations

from pathlib import Path


def kinds_for(config: dict) -> list[str]:
    kinds = ["loss"]
    one_weight = isinstance(config["init"].get("w"), float)  # with a bias: cost over (w, b)
    if config["problem"] == "linear" and one_weight:
        kinds.append("cost")
    elif config["data"] is None:
        kinds.append("trajectory")
    return kinds


def draw(drawer, summary: dict, run_dir, fmt: str = "png", group=None, dataset=None) -> None:
    """Queue a finished run's figures into ``run_dir`` (see ``torchgd.drawing``).

    Asked for after ``summary.json`` is written, outside the training loop, so Ctrl-C while
    drawing stops at once and keeps every file finished before it (each figure is written
    whole, atomically)."""
    if not summary["epochs"]:
        return
    run = {k: v for k, v in summary.items() if k != "run_dir"}
    for kind in kinds_for(summary["config"]):
        extra = {}
        if kind == "cost" and dataset is not None:  # what the curve needs, not the data
            from ..data import moments

            extra["moments"] = moments(dataset.x, dataset.y)
        drawer.draw(kind, Path(run_dir) / f"{kind}.{fmt}", group=group, run=run, **extra)
