"""Draws a run's figures into its run directory when it ends (before TensorBoard picks them up).

``loss`` for every run; ``cost`` for the linear model with one weight; ``trajectory`` for
function problems.
"""

from __future__ import annotations

from pathlib import Path

from . import Callback


def kinds_for(config: dict) -> list[str]:
    kinds = ["loss"]
    one_weight = isinstance(config["init"].get("w"), float) and not config.get("bias")
    if config["problem"] == "linear" and one_weight:
        kinds.append("cost")
    elif config["data"] is None:
        kinds.append("trajectory")
    return kinds


class Figures(Callback):
    def __init__(self, run_dir, fmt: str = "png", dataset=None):
        self.run_dir, self.fmt, self.dataset = Path(run_dir), fmt, dataset
        self.written: list[Path] = []

    def on_end(self, result):
        if not result.epochs:
            return
        from .. import plots

        summary = result.to_json()
        for kind in kinds_for(summary["config"]):
            path = self.run_dir / f"{kind}.{self.fmt}"
            extra = {"dataset": self.dataset} if kind == "cost" else {}
            getattr(plots, kind)(summary, path=path, **extra)  # the figure is not kept
            self.written.append(path)
