"""The console view: the lecture's own lines, then an agreement table.

Predict (before training) input: 5, forward: 5.0
Progress: epoch=100, w=1.9999999999999998, loss=7.888609052210118e-31
Predict (after training) input: 5, forward: 9.999999999999998
"""

from __future__ import annotations

import sys

import torch

from . import Callback

PREDICT_AT = 5


def _fmt(t: torch.Tensor) -> str:
    return repr(t.item()) if t.numel() == 1 and t.dim() == 0 else repr(t.tolist())


class Console(Callback):
    """Prints the lecture's lines for one path (the first selected)."""

    def __init__(self, problem, path: str, epochs: int, every: int = 10, stream=None):
        self.problem, self.path, self.epochs, self.every = problem, path, epochs, every
        self.stream = stream or sys.stdout
        self.predicts = problem.name == "linear"

    def print(self, line: str) -> None:
        print(line, file=self.stream, flush=True)

    def predict(self, params: dict) -> str:
        x = torch.tensor(PREDICT_AT, dtype=params["w"].dtype, device=params["w"].device)
        return _fmt(self.problem.forward(params, x))

    def on_start(self, config, paths):
        self.paths = paths
        if self.predicts and paths[self.path].params["w"].dim() == 0:
            self.print(
                f"Predict (before training) input: {PREDICT_AT}, "
                f"forward: {self.predict(paths[self.path].values())}"
            )

    def on_epoch(self, epoch):
        e = epoch.epoch
        if e % self.every and e != self.epochs and self.every != 1:
            return
        values = ", ".join(f"{k}={_fmt(v)}" for k, v in epoch.params[self.path].items())
        self.print(f"Progress: epoch={e}, {values}, loss={_fmt(epoch.losses[self.path])}")

    def on_end(self, result):
        params = self.paths[self.path].values()
        if self.predicts and params["w"].dim() == 0:
            self.print(
                f"Predict (after training) input: {PREDICT_AT}, forward: {self.predict(params)}"
            )


def _num(v) -> str:
    if isinstance(v, float):
        return "0" if v == 0 else f"{v:.3g}"
    return str(v)


def agreement_table(result) -> str:
    """A short table: every compared pair, its largest differences, and the reasons."""
    a = result.agreement
    cfg = result.config
    rows = [("params " + k, r) for k, r in a["params"].items()]
    rows += [("buffer " + k, r) for k, r in a.get("buffers", {}).items()]  # momentum
    if a["grad"]:
        rows += [("grad " + k, r) for k, r in a["grad"]["pairs"].items()]
    head = f"Agreement over {a['steps']} steps ({cfg['dtype']} on {cfg['device']}): "
    if a["bit_identical"]:
        head += "bit for bit" + (" at every step" if rows else "")
    else:
        head += f"largest difference {a['max_ulp']} ulp in parameters"
        if a["grad"]:
            head += f", {a['grad']['max_ulp']} ulp in gradients"
    lines = [head]
    if rows:
        width = max(len(r[0]) for r in rows)
        lines.append(
            f"  {'compared':<{width}}  {'max abs':>9}  {'max rel':>9}  {'max ulp':>7}  "
            "first differs"
        )
        for label, r in rows:
            first = r["first_difference"]
            where = f"step {first['step']} ({first['param']})" if first else "never"
            lines.append(
                f"  {label:<{width}}  {_num(r['max_abs']):>9}  {_num(r['max_rel']):>9}  "
                f"{r['max_ulp']:>7}  {where}"
            )
    for reason in a["reasons"]:
        lines.append(f"  why ({reason['between']}): {reason['reason']}")
    return "\n".join(lines)
