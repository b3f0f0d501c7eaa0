"""What the theory says for the lecture's linear model, to print next to what was measured.

For ``y_hat = w * x`` on noise-free data (y = w* x) the error e = w - w* evolves exactly:

* batch GD:        e <- (1 - 2*lr*mean(x^2)) * e      per epoch,
                   so it converges iff 0 < lr < 1/mean(x^2)  (0.1333... on the lecture's data);
* per-sample SGD:  e <- (1 - 2*lr*x_n^2) * e          per sample, so per epoch the error shrinks
                   by prod_n |1 - 2*lr*x_n^2|, and the critical lr is where that product is 1.
"""

from __future__ import annotations

import math

SGD_THEORY_MAX = 1_000  # per-sample SGD: the scan multiplies N factors per grid point


def _mean_sq(xs) -> float:
    """mean(x^2) in float64, of a list or a tensor (a tensor in chunks: no float64 copy)."""
    if hasattr(xs, "split"):
        return sum(float((c.double() ** 2).sum()) for c in xs.split(1 << 20)) / len(xs)
    return sum(x * x for x in xs) / len(xs)


def rate(xs: list[float], lr: float, schedule: str) -> float | None:
    """Predicted per-epoch contraction of |w - w*| (None where the theory is not this simple)."""
    if schedule == "batch":
        return abs(1 - 2 * lr * _mean_sq(xs))
    if schedule == "sgd":
        return math.prod(abs(1 - 2 * lr * x * x) for x in xs)
    return None


def critical_lr(xs: list[float], schedule: str) -> float | None:
    """The smallest lr > 0 at which the predicted rate reaches 1."""
    if schedule == "batch":
        return 1 / _mean_sq(xs)
    if schedule != "sgd" or len(xs) > SGD_THEORY_MAX:
        return None
    xs = xs.tolist() if hasattr(xs, "tolist") else xs
    # the rate starts at 1 for lr = 0, dips, and comes back to 1 below 1/min(x^2): scan for the
    # first lr where it is >= 1 again, then bisect inside that grid step
    top = 1 / min(x * x for x in xs if x != 0)
    grid = [top * k / 10_000 for k in range(1, 10_001)]
    hi = next((lr for lr in grid if rate(xs, lr, "sgd") >= 1), None)
    if hi is None:
        return None
    lo = hi - top / 10_000
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate(xs, mid, "sgd") < 1 else (lo, mid)
    return hi


def applies(config: dict, dataset) -> bool:
    """The formulas hold for the linear model with one feature on noise-free data."""
    return (
        config["problem"] == "linear"
        and dataset is not None
        and dataset.x.dim() == 1
        and config.get("momentum", 0) == 0
        and config.get("weight_decay", 0) == 0
        and config["schedule"] in ("batch", "sgd")
    )
