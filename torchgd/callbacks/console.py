"""The console view: the lecture's own lines, then an agreement table.

Predict (before training) input: 5, forward: 5.0
Progress: epoch=100, w=1.9999999999999998, loss=7.888609052210118e-31
Predict (after training) input: 5, forward: 9.999999999999998
"""

from __future__ import annotations

import sys

import torch

from .. import rules
from . import Callback

PREDICT_AT = 5


SHOWN = 8  # a parameter with more entries is summarised in a Progress line


def _fmt(t: torch.Tensor) -> str:
    return repr(t.item()) if t.numel() == 1 and t.dim() == 0 else repr(t.tolist())


def _fmt_param(t: torch.Tensor) -> str:
    """A parameter for a Progress line: every entry up to ``SHOWN`` of them; beyond, the first
    four, how many there are and the norm (``--json`` and ``summary.json`` hold them all):
    ``[0.5, -1.25, 0.75, 2.0, ... 1000 values, norm 27.31]``."""
    if t.numel() <= SHOWN:
        return _fmt(t)
    flat = t.detach().reshape(-1)
    first = ", ".join(repr(v) for v in flat[:4].tolist())
    norm = torch.linalg.vector_norm(flat.double()).item()
    return f"[{first}, ... {t.numel()} values, norm {norm:.6g}]"


def describe(config: dict, dataset=None) -> str:
    """One line saying what a run runs: problem, data, batching, lr, epochs, paths, device."""
    c = config
    if c["problem"] == "linear":
        what = "linear model y = x @ w" + (" + b" if c.get("bias") else "")
    else:
        what = c["problem"]
    if dataset is not None:
        n, d = len(dataset), (dataset.x.shape[1] if dataset.x.dim() > 1 else 1)
        what += f" on {c['data']} ({n:,} samples, {d} feature{'s' * (d != 1)})"
        order = "shuffled" if c.get("shuffle") else "in order"
        how = c["batching"] + ("" if c["batching"] == "batch" else f" {order}")
        length = f"{c['epochs']:,} epoch{'s' * (c['epochs'] != 1)}"
    else:
        how = "gradient descent"
        length = f"{c['epochs']:,} step{'s' * (c['epochs'] != 1)}"

    def value(v):
        if isinstance(v, list) and v and all(u == v[0] for u in v):
            return f"{v[0]} (all {len(v)})"
        return str(v)

    start = ", ".join(f"{k}={value(v)}" for k, v in c["init"].items())
    extras = rules.words(c)  # adam, betas 0.8,0.99, amsgrad, ...
    if c.get("optimizer", "sgd") != "sgd":  # "sgd in order, with adam (betas ...)"
        rule = extras.pop(0) + (f" ({', '.join(extras)})" if extras else "")
        extras = []
        how = f"with {rule}" if dataset is None else f"{how}, with {rule}"
    if c.get("noise"):
        extras.append(f"gradient noise {c['noise']}")
    lr = f"lr {c['lr']}"
    if c.get("scheduler"):
        from ..schedulers import lr_words

        lr = lr_words(c["scheduler"], c["lr"], c.get("scheduler_every", "epoch"))
        if "momentum cycled" in lr:  # the scheduler's momentum replaces the rule's own
            extras = [e for e in extras if not e.startswith(("momentum ", "betas "))]
    elif c.get("hyper_at"):
        lr += f" changed by {c['hyper_at']}"
    parts = [what, how, lr, length] + extras
    if start:
        parts.append(f"from {start}")
    parts.append(f"paths {'/'.join(c['paths'])} ({c['spelling']} spelling)")
    parts.append(f"{c['device']} {c['dtype']}")
    return "Training " + ", ".join(parts)


def default_every(epochs: int) -> int:
    """A steady cadence of 10 to 99 lines: every 10th epoch up to 999 epochs, every 100th up to
    9,999, every 1,000th up to 99,999, ... (and always the last)."""
    return 10 ** max(1, len(str(max(epochs, 1))) - 2)


class Console(Callback):
    """Prints the lecture's lines for one path (the first selected)."""

    def __init__(
        self,
        problem,
        path: str,
        epochs: int,
        every: int | None = None,
        stream=None,
        progress=None,
        resumed: bool = False,
    ):
        self.problem, self.path, self.epochs = problem, path, epochs
        self.every = every or default_every(epochs)
        self.stream = stream or sys.stdout
        self.progress = progress  # a Progress bar to print through, if any
        self.predicts = problem.name == "linear"
        self.resumed = resumed  # a resumed run starts from its checkpoint, not from scratch

    def print(self, line: str) -> None:
        if self.progress is not None:
            self.progress.write(line, self.stream)
        else:
            print(line, file=self.stream, flush=True)

    def predict(self, params: dict) -> str:
        x = torch.tensor(PREDICT_AT, dtype=params["w"].dtype, device=params["w"].device)
        return _fmt(self.problem.forward(params, x))

    def on_start(self, config, paths):
        self.paths = paths
        if self.predicts and not self.resumed and paths[self.path].params["w"].dim() == 0:
            self.print(
                f"Predict (before training) input: {PREDICT_AT}, "
                f"forward: {self.predict(paths[self.path].values())}"
            )

    def on_epoch(self, epoch):
        e = epoch.epoch
        if e % self.every and e != self.epochs and self.every != 1:
            return
        values = ", ".join(f"{k}={_fmt_param(v)}" for k, v in epoch.params[self.path].items())
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


def _near_zero(result) -> str:
    """``", near zero"`` when the largest ulp count was counted at a value far smaller than
    the parameters (an ulp there is tiny, so a difference the size of rounding elsewhere
    counts millions of them): the spacing the count implies, max_abs / max_ulp, is below a
    thousandth of the spacing at the largest parameter."""
    import math

    a = result.agreement
    finals = [v for p in result.paths.values() for v in _flat_floats(p["params"])]
    largest = max((abs(v) for v in finals if v is not None and math.isfinite(v)), default=0.0)
    if not a["max_ulp"] or not largest:
        return ""
    eps = 2.0**-52 if result.config.get("dtype", "float64") == "float64" else 2.0**-23
    return ", near zero" if a["max_abs"] / a["max_ulp"] < eps * largest / 1000 else ""


def _flat_floats(params: dict) -> list:
    out = []
    for v in params.values():
        stack = [v]
        while stack:
            item = stack.pop()
            if isinstance(item, list):
                stack.extend(item)
            else:
                out.append(item)
    return out


def _differences(result) -> str:
    """The headline's differences: parameters (abs, relative, ulp), the rule's state,
    gradients (and where their ulps were counted near zero, the rounding bound)."""
    a = result.agreement
    ulps = f"{a['max_ulp']} ulp{_near_zero(result)}"
    if a["max_ulp"] == 2**63 - 1:  # ulp_distance saturates: opposite signs (or a nan)
        ulps = "opposite signs: more ulps than int64 counts"
    text = f"parameters differ by at most {_num(a['max_abs'])} ({_num(a['max_rel'])} "
    text += f"relative, {ulps})"
    if a["max_ulp"] == 0:
        text = "parameters bit for bit"
    if a.get("state_max_ulp"):
        text += f", {a['state_max_ulp']} ulp in the rule's state"
    if a["grad"]:
        g = a["grad"]
        bound = g.get("bound") or {}
        r = bound.get("ratio")
        # a gradient near zero (at an optimum its terms cancel) counts ulps of a tiny
        # number: billions of them for a difference the size of rounding elsewhere; the
        # rounding bound, not the ulps, says whether it is rounding
        near = g["max_ulp"] >= 2**52 or (g["max_ulp"] > 10**6 and r is not None and r <= 1)
        if g["max_ulp"]:
            text += f", gradients by {_num(g['max_abs'])} ({g['max_ulp']} ulp"
            text += ", near zero)" if near else ")"
        else:
            text += ", the gradient check bit for bit"
        if r and g["max_ulp"]:
            text += (
                f", within the rounding bound (at most {r:.3g} of it)"
                if r <= 1
                else f", {r:.3g} times the rounding bound: more than rounding"
            )
    return text


def agreement_table(result) -> str:
    """A short table: every compared pair, its largest differences, and the reasons."""
    a = result.agreement
    cfg = result.config
    rows = [("params " + k, r) for k, r in a["params"].items()]
    rows += [("state " + k, r) for k, r in a.get("buffers", {}).items()]  # the rule's
    if a["grad"]:
        rows += [("grad " + k, r) for k, r in a["grad"]["pairs"].items()]
    rows += [("lr " + k, r) for k, r in (a.get("lr") or {}).get("pairs", {}).items()]
    steps = f"{a['steps']} step{'s' * (a['steps'] != 1)}"
    head = f"Agreement over {steps} ({cfg['dtype']} on {cfg['device']}): "
    if not rows:  # one path, no autograd: nothing was compared (what was counted, said)
        return "\n".join([head + (
            f"nothing to compare: one path ({', '.join(cfg['paths'])}) and no gradient check "
            "(add autograd or optim to --paths)"
        ), *(f"  why ({r['between']}): {r['reason']}" for r in a["reasons"])])  # fmt: skip
    if a.get("nonfinite"):
        head += (
            "values left the finite numbers (nan or inf): where they did, abs and rel say inf "
            "or nan and ulps mean nothing"
        )
    elif a["bit_identical"]:
        head += "bit for bit" + (" at every step" if rows else "")
    else:
        head += _differences(result)
    if (a.get("lr") or {}).get("max_ulp"):
        head += f"; the learning rates differ by up to {a['lr']['max_ulp']} ulp (the lr rows)"
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


class Samples(Callback):
    """The lecture's per-sample line of its SGD program, for one path, every step::

        print('\t x: {}, y: {}, grad: {}'.format(x, y, grad))

    (``--verbose`` with ``--batching sgd`` on one feature: the gradient each sample gives,
    before its update.)"""

    def __init__(self, path: str, console: Console):
        self.path, self.console = path, console

    def on_step(self, info):
        x, y = info.batch
        grad = info.grads[self.path]["w"]
        self.console.print(f"\t x: {_fmt(x[0])}, y: {_fmt(y[0])}, grad: {_fmt(grad)}")
