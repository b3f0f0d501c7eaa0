"""The divergence guard: stop a run that diverges, never one that converges noisily.

It judges the **cost over all data** at the end of every epoch (for ``batch`` the cost before
the epoch's update, which the run computes anyway; for ``sgd`` and ``minibatch:B`` one more
pass over the data per epoch), never one batch's loss, whose noise says nothing of divergence.
A lane (a path of ``train``, a learning rate of ``sweep``) is stopped when

* the cost or a parameter is no longer finite, or
* the cost grew ``patience`` epochs in a row **and** rose above its lowest value so far by
  more than a margin times that lowest value (``cost - lowest > margin * |lowest|``; the lowest
  is floored at ``FLOOR`` times the starting cost, so a cost that converged to rounding noise
  around 0 does not count as growth). The margin is ``MARGIN`` (100) for stochastic runs
  (``sgd``, ``minibatch:B``, ``--noise``), whose cost is noisy, and ``DETERMINISTIC_MARGIN``
  (1: the cost doubled) for the others, whose cost does not rise in a converging run of a
  convex problem (batch GD below the critical lr lowers the cost every epoch).
  For a rule that hovers (``rules.hovers``: every rule but SGD, whose steps are about lr
  whatever the gradient, and SGD with momentum, which overshoots and comes back) the growth
  must also exceed the starting cost: near the minimum they hover in a band whose width lr
  sets, rising and falling, without diverging.

Below the critical lr a linear least-squares run converges (to a noise floor for stochastic
batchings): its cost settles, and a settled cost does not climb a hundredfold, however noisy.
Above it the error grows geometrically, so the margin is crossed within
``log(MARGIN) / log(rate^2)`` epochs of the unstable direction taking over. Tested both ways, on
the lecture's data and on noisy data with several features, against the theory.
"""

from __future__ import annotations

import math
import sys

MARGIN = 100.0
DETERMINISTIC_MARGIN = 1.0
FLOOR = 1e-12
TINY = sys.float_info.min  # the smallest normal float64


class Guard:
    """Per lane (K of them): the last cost, the growth streak, the lowest cost, the start.

    The state is a few lists of K Python numbers, judged lane by lane in plain Python: the guard
    runs once per epoch, between torch's operations, and there numpy's vectorized operations
    on a handful of lanes cost more than a loop over them (measured in a per-sample SGD run of
    one path on the lecture's four points: 35 against 4 microseconds an epoch for one lane, the
    numpy version a tenth of the run's time; on a sweep's 256 lanes, 116 against 30, a tenth
    of the sweep's epoch)."""

    def __init__(self, patience: int, lanes: int, stochastic: bool = True, adaptive=False):
        self.patience, self.lanes, self.adaptive = patience, lanes, adaptive
        self.margin = MARGIN if stochastic else DETERMINISTIC_MARGIN
        self.prev = [math.inf] * lanes
        self.streak = [0] * lanes
        self.lowest = [math.inf] * lanes
        self.start = [math.nan] * lanes
        self.last_finite = [math.nan] * lanes

    def begin(self, cost) -> None:
        """The cost over all data before the first step (stochastic batchings)."""
        self.update(cost, [True] * self.lanes)
        self.prev = [math.inf] * self.lanes  # the first epoch's cost is compared with nothing

    def update(self, cost, finite) -> tuple[list, list]:
        """One epoch's cost per lane and whether its parameters are finite (tensors, arrays or
        lists); returns, per lane, whether to stop it for a value that is not finite and
        whether to stop it for growth (two lists of booleans)."""
        bad, growth = [False] * self.lanes, [False] * self.lanes
        for i, (c, ok) in enumerate(zip(_numbers(cost), _numbers(finite))):
            if math.isfinite(c):  # the last finite cost, whatever the parameters did (a batch
                self.last_finite[i] = c  # epoch's cost is taken before its update)
            if not (ok and math.isfinite(c)):  # takes no part in what follows
                bad[i], self.streak[i] = True, 0
                continue
            if math.isnan(self.start[i]):
                self.start[i] = abs(c)
            self.streak[i] = self.streak[i] + 1 if c > self.prev[i] else 0
            growth[i] = self.streak[i] >= self.patience and self._risen(i, c)
            self.lowest[i] = min(self.lowest[i], c)
            self.prev[i] = c
        return bad, growth

    def _risen(self, i: int, cost: float) -> bool:
        """Whether lane i's cost rose above its lowest by more than the margin."""
        lowest, start = self.lowest[i], self.start[i]
        floor = max(abs(lowest), FLOOR * start, TINY)
        if self.adaptive:  # a step of about lr hovers near the minimum: only above the start
            floor = max(floor, start / self.margin)
        return cost - lowest > self.margin * floor

    def reason(self, lane: int, nonfinite: bool) -> str:
        if nonfinite:
            return "the cost or a parameter is no longer finite"
        return (
            f"the cost over all data grew {self.patience} epoch{'s' * (self.patience != 1)} "
            f"in a row, to {self.prev[lane]:.6g} from a lowest of {self.lowest[lane]:.6g} "
            f"(a rise of more than {self.margin:g} times the lowest)"
        )

    def state_dict(self) -> dict:
        keys = ("prev", "streak", "lowest", "start", "last_finite")
        return {k: list(getattr(self, k)) for k in keys}

    def load_state_dict(self, state: dict) -> None:
        for k, v in state.items():
            setattr(self, k, [int(x) if k == "streak" else float(x) for x in v])


def advice(config: dict, dataset, batching, info: dict) -> dict:
    """What the theory says of a run that diverged: adds ``critical_lr``, ``suggested_lr`` and
    ``theory`` (a phrase) to ``info``, or ``no_theory`` (why there is no number)."""
    from . import theory

    why = theory.why_not(config, dataset)
    if why is not None:
        info["no_theory"] = why
        return info
    t = theory.analyse(config, dataset, batching)
    if t is None:
        info["no_theory"] = "the epoch has too many batches to analyse"
    elif t.critical_lr is None:
        info["no_theory"] = t.describe()
        info["data_overflow"] = t.overflow is not None
    else:
        info.update(critical_lr=t.critical_lr, suggested_lr=t.critical_lr / 2, theory=t.describe())
        if t.note:  # a shuffled batching: the limit is epoch 1's order's, each epoch has its own
            info["epoch_1_order"] = True
    return info


def message(info: dict, lr: float, config: dict | None = None) -> str:
    """The one line a diverged run ends with (without the run directory); ``config`` (the
    run's) words the advice: a run that maximizes, or a rule's own options, are not an lr's
    fault."""
    text = f"diverged at epoch {info['epoch']}: {info['reason']}"
    last = info.get("last_finite_loss")
    if last is not None and not math.isfinite(last) and "finite" in info["reason"]:
        if info.get("data_overflow"):
            return f"{text}; it was not finite at the start either: {info['no_theory']}"
        return text + (
            "; it was not finite at the start either, before any step: no lr can help; the "
            "loss or its gradient is not defined at the starting point (see torchgd check, "
            "or choose another --init)"
        )
    if last is not None and "finite" in info["reason"]:
        text += f" (last finite cost {last:.6g})"
    if "critical_lr" in info:
        c = info["critical_lr"]
        scheduled = (config or {}).get("scheduler")
        text += f"; theory: {info['theory']} ({'base ' * bool(scheduled)}lr = {lr})"
        if scheduled:  # the lr that diverged is the schedule's: its peak is what must drop
            text += (
                f"; the lr is scheduled by {scheduled}, whose peak must stay below {c:.6g} "
                "(its line before training says where it crossed): lower --lr or the "
                "schedule's peak"
            )
        elif lr > c:
            text += f"; try --lr {info['suggested_lr']:.3g}"
        elif info.get("epoch_1_order"):
            text += (
                "; this lr is below epoch 1's limit, but every epoch's order has its own and a "
                f"later one's can be lower: try --lr {info['suggested_lr']:.3g}"
            )
        else:
            text += (
                "; this lr is below that limit, so the growth is not the instability the "
                "theory describes: please report it"
            )
    else:
        if "no_theory" in info:
            text += f"; no critical lr from theory here ({info['no_theory']})"
        if not info.get("data_overflow"):
            text += _blame(lr, config or {})
    return text


def _blame(lr: float, config: dict) -> str:
    """What to try: a smaller lr, unless the run climbs on purpose or a rule's options are
    as likely a cause."""
    if config.get("maximize"):
        return "; growing is what --maximize does, whatever the lr"
    from . import rules

    words = rules.words(config)
    if config.get("optimizer", "sgd") != "sgd" and words[1:]:
        return (
            f"; lr = {lr} may be too large, or {words[0]}'s options ({', '.join(words[1:])}) "
            "make its step unstable: try a smaller --lr, or torch's defaults"
        )
    return f"; lr = {lr} may be too large: try a smaller --lr"


def _numbers(values) -> list:
    """Values (a tensor on any device, an array, a list) as a list of Python numbers."""
    if hasattr(values, "detach"):
        values = values.detach().cpu()
    return values.reshape(-1).tolist() if hasattr(values, "tolist") else list(values)
