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
from .device import dtype_name

# a gradient this many float eps apart (relative) is not rounding any more: the formula is wrong
FORMULA_SUSPECT_EPS = 1e6


def _rule(paths, name) -> str:
    return "torch" if name == "optim" else paths[name].rule


def _update_reason(paths, a, b, hp, w, g, step) -> str:
    ra, rb = _rule(paths, a), _rule(paths, b)
    head = (
        f"at step {step} both paths had the same parameters and the same gradient, yet "
        f"different parameters came out: the update rules compute the step differently"
    )
    if {ra, rb} == {"textbook", "torch"} or {ra, rb} == {"textbook", "torch-exact"}:
        return f"{head}. {rules.of(hp).explain_update(hp, w, g)}"
    return (
        f"{head} ({ra} vs {rb}); the same inputs through the same operations should not "
        f"differ, so this is unexplained: please report it"
    )


def _buffer_rule_reason(paths, a, b, hp) -> str:
    ra, rb = _rule(paths, a), _rule(paths, b)
    if "textbook" in (ra, rb) and ra != rb:
        return rules.of(hp).explain_state(hp)
    return (
        f"the same operations ({ra} vs {rb}) on the same inputs should not differ, so this "
        f"is unexplained: please report it"
    )


def _beyond_rounding(first: dict, dtype) -> str:
    """Said when the first step the paths differ, from the same parameters and gradient, puts
    them further apart than rounding can: a millionth of the step itself and a thousand ulps
    of the parameters. Then the two compute different formulas (a user's rule that is wrong,
    or the textbook's eps placement), which no rounding explains."""
    if "after" not in first:  # a summary from before this check
        return ""
    (pa, pb), (wa, _) = first["after"], first["before"]
    gap = (pa - pb).abs().max().item()
    step = (pb - wa).abs().max().item()
    ulp = torch.finfo(dtype).eps * max(pa.abs().max().item(), pb.abs().max().item(), 1e-300)
    if not (gap > 1e-6 * step and gap > 1e3 * ulp):
        return ""
    return (
        f". That first step put them {gap:.3g} apart, {gap / step:.3g} of the step itself: far "
        f"beyond rounding, so the two compute different formulas, not one formula rounded "
        f"differently"
    )


def _via(state: str) -> str:
    """The state a difference travelled through, in words ("momentum buffer", "exp_avg")."""
    return "momentum buffer" if state == "momentum_buffer" else state


def _grad_reason(problem, dtype, batch_sizes, max_rel, bound=None) -> str:
    eps = torch.finfo(dtype).eps
    if bound is not None:
        if bound["ratio"] > 1:
            most = "?" if bound["bound"] is None else f"{bound['bound']:.3g}"
            return (
                f"at step {bound['step']} the formula gives d/d{bound['param']} = "
                f"{bound['formula']!r} and autograd {bound['autograd']!r}: "
                f"{abs(bound['formula'] - bound['autograd']):.3g} apart, "
                f"{bound['ratio']:.3g} times the most that rounding can explain there "
                f"({most}, from the magnitudes of the summed terms): the formula "
                f"does not compute the derivative of the loss; check it"
            )
        within = (
            f" (every step within the rounding bound derived from the magnitudes of the summed "
            f"terms: at most {bound['ratio']:.2g} of it, at step {bound['step']})"
        )
    elif max_rel > FORMULA_SUSPECT_EPS * eps:
        return (
            f"the analytic gradient is {max_rel:.3g} (relative) away from autograd's, far "
            f"beyond rounding in {dtype_name(dtype)} (eps {eps:.3g}): the formula "
            f"does not compute the derivative of the loss; check it"
        )
    else:
        within = ""
    if problem.name == "linear":
        odd = sorted({n for n in batch_sizes if n & (n - 1)})
        r = "x_n.w + b - y_n" if getattr(problem, "bias", False) else "x_n*w - y_n"
        text = (
            f"the formula sums 2*x_n*({r}) and divides by N; autograd's backward "
            f"multiplies the incoming 1/N by 2*({r}) (the square's derivative) and by "
            "x_n (the product's), then sums: the same derivative, rounded at other places"
        )
        if getattr(problem, "bias", False):
            text += f" (and for b the sum of 2*({r}) without the x_n)"
        if odd:
            text += (
                f"; 1/N is not exact in binary for N = {', '.join(map(str, odd))}, so "
                f"autograd's per-term 1/N carries a rounding the single division does not"
            )
        rows = getattr(problem, "chunk_rows", None)
        if rows and max(batch_sizes) > rows:
            text += (
                f"; batches of more than {rows:,} samples are summed chunk by chunk, the "
                f"formula's sums as dot products and autograd's by its backward's kernels, "
                f"in a different order"
            )
        return text + within
    return (
        f"the hand-written formula and autograd's chain rule through "
        f"f ({getattr(problem, 'description', problem.name)}) compute the derivative with "
        f"different operations in a different order, each rounded to {dtype_name(dtype)} (max "
        f"relative difference {max_rel:.3g}, eps {eps:.3g}): rounding, not a wrong formula"
        f"{within}"
    )


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


class Agreement:
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
        self, *, problem, names, paths, dtype, hp, labels, params0, grad_checked, batch_sizes
    ):
        self.problem, self.names, self.paths, self.dtype, self.hp = problem, names, paths, dtype, hp
        self.labels, self.grad_checked, self.batch_sizes = labels, grad_checked, batch_sizes
        self.steps = 0
        # the parameters before the next step, per path: "before" of the block's first step
        self._last = params0.to(dtype).expand(len(names), -1).clone()
        self._params, self._grads, self._ref64 = {}, {}, None
        self._bound: dict = {}  # per autograd path: where |formula - autograd| / bound peaks
        self._bufs: dict = {}  # per pair of paths: the rule's state compared (momentum, ...)
        # the state's entries: "exp_avg:w[0]", ... ("momentum_buffer:w" for SGD's)
        self.buffer_labels = [f"{s}:{label}" for s in rules.state_names(hp) for label in labels]

    def add_records(self, records) -> None:
        """Fold a list of ``records.Record`` (what checkpoints from before the running summary
        kept) as one block."""
        if not records:
            return
        T, D = len(records), len(self.labels)

        def rows(key, *shape, dtype=self.dtype):
            return torch.tensor([getattr(r, key) for r in records], dtype=dtype).reshape(T, *shape)

        bounds = rows("bounds", -1, D) if all(r.bounds is not None for r in records) else None
        P = rows("params", -1, D)
        self._fold(
            [r.step for r in records],
            [r.epoch for r in records],
            P,
            rows("grads", -1, D),
            rows("refs", -1, D),
            bounds,
            rows("bufs", len(self.names), -1) if records[0].bufs is not None else None,
            rows("ref64", D, dtype=torch.float64) if records[0].ref64 is not None else None,
            self._before(P),
        )

    def fold(self, block, bound_at=None) -> None:
        """Fold a block of steps (a ``records.HostBlock``) into the running report.
        ``bound_at(q, before, epoch, batch)``: the rounding bound of autograd path ``q`` whose
        parameters before the step were ``before`` (flat), on that step's batch; asked only
        where the formula and autograd differ and the cheap certificate does not settle it
        (see ``bounds``)."""
        if not len(block):
            return
        P, G, R = block.params, block.grads, block.refs
        before = self._before(P)
        B = self.bounds(block, R, G, before, bound_at) if bound_at and self.grad_checked else None
        self._fold(block.steps, block.epochs, P, G, R, B, block.bufs, block.ref64, before)

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

    def _fold(self, steps, epochs, P, G, R, B, F, R64, before) -> None:
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
                    "grads": (G[t, i].clone(), G[t, j].clone()),
                    "before": (before[t, i].clone(), before[t, j].clone()),
                    "after": (P[t, i].clone(), P[t, j].clone()),
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
            self._ref64 = self._ref64 or {}
            for i, name in enumerate(self.names):
                rep = compare.pair_report(P[:, i].double(), R64, steps, epochs, labels)
                self._ref64[name] = compare.merge_reports(self._ref64.get(name), rep)

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
            "ref64": self._ref64,
            "bound": self._bound,
            "bufs": self._bufs,
        }

    def load_state_dict(self, state: dict) -> None:
        self.steps, self._params, self._grads, self._ref64 = (
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

        if self._ref64 is not None:
            self._float32_reason(report)
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

    def _float32_reason(self, report: dict) -> None:
        """The distance of the float32 paths to their float64 shadow, and why."""
        report["float64_reference"] = {
            n: {k: r[k] for k in ("max_abs", "max_rel", "max_abs_at")}
            for n, r in self._ref64.items()
        }
        worst = max(r["max_abs"] for r in self._ref64.values())
        reason = (
            f"float32 rounds every operation to 24 significant bits (unit roundoff "
            f"{torch.finfo(self.dtype).eps / 2:.2g}) where float64 keeps 53 "
            f"(1.1e-16): the float32 paths end up to {worst:.3g} away from the same "
            f"run in float64, and paths that round at different places drift "
            f"further apart"
        )
        report["reasons"].append({"between": "float32~float64", "kind": "dtype", "reason": reason})

    def _param_reasons(self, key: str, rep: dict, ev: dict) -> list:
        a, b = key.split("~")
        first = ev["first"]
        (ga, gb), (wa, wb) = first["grads"], first["before"]
        same_in = bool((compare.ulp_distance(ga, gb) == 0).all()) and bool(
            (compare.ulp_distance(wa, wb) == 0).all()
        )
        buf = self._bufs.get(key, {}).get("first")
        if buf is not None and buf["step"] < first["step"]:
            return self._buffer_reasons(key, rep, first, buf)
        if same_in:
            reason = _update_reason(self.paths, a, b, self.hp, wa, ga, first["step"])
            reason += _beyond_rounding(first, self.dtype)
            kind = "update rule"
        else:
            gulp = int(compare.ulp_distance(ga, gb).max())
            reason = (
                f"the gradients already differed at step {first['step']} ({gulp} ulp: see the "
                f"gradient check), and the update carried that into the parameters"
            )
            if self.paths[a].fused is not None or self.paths[b].fused is not None:
                reason += (
                    "; the manual path (--compile) sums a big batch in one compiled loop, "
                    "products and sums in float64 and rounded once, where the other path "
                    "rounds every sum to its dtype"
                )
            kind = "gradient"
        peak = rep["max_ulp_at"]["step"]
        if peak > first["step"]:
            reason += (
                f"; from step {first['step']} on the paths start each step from different "
                f"points, so the difference is carried forward (largest, "
                f"{rep['max_ulp']} ulp, at step {peak})"
            )
        return [{"between": key, "kind": kind, "reason": reason}, *self._near_zero(key, rep, ev)]

    def _state_only_reasons(self, key: str) -> list:
        """Two paths whose parameters stayed equal while their rule's state did not: why the
        state differs, and that it has not (yet) reached the parameters."""
        ev = self._bufs.get(key)
        if ev is None or ev["report"]["max_ulp"] == 0:
            return []
        a, b = key.split("~")
        buf, rep = ev["first"], ev["report"]
        state = buf.get("state", "momentum_buffer")
        gulp = int(compare.ulp_distance(*buf["grads"]).max())
        how = (
            f"the gradients differed at step {buf['step']} ({gulp} ulp: see the gradient check)"
            if gulp
            else _buffer_rule_reason(self.paths, a, b, self.hp)
        )
        reason = (
            f"the rule's state first differs at step {buf['step']} ({buf.get('state')}, "
            f"largest {rep['max_ulp']} ulp): {how}; the parameters stayed equal, bit for "
            f"bit: a relative difference of at most {rep['max_rel']:.2g} in the state moved "
            f"no step by as much as the parameters' rounding"
        )
        return [
            {
                "between": key,
                "kind": "gradient" if gulp else "update rule",
                "reason": reason,
                "via": _via(state),
            }
        ]

    def _buffer_reasons(self, key: str, rep: dict, first: dict, buf: dict) -> list:
        """The first difference between two paths entered a momentum buffer, before the
        parameters differed: say where it came from and how it travelled."""
        a, b = key.split("~")
        ga, gb = buf["grads"]
        gulp = int(compare.ulp_distance(ga, gb).max())
        if gulp:
            kind = "gradient"
            how = (
                f"the gradients differed at step {buf['step']} ({gulp} ulp: see the gradient "
                f"check) while the parameters were still equal"
            )
        else:
            kind = "update rule"
            how = (
                f"at step {buf['step']} both paths had the same parameters, gradient and "
                f"state, yet their states came out different: "
                + _buffer_rule_reason(self.paths, a, b, self.hp)
            )
        state = buf.get("state", "momentum_buffer")
        formula = getattr(rules.of(self.hp), "FORMULAS", {}).get(state)
        reason = (
            f"{how}; the rule's {state} ({formula or 'its state'}) carried the "
            f"difference, and it reached the parameters at step {first['step']}"
        )
        peak = rep["max_ulp_at"]["step"]
        if peak > first["step"]:
            reason += (
                f"; from then on the paths start each step from different points (largest, "
                f"{rep['max_ulp']} ulp, at step {peak})"
            )
        ev = self._params[key]
        return [
            {"between": key, "kind": kind, "reason": reason, "via": _via(state)},
            *self._near_zero(key, rep, ev),
        ]

    def _near_zero(self, key: str, rep: dict, ev: dict) -> list:
        out = []
        (va, vb), scale = ev["peak"]["values"], ev["peak"]["scale"]
        if max(abs(va), abs(vb)) < torch.finfo(self.dtype).eps ** 0.5 * scale:
            at = rep["max_ulp_at"]
            out.append(
                {
                    "between": key,
                    "kind": "near zero",
                    "reason": (
                        f"the largest ulp distance ({rep['max_ulp']}) is at {at['param']} = "
                        f"{va:.3g} vs {vb:.3g}, near zero, where floats are densely spaced: "
                        f"an absolute difference of {abs(va - vb):.3g} (the parameters' "
                        f"scale is {scale:.3g}) spans that many ulp"
                    ),
                }
            )
        return out
