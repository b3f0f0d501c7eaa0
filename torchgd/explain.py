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

from itertools import combinations

import torch

from . import compare
from .device import dtype_name

# a gradient this many float eps apart (relative) is not rounding any more: the formula is wrong
FORMULA_SUSPECT_EPS = 1e6


def _rule(paths, name) -> str:
    return "torch" if name == "optim" else paths[name].rule


def _update_reason(paths, a, b, hp, w, g, step) -> str:
    ra, rb = _rule(paths, a), _rule(paths, b)
    head = (
        f"at step {step} both paths had the same parameters and the same gradient, yet "
        f"different parameters came out: the update rules round differently"
    )
    if {ra, rb} == {"textbook", "torch"} or {ra, rb} == {"textbook", "torch-exact"}:
        plain = hp.momentum == 0 and hp.weight_decay == 0 and not hp.maximize
        if plain:
            two = w - hp.lr * g
            one = w.add(g, alpha=-hp.lr)
            k = int((two != one).nonzero()[0]) if bool((two != one).any()) else 0
            measured = (
                f" (recomputed: w - lr*grad = {two.reshape(-1)[k].item()!r}, "
                f"w.add(grad, alpha=-lr) = {one.reshape(-1)[k].item()!r})"
            )
        else:
            measured = ""
        buffer = " (and add_ with alpha for its momentum buffer)" if hp.momentum else ""
        return (
            f"{head}. torch.optim.SGD updates with param.add_(grad, alpha=-lr){buffer}, which "
            f"this machine computes as one fused multiply-add, rounding once; the textbook "
            f"rule w -= lr * grad rounds lr * grad and then the difference, twice{measured}. "
            f"--rule torch-exact uses torch's operations and matches torch.optim.SGD bit for bit"
        )
    return (
        f"{head} ({ra} vs {rb}); the same inputs through the same operations should not "
        f"differ, so this is unexplained: please report it"
    )


def _grad_reason(problem, dtype, batch_sizes, max_rel) -> str:
    eps = torch.finfo(dtype).eps
    if max_rel > FORMULA_SUSPECT_EPS * eps:
        return (
            f"the analytic gradient is {max_rel:.3g} (relative) away from autograd's, far "
            f"beyond rounding in {dtype_name(dtype)} (eps {eps:.3g}): the formula "
            f"does not compute the derivative of the loss; check it"
        )
    if problem.name == "linear":
        odd = sorted({n for n in batch_sizes if n & (n - 1)})
        text = (
            "the formula sums 2*x_n*(x_n*w - y_n) and divides by N; autograd's backward "
            "multiplies the incoming 1/N by 2*(x_n*w - y_n) (the square's derivative) and by "
            "x_n (the product's), then sums: the same derivative, rounded at other places"
        )
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
        return text
    return (
        f"the hand-written formula and autograd's chain rule through "
        f"f ({problem.description}) compute the derivative with different operations in "
        f"a different order, each rounded to {dtype_name(dtype)} (max relative "
        f"difference {max_rel:.3g}, eps {eps:.3g}): rounding, not a wrong formula"
    )


def _summary(reports: dict) -> dict:
    keys = ("max_abs", "max_rel", "max_ulp")
    return {k: max((r[k] for r in reports.values()), default=0) for k in keys}


def agreement(
    *, problem, names, paths, dtype, hp, labels, params0, records, grad_checked, batch_sizes
) -> dict:
    """The agreement report of a run: see the module docstring for what each reason means."""
    report = {
        "steps": len(records),
        "max_abs": 0.0,
        "max_rel": 0.0,
        "max_ulp": 0,
        "params": {},
        "grad": None,
        "reasons": [],
        "bit_identical": True,
    }
    if not records:
        return report
    steps = [r.step for r in records]
    epochs = [r.epoch for r in records]
    T, D = len(records), len(labels)
    P = torch.tensor([r.params for r in records], dtype=dtype).reshape(T, -1, D)  # after step
    G = torch.tensor([r.grads for r in records], dtype=dtype).reshape(T, -1, D)  # gradient used
    before = torch.cat([params0.to(dtype).expand(1, len(names), -1), P[:-1]])

    for i, j in combinations(range(len(names)), 2):
        a, b = names[i], names[j]
        rep = compare.pair_report(P[:, i], P[:, j], steps, epochs, labels)
        report["params"][f"{a}~{b}"] = rep
        if rep["max_ulp"] == 0:
            continue
        t = steps.index(rep["first_difference"]["step"])
        same_in = bool((compare.ulp_distance(G[t, i], G[t, j]) == 0).all()) and bool(
            (compare.ulp_distance(before[t, i], before[t, j]) == 0).all()
        )
        if same_in:
            reason = _update_reason(paths, a, b, hp, before[t, i], G[t, i], steps[t])
            kind = "update rule"
        else:
            gulp = int(compare.ulp_distance(G[t, i], G[t, j]).max())
            reason = (
                f"the gradients already differed at step {steps[t]} ({gulp} ulp: see the "
                f"gradient check), and the update carried that into the parameters"
            )
            if paths[a].fused is not None or paths[b].fused is not None:
                reason += (
                    "; the manual path (--compile) sums a big batch in one compiled loop, "
                    "products and sums in float64 and rounded once, where the other path "
                    "rounds every sum to its dtype"
                )
            kind = "gradient"
        peak = rep["max_ulp_at"]["step"]
        if peak > steps[t]:
            reason += (
                f"; from step {steps[t]} on the paths start each step from different "
                f"points, so the difference is carried forward (largest, "
                f"{rep['max_ulp']} ulp, at step {peak})"
            )
        report["reasons"].append({"between": f"{a}~{b}", "kind": kind, "reason": reason})
        at = rep["max_ulp_at"]
        t_max, d_max = steps.index(at["step"]), labels.index(at["param"])
        va, vb = P[t_max, i, d_max].item(), P[t_max, j, d_max].item()
        scale = P[t_max, i].abs().max().item()
        if max(abs(va), abs(vb)) < torch.finfo(dtype).eps ** 0.5 * scale:
            report["reasons"].append(
                {
                    "between": f"{a}~{b}",
                    "kind": "near zero",
                    "reason": (
                        f"the largest ulp distance ({rep['max_ulp']}) is at {at['param']} = "
                        f"{va:.3g} vs {vb:.3g}, near zero, where floats are densely spaced: "
                        f"an absolute difference of {abs(va - vb):.3g} (the parameters' "
                        f"scale is {scale:.3g}) spans that many ulp"
                    ),
                }
            )
    report.update(_summary(report["params"]))

    if grad_checked:
        R = torch.tensor([r.refs for r in records], dtype=dtype).reshape(T, -1, D)
        pairs = {}
        for q, name in enumerate(grad_checked):
            pairs[f"analytic~{name}"] = compare.pair_report(
                R[:, q], G[:, names.index(name)], steps, epochs, labels
            )
        report["grad"] = {**_summary(pairs), "pairs": pairs}
        if report["grad"]["max_ulp"] > 0:
            report["reasons"].append(
                {
                    "between": "analytic~autograd",
                    "kind": "gradient",
                    "reason": _grad_reason(problem, dtype, batch_sizes, report["grad"]["max_rel"]),
                }
            )

    if records[0].ref64 is not None:
        R64 = torch.tensor([r.ref64 for r in records], dtype=torch.float64)
        ref = {
            name: compare.pair_report(P[:, i].double(), R64, steps, epochs, labels)
            for i, name in enumerate(names)
        }
        report["float64_reference"] = {
            n: {k: r[k] for k in ("max_abs", "max_rel", "max_abs_at")} for n, r in ref.items()
        }
        worst = max(r["max_abs"] for r in ref.values())
        report["reasons"].append(
            {
                "between": "float32~float64",
                "kind": "dtype",
                "reason": (
                    f"float32 rounds every operation to 24 significant bits (unit roundoff "
                    f"{torch.finfo(dtype).eps / 2:.2g}) where float64 keeps 53 (1.1e-16): the "
                    f"float32 paths end up to {worst:.3g} away from the same run in float64, "
                    f"and paths that round at different places drift further apart"
                ),
            }
        )
    report["bit_identical"] = report["max_ulp"] == 0 and (
        report["grad"] is None or report["grad"]["max_ulp"] == 0
    )
    return report
