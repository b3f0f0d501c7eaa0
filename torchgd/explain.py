"""Agreement reports: how far the paths are apart, where, and why, from what the run measured.

Each reason is derived from the records, not assumed:

* **update rule**: at the first step where two paths' parameters differ, the same parameters and
  the same gradient went in and different parameters came out, so the rules round differently.
  For plain SGD the report recomputes that step both ways (``w - lr * g`` and
  ``w.add(g, alpha=-lr)``) and quotes both results.
* **gradient**: the gradients already differed at that step; the formula and autograd compute the
  derivative with different operations (for the linear model: the formula divides the sum by N,
  autograd multiplies each term by the rounded 1/N from the mean's backward).
* **carried forward**: after the first difference, paths start each step from different points.
* **float32**: float32 runs step a float64 manual path alongside, on the same data, and report
  the distance to it (by default for data of at most a million values; ``--shadow`` forces it).
"""

from __future__ import annotations

import math
from itertools import combinations

import torch

from . import compare, problems, rules
from .reasons import Reasons, _grad_reason


def _summary(reports: dict) -> dict:
    keys = ("max_abs", "max_rel", "max_ulp")
    return {k: max((r[k] for r in reports.values()), default=0) for k in keys}


def _first_new(old: dict, rep: dict, steps: list) -> int | None:
    """The block index of a pair's first difference, if it is in this block (none before)."""
    before = old["report"] is not None and old["report"]["first_difference"] is not None
    if before or not rep["first_difference"]:
        return None
    return steps.index(rep["first_difference"]["step"])


BLOCK = 4096  # steps folded into the running report at a time: memory stays bounded


class Agreement(Reasons):
    """The agreement report of a run, built as it goes: ``fold(block)`` after every block of
    steps (a ``records.Block``), ``report()`` at the end (see the module docstring for what
    each reason means).

    Blocks of up to ``BLOCK`` steps are folded with tensor operations: per pair of series the
    running largest differences and where they are, and the few values the reasons quote
    (the two paths' gradients and parameters at the first step they differ, their values where
    the largest ulp distance is). A run of millions of steps holds one block, and a checkpoint
    holds this summary (``state_dict``), not every step. Folding is exact: the report is the same
    whatever the block size (the first of equal maxima is kept, as ``argmax`` keeps it).
    """

    def __init__(
        self, *, problem, names, paths, dtype, hp, labels, params0, grad_checked, batch_sizes,
        hyper_at=None,
    ):  # fmt: skip
        self.problem, self.names, self.paths, self.dtype, self.hp = problem, names, paths, dtype, hp
        self.hyper_at = hyper_at  # hyperparameters that change: those of the step explained
        self.labels, self.grad_checked, self.batch_sizes = labels, grad_checked, batch_sizes
        self.steps = 0
        # the parameters before the next step, per path: "before" of the block's first step
        self._last = params0.to(dtype).expand(len(names), -1).clone()
        self._params, self._grads, self._shadow = {}, {}, None
        self._bound: dict = {}  # per autograd path: where |formula - autograd| / bound peaks
        self._bufs: dict = {}  # per pair of paths: the rule's state compared (momentum, ...)
        # the state's entries: "exp_avg:w[0]", ... ("momentum_buffer:w" for SGD's)
        self.buffer_labels = [f"{s}:{label}" for s in rules.state_names(hp) for label in labels]

    def fold(self, block, bound_at=None) -> None:
        """Fold a block of steps (a ``records.HostBlock``) into the running report.
        ``bound_at(q, before, epoch, batch)``: the rounding bound of autograd path ``q`` whose
        parameters before the step were ``before`` (flat), on that step's batch; asked only
        where the formula and autograd differ and the cheap certificate does not settle it
        (see ``bounds``)."""
        if not len(block):
            return
        P, G, R = block.params, block.grads, block.formulas
        before = self._before(P)
        B = self.bounds(block, R, G, before, bound_at) if bound_at and self.grad_checked else None
        self._fold(block.steps, block.epochs, P, G, R, B, block.bufs, block.shadow64, before,
                   block.lrs)  # fmt: skip

    def _before(self, P):
        """The parameters each step of a block started from: the last block's last, then P's."""
        return torch.cat([self._last[None], P[:-1]])

    def bounds(self, block, R, G, before, bound_at):
        """Each autograd path's rounding bound on formula~autograd, per step of the block.

        The bound costs one more pass over the batch, as much as the step itself on big data,
        so it is computed only where a cheap test cannot settle the question: where A = G
        exactly, NaN stands for it (a difference of 0 needs no bound); for data problems where
        ``|A - G| <= L = 2 k u |A|`` the step is within the bound already, because the
        bound is at least ``2 gamma S/N`` and ``S/N >= |A| / (1 + gamma)`` (S = sum |t_n|,
        gamma = gamma_k, k = ``problems.terms_summed(N)``, the error model of
        ``Linear.grad_bound``), and ``gamma / (1 + gamma) = k u``; L, a lower estimate of the
        bound, then stands for it (the ratio reported is an upper estimate). None when a bound
        is unavailable."""
        lazy = getattr(self.problem, "needs_data", False)  # a function's bound costs nothing
        u = torch.finfo(self.dtype).eps / 2
        idx = [self.names.index(p) for p in self.grad_checked]
        A, Gq = R, G[:, idx]
        B = torch.full_like(A, math.nan)
        need = ((A - Gq) != 0).any(-1)  # [T, Q]; inf - inf is NaN: asked too
        if lazy:
            rows = getattr(self.problem, "chunk_rows", None) or problems.CHUNK_ROWS
            k = torch.tensor(
                [problems.terms_summed(n, rows) * u for n in block.sizes], dtype=A.dtype
            )[:, None, None]
            low = 2 * k * A.abs()
            settled = (k < 1) & ((A - Gq).abs() <= low).all(-1, keepdim=True)
            B = torch.where(settled & need[..., None], low, B)
            need &= ~settled[..., 0]
        for t, q in need.nonzero().tolist():
            bound = bound_at(q, before[t, idx[q]], block.epochs[t], block.batches[t])
            if bound is None:
                return None
            B[t, q] = bound.to(B.dtype)
        return B

    def _fold(self, steps, epochs, P, G, R, B, F, R64, before, lrs=None) -> None:
        labels = self.labels
        self.steps += len(steps)
        self._last = P[-1].clone()
        for i, j in combinations(range(len(self.names)), 2):
            key = f"{self.names[i]}~{self.names[j]}"
            rep = compare.pair_report(P[:, i], P[:, j], steps, epochs, labels)
            old = self._params.get(key, {"report": None})
            t = _first_new(old, rep, steps)
            if t is not None:
                old["first"] = {
                    "step": steps[t],
                    "epoch": epochs[t],
                    "grads": (G[t, i].clone(), G[t, j].clone()),
                    "before": (before[t, i].clone(), before[t, j].clone()),
                    "after": (P[t, i].clone(), P[t, j].clone()),
                    "lrs": (lrs[t][i], lrs[t][j]) if lrs else None,  # where they can change
                }
            if old["report"] is None or compare.greater(rep["max_ulp"], old["report"]["max_ulp"]):
                at = rep["max_ulp_at"]
                if at is not None:
                    t, d = steps.index(at["step"]), labels.index(at["param"])
                    old["peak"] = {
                        "values": (P[t, i, d].item(), P[t, j, d].item()),
                        "scale": P[t, i].abs().max().item(),
                    }
            old["report"] = compare.merge_reports(old["report"], rep)
            self._params[key] = old
        for q, name in enumerate(self.grad_checked):
            rep = compare.pair_report(R[:, q], G[:, self.names.index(name)], steps, epochs, labels)
            self._grads[name] = compare.merge_reports(self._grads.get(name), rep)
        if self.grad_checked and B is not None:
            self._fold_bounds(R, B, G, steps, labels)
        if F is not None:
            self._fold_buffers(F, G, steps, epochs, self.buffer_labels)
        if R64 is not None:
            self._shadow = self._shadow or {}
            for i, name in enumerate(self.names):
                rep = compare.pair_report(P[:, i].double(), R64, steps, epochs, labels)
                self._shadow[name] = compare.merge_reports(self._shadow.get(name), rep)

    def _fold_bounds(self, R, B, G, steps, labels) -> None:
        """The largest |formula - autograd| / bound of the block, per autograd path."""
        D = len(labels)
        for q, name in enumerate(self.grad_checked):
            g = G[:, self.names.index(name)]
            diff = (R[:, q] - g).abs().double()
            ratio = torch.where(diff == 0, torch.zeros_like(diff), diff / B[:, q].double())
            ratio = torch.nan_to_num(ratio, nan=math.inf)
            t, d = divmod(int(ratio.reshape(-1).argmax()), D)
            old = self._bound.get(name)
            if old is None or ratio[t, d].item() > old["ratio"]:
                self._bound[name] = {
                    "ratio": ratio[t, d].item(),
                    "step": steps[t],
                    "param": labels[d],
                    "formula": R[t, q, d].item(),
                    "autograd": g[t, d].item(),
                    # not computed where formula and autograd agreed exactly (NaN there)
                    "bound": None if math.isnan(B[t, q, d].item()) else B[t, q, d].item(),
                }

    def _fold_buffers(self, F, G, steps, epochs, labels) -> None:
        """The rule's state compared per pair, and the first step each pair's differ."""
        for i, j in combinations(range(len(self.names)), 2):
            key = f"{self.names[i]}~{self.names[j]}"
            rep = compare.pair_report(F[:, i], F[:, j], steps, epochs, labels)
            old = self._bufs.get(key, {"report": None})
            t = _first_new(old, rep, steps)
            if t is not None:
                old["first"] = {
                    "step": steps[t],
                    "grads": (G[t, i].clone(), G[t, j].clone()),
                    "state": rep["first_difference"]["param"].split(":")[0],
                }
            old["report"] = compare.merge_reports(old["report"], rep)
            self._bufs[key] = old

    def state_dict(self) -> dict:
        """The running summary (what a checkpoint keeps instead of every step's record; the
        run folds its last block first)."""
        return {
            "steps": self.steps,
            "last": self._last.clone(),
            "params": self._params,
            "grads": self._grads,
            "ref64": self._shadow,
            "bound": self._bound,
            "bufs": self._bufs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.steps, self._params, self._grads, self._shadow = (
            state[k] for k in ("steps", "params", "grads", "ref64")
        )
        self._bound, self._bufs = state.get("bound", {}), state.get("bufs", {})
        self._last = state["last"].to(self.dtype).clone()

    def report(self) -> dict:
        report = {
            "steps": self.steps,
            "max_abs": 0.0,
            "max_rel": 0.0,
            "max_ulp": 0,
            "params": {},
            "grad": None,
            "reasons": [],
            "bit_identical": True,
        }
        if not self.steps:
            return report
        if self._bufs:
            report["buffers"] = {key: ev["report"] for key, ev in self._bufs.items()}
            report["state_max_ulp"] = _summary(report["buffers"])["max_ulp"]
        for key, ev in self._params.items():
            rep = report["params"][key] = ev["report"]
            if rep["max_ulp"] == 0:
                report["reasons"] += self._state_only_reasons(key)
                continue
            report["reasons"] += self._param_reasons(key, rep, ev)
        report.update(_summary(report["params"]))

        if self.grad_checked:
            pairs = {f"analytic~{name}": rep for name, rep in self._grads.items()}
            report["grad"] = {**_summary(pairs), "pairs": pairs}
            if self._bound:
                worst = max(self._bound.values(), key=lambda b: b["ratio"])
                report["grad"]["bound"] = worst
            if report["grad"]["max_ulp"] > 0:
                reason = _grad_reason(
                    self.problem,
                    self.dtype,
                    self.batch_sizes,
                    report["grad"]["max_rel"],
                    report["grad"].get("bound"),
                )
                report["reasons"].append(
                    {"between": "analytic~autograd", "kind": "gradient", "reason": reason}
                )

        if self._shadow is not None:
            self._float32_reason(report)
        self._evaluations(report)
        report["nonfinite"] = not all(
            math.isfinite(r["max_abs"])
            for r in [*report["params"].values(), *report.get("buffers", {}).values()]
        )
        report["bit_identical"] = (
            not report["nonfinite"]
            and report["max_ulp"] == 0
            and (report["grad"] is None or report["grad"]["max_ulp"] == 0)
            and not report.get("state_max_ulp")
        )
        return report
