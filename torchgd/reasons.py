"""The agreement report's reasons, in words: why two paths, or a gradient and the formula,
differ, from what the run measured (``explain.Agreement`` folds the numbers; these methods,
mixed into it, write the English). See ``torchgd.explain`` for the kinds of reason."""

from __future__ import annotations

import torch

from . import compare, interfaces, rules
from .device import dtype_name

# a gradient this many float eps apart (relative) is not rounding any more: the formula is wrong
FORMULA_SUSPECT_EPS = 1e6


def _rule(paths, name) -> str:
    return "torch" if name == "optim" else paths[name].spelling


def _update_reason(paths, a, b, hp, w, g, step) -> str:
    ra, rb = _rule(paths, a), _rule(paths, b)
    same = (
        f"at step {step} both paths had the same parameters and the same gradient, yet "
        f"different parameters came out"
    )
    head = f"{same}: the update rules compute the step differently"
    if {ra, rb} == {"textbook", "torch"} or {ra, rb} == {"textbook", "torch-exact"}:
        return f"{head}. {rules.of(hp).explain_update(hp, w, g)}"
    if rules.evaluates(hp) and "manual" in (a, b):
        return (
            f"{same}: {rules.of(hp).TORCH_CLASS} evaluates the gradient again at other points "
            "within a step, and there the analytic formula (manual) and autograd round "
            "differently (see the gradient check)"
        )
    return (
        f"{head} ({ra} vs {rb}); the same inputs through the same operations should not "
        f"differ, so this is unexplained: please report it"
    )


def _buffer_rule_reason(paths, a, b, hp, state=None) -> str:
    ra, rb = _rule(paths, a), _rule(paths, b)
    if "textbook" in (ra, rb) and ra != rb:  # a scalar state's own reason, else the rule's
        return getattr(rules.of(hp), "STATE_WHY", {}).get(state) or rules.of(hp).explain_state(hp)
    return (
        f"the same operations ({ra} vs {rb}) on the same inputs should not differ, so this "
        f"is unexplained: please report it"
    )


def _beyond_rounding(first: dict, dtype) -> str:
    """Said when the first step the paths differ, from the same parameters and gradient, puts
    them further apart than rounding can: a millionth of the step itself and a thousand ulps
    of the parameters. Then the two compute different formulas (a user's rule that is wrong,
    or the textbook's eps placement), which no rounding explains."""
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
    # the problem explains its own gradient (``Problem.gradient_words``; a default for any)
    return interfaces.optional(problem, "gradient_words")(batch_sizes, dtype, max_rel) + within


class Reasons:
    """The reasons ``Agreement.report`` gives (a mixin: it reads the Agreement's records)."""

    def _float32_reason(self, report: dict) -> None:
        """The distance of the float32 paths to their float64 shadow, and why."""
        report["float64_reference"] = {
            n: {k: r[k] for k in ("max_abs", "max_rel", "max_abs_at")}
            for n, r in self._shadow.items()
        }
        worst = max(r["max_abs"] for r in self._shadow.values())
        reason = (
            f"float32 rounds every operation to 24 significant bits (unit roundoff "
            f"{torch.finfo(self.dtype).eps / 2:.2g}) where float64 keeps 53 "
            f"(1.1e-16): the float32 paths end up to {worst:.3g} away from the same "
            f"run in float64, and paths that round at different places drift "
            f"further apart"
        )
        report["reasons"].append({"between": "float32~float64", "kind": "dtype", "reason": reason})

    def _evaluations(self, report: dict) -> None:
        """How many times a rule that evaluates again within a step (L-BFGS) did, per path."""
        counts = {n: p.evaluations() for n, p in self.paths.items()}
        if any(c is None for c in counts.values()):
            return
        report["evaluations"] = counts
        hp, steps = self.hp, report["steps"]
        steps = f"{steps} step{'s' * (steps != 1)}"
        most = max(p.most for p in self.paths.values())
        report["most_evaluations"] = {n: p.most for n, p in self.paths.items()}
        check = f", at most {most} in one step"
        if most > hp.evaluations:  # torch tests max_eval after an iteration, not before
            check += (
                f" (max_eval = {hp.evaluations} is torch's stopping test after each iteration: "
                "a step's first evaluation and its line search may go past it, as one did here)"
            )
        if len(set(counts.values())) == 1:
            where = "on every path" if len(counts) > 1 else f"on the {next(iter(counts))} path"
            n = next(iter(counts.values()))
            reason = f"{rules.of(hp).TORCH_CLASS} evaluated the loss and gradient {n} times "
            reason += f"in {steps} {where}{check}"
        else:
            each = ", ".join(f"{n} {c}" for n, c in counts.items())
            reason = (
                f"the paths evaluated the loss and gradient different numbers of times in "
                f"{steps} ({each}{check}): their steps took different turns (the search "
                "depends on every bit)"
            )
        report["reasons"].append({"between": "evaluations", "kind": "count", "reason": reason})

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
        lrs = first.get("lrs")
        if same_in and lrs is not None and lrs[0] != lrs[1]:
            reason = (  # (the lrs' own reason, said first, gives them)
                f"at step {first['step']} both paths had the same parameters and the same "
                "gradient, and the lrs alone made their steps differ"
            )
            kind = "lr schedule"
        elif same_in:
            hp = self.hp  # the hyperparameters that step was taken with
            if self.hyper_at is not None:
                hp = self.hyper_at(first["step"], first["epoch"], self.hp)
            reason = _update_reason(self.paths, a, b, hp, wa, ga, first["step"])
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
            else _buffer_rule_reason(self.paths, a, b, self.hp, buf.get("state"))
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
                + _buffer_rule_reason(self.paths, a, b, self.hp, buf.get("state"))
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
