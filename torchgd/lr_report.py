"""The learning rate each path stepped with, compared step by step, like the parameters.

With ``plan``'s ``hyper_at`` every path takes the same lr, except where a learning-rate
scheduler runs: the manual and autograd paths then take torchgd's schedule in the run's
spelling (``textbook``: the closed form; ``torch-exact``: torch's recursion, by hand) and the
optim path torch's own ``torch.optim.lr_scheduler`` class. The report gets an ``lr`` section
(``max_ulp``, where they first differ, per pair) and, where they differ, the reason.
"""

from __future__ import annotations

from itertools import combinations

from . import compare


class LrAgreement:
    """Folds the blocks' ``lrs`` (one row of per-path lrs a step) into per-pair extremes."""

    def __init__(self, names):
        self.names = list(names)
        self.pairs = {f"{a}~{b}": _empty() for a, b in combinations(self.names, 2)}

    def fold(self, host) -> None:
        index = {n: i for i, n in enumerate(self.names)}
        for key, rep in self.pairs.items():
            a, b = (index[n] for n in key.split("~"))
            for step, row in zip(host.steps, host.lrs):
                if row[a] == row[b]:
                    continue
                ulp = compare.ulp_distance_floats([row[a]], [row[b]], "float64")
                diff = abs(row[a] - row[b])
                if rep["first_difference"] is None:
                    rep["first_difference"] = {"step": step, "param": "lr", "lrs": [row[a], row[b]]}
                rep["max_abs"] = max(rep["max_abs"], diff)
                rep["max_rel"] = max(rep["max_rel"], diff / max(abs(row[a]), abs(row[b])))
                if ulp > rep["max_ulp"]:
                    rep.update(max_ulp=ulp, max_ulp_at=step)

    def state_dict(self) -> dict:
        return {k: dict(v) for k, v in self.pairs.items()}

    def load_state_dict(self, state: dict | None) -> None:
        if state:
            self.pairs = {k: dict(v) for k, v in state.items()}

    def into(self, agreement: dict, hook) -> None:
        """The ``lr`` section of ``agreement``, and where the lrs differ, why (said before
        the reasons of the parameters they moved apart)."""
        agreement["lr"] = {
            "pairs": self.pairs,
            "max_ulp": max((r["max_ulp"] for r in self.pairs.values()), default=0),
        }
        schedule = getattr(hook, "schedule", None)
        lr_reasons = []
        for key, rep in self.pairs.items():
            first = rep["first_difference"]
            if first is None:
                continue
            why = _why(schedule, key)
            lr_reasons.append({"between": f"lr {key}", "kind": "lr schedule", "reason": why})
            for reason in agreement["reasons"]:
                params = agreement["params"].get(key, {}).get("first_difference")
                if reason["between"] == key and params and params["step"] >= first["step"]:
                    a, b = first["lrs"]
                    reason["reason"] = (
                        f"the two paths stepped with different learning rates from step "
                        f"{first['step']} on ({a!r} and {b!r}, see the lr's reason), so part "
                        "or all of the difference comes from the learning rates; "
                        + reason["reason"]
                    )
        agreement["reasons"][:0] = lr_reasons


def _empty() -> dict:
    return {"max_abs": 0.0, "max_rel": 0.0, "max_ulp": 0, "max_ulp_at": None,
            "first_difference": None}  # fmt: skip


def _why(schedule, key: str) -> str:
    if schedule is None:
        return f"hyper_at gave the paths {key} different learning rates"
    m = schedule.module
    form = "the closed form" if not schedule.exact else "torch's recursion by hand"
    hint = (
        ""
        if schedule.exact
        else (
            "; --spelling torch-exact computes torch's recursion by hand and matches it bit for bit"
        )
    )
    return (
        f"the manual and autograd paths take the {m.TORCH_CLASS} lr in {form}, the optim "
        f"path torch.optim.lr_scheduler.{m.TORCH_CLASS} itself: {m.WHY}{hint}"
    )
