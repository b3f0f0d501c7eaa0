r"""When gradient descent on linear least squares converges, and how fast: the theory that the
divergence message, the sweep and the README quote.

The model is ``y_hat = A theta`` with A the design matrix (the features, plus a column of ones
for ``--bias``) and the cost the mean squared error. One step on a batch b of B rows, with
weight decay lambda (0 by default), is an affine map of the parameters::

    theta <- theta - lr * (2/B A_b^T (A_b theta - y_b) + lambda theta)
           = (I - lr * (2 G_b + lambda I)) theta + 2 lr/B A_b^T y_b,      G_b = A_b^T A_b / B

Noise in y moves the fixed point (the b term); stability is the linear part alone:

* **batch GD** (one batch, ``G = A^T A / N``): the error to the fixed point shrinks by
  ``max_i |1 - lr (2 lambda_i + lambda)|`` per epoch (lambda_i: G's eigenvalues), so it
  converges iff ``0 < lr < 2 / (2 lambda_max + lambda)`` (``1 / lambda_max(A^T A / N)``
  without weight decay; 0.1333 on the lecture's data, 0.1198 with a bias);
* **per-sample and mini-batch SGD in a fixed order**: an epoch applies
  ``M = prod_b (I - lr (2 G_b + lambda I))``, so the epoch-end error shrinks iff the spectral
  radius ``rho(M) < 1``; the critical lr is the smallest lr > 0 with ``rho(M) = 1``, found by
  scanning a grid and bisecting (0.1518 for per-sample SGD on the lecture's data, 0.1348 with a
  bias);
* **shuffled batchings**: each epoch has its own order, so each has its own M and its own limit;
  torchgd gives the limit of epoch 1's seeded order and says so.

Without weight decay, directions that no row of A reaches (a constant-zero feature, collinear
features) never move; stability is decided on the range of G, where every G_b acts. Everything is
computed in float64 from the data in one chunked pass for G (and one per bisection round for the
fixed-order batchings, which need every batch's G_b). The theory does not cover momentum,
``maximize`` or the function problems; ``why_not`` says which. Gradient ``--noise`` (zero
mean) leaves the mean dynamics, and so the limit, as they are: it raises the floor a run
settles at, and the theory says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

CHUNK = 1 << 18  # rows per pass over the data in float64
MAX_BATCHES = 1 << 24  # fixed-order batchings: an epoch of more batches is not analysed
GRID = [2.0 ** (j / 8) for j in range(-48, 49)]  # lr / batch limit: 1/64 .. 64, 97 points


def _cycled_momentum(spec) -> bool:
    """Whether the run's lr scheduler also cycles SGD's momentum (OneCycleLR, CyclicLR)."""
    if not spec:
        return False
    from . import schedulers

    try:
        schedule = schedulers.make(*schedulers.parse(spec), 1.0, "textbook")
    except Exception:  # a spec that no longer parses: the run's own check said so
        return False
    return schedule.cycles_momentum


def why_not(config: dict, dataset=None) -> str | None:
    """None when the theory covers this run, else the reason (a phrase) why it does not."""
    if config.get("problem") != "linear" or (dataset is None and config.get("data") is None):
        return f"it covers the linear model on data, not '{config.get('problem')}'"
    optimizer = config.get("optimizer", "sgd")
    if optimizer == "asgd":
        return "it covers a fixed step; asgd shrinks its step as it goes and averages the iterates"
    if optimizer != "sgd":
        return (
            f"it covers plain gradient descent, w -= lr * grad; {optimizer} steps otherwise, so "
            "its limit is not this one"
        )
    if config.get("momentum") or _cycled_momentum(config.get("scheduler")):
        return "it covers plain SGD; with momentum the limit is another one"
    if config.get("maximize"):
        return "--maximize climbs the cost, which has no top: it never converges"
    return None


@dataclass
class LeastSquares:
    """``G = A^T A / N``, ``A^T y / N``, the least-squares solution and its cost, in float64."""

    gram: torch.Tensor
    moment: torch.Tensor
    n: int
    bias: bool
    solution: torch.Tensor
    optimum_loss: float
    eigenvalues: torch.Tensor = field(repr=False)
    eigenvectors: torch.Tensor = field(repr=False)

    def range_mask(self) -> torch.Tensor:
        """Which eigenvalues are not zero (up to rounding): the directions the data reaches."""
        tol = self.eigenvalues[-1] * self.gram.shape[0] * torch.finfo(torch.float64).eps
        return self.eigenvalues > tol

    def range_basis(self) -> torch.Tensor:
        """Orthonormal columns spanning the range of G."""
        return self.eigenvectors[:, self.range_mask()]

    def fixed_point(self, weight_decay: float = 0.0) -> torch.Tensor:
        """Where batch GD goes: the least-squares solution (ridge with weight decay)."""
        if weight_decay == 0:
            return self.solution
        eye = torch.eye(len(self.moment), dtype=torch.float64)
        return torch.linalg.solve(self.gram + weight_decay / 2 * eye, self.moment)


def rows(x: torch.Tensor, bias: bool) -> torch.Tensor:
    """The design matrix A of some rows, in float64: x as columns, then ones for the bias."""
    a = x.double().reshape(len(x), -1)
    return torch.cat([a, torch.ones(len(a), 1, dtype=torch.float64)], 1) if bias else a


def least_squares(x: torch.Tensor, y: torch.Tensor, bias: bool = False) -> LeastSquares:
    """G, A^T y / N, the least-squares solution (the minimum-norm one if A lacks rank) and the
    cost there, from the data in chunks of ``CHUNK`` rows (no float64 copy of all of it)."""
    n = len(y)
    p = (x.shape[1] if x.dim() == 2 else 1) + bias
    gram = torch.zeros(p, p, dtype=torch.float64)
    moment = torch.zeros(p, dtype=torch.float64)
    for lo in range(0, n, CHUNK):
        a, yc = rows(x[lo : lo + CHUNK], bias), y[lo : lo + CHUNK].double()
        gram += a.T @ a
        moment += a.T @ yc
    gram, moment = gram / n, moment / n
    vals, vecs = torch.linalg.eigh(gram)
    keep = vals > vals[-1] * p * torch.finfo(torch.float64).eps
    inv = vecs[:, keep] @ torch.diag(1 / vals[keep]) @ vecs[:, keep].T  # pseudo-inverse
    solution = inv @ moment
    loss = cost(x, y, bias, solution)
    return LeastSquares(gram, moment, n, bias, solution, loss, vals, vecs)


def cost(x: torch.Tensor, y: torch.Tensor, bias: bool, theta: torch.Tensor) -> float:
    """The mean squared error at ``theta`` (w, then b) in float64, from residuals (no
    cancellation), in chunks of ``CHUNK`` rows."""
    total = 0.0
    for lo in range(0, len(y), CHUNK):
        r = rows(x[lo : lo + CHUNK], bias) @ theta - y[lo : lo + CHUNK].double()
        total += float(r @ r)
    return total / len(y)


def batch_critical_lr(ls: LeastSquares, weight_decay: float = 0.0) -> float:
    """Batch GD converges iff 0 < lr < 2 / (2 lambda_max + weight_decay)."""
    return 2 / (2 * ls.eigenvalues[-1].item() + weight_decay)


def batch_rate(ls: LeastSquares, lr: float, weight_decay: float = 0.0) -> float:
    """Per-epoch contraction of |theta - theta*| for batch GD: max_i |1 - lr (2 l_i + wd)|
    over the eigenvalues the data reaches (all of them with weight decay)."""
    vals = ls.eigenvalues if weight_decay else ls.eigenvalues[ls.range_mask()]
    return (1 - lr * (2 * vals + weight_decay)).abs().max().item()


def _tree_product(f: torch.Tensor, logs: torch.Tensor):
    """The product F_m ... F_2 F_1 of ``f`` [K, m, r, r] (F_1 first), each kept at unit scale
    with its log scale in ``logs`` [K, m]: pairs are multiplied level by level (batched)."""
    while f.shape[1] > 1:
        if f.shape[1] % 2:  # an odd one out waits for the next level: pad with the identity
            eye = torch.eye(f.shape[-1], dtype=f.dtype).expand(f.shape[0], 1, -1, -1)
            f = torch.cat([f, eye], 1)
            logs = torch.cat([logs, torch.zeros(f.shape[0], 1, dtype=f.dtype)], 1)
        f = f[:, 1::2] @ f[:, 0::2]  # later @ earlier
        logs = logs[:, 1::2] + logs[:, 0::2]
        f, logs = _unit(f, logs)
    return f[:, 0], logs[:, 0]


def _unit(f, logs):
    s = f.abs().amax((-2, -1)).clamp_min(1e-300)
    return f / s[..., None, None], logs + s.log()


def log_radius(
    x, bias: bool, order, batch: int, lrs: list[float], weight_decay: float, basis
) -> torch.Tensor:
    """log rho(M(lr)) for each lr, M the epoch map of batches of ``batch`` rows in ``order``
    (a permutation, or None for data order), restricted to the columns of ``basis``."""
    n = len(x)
    lr = torch.tensor(lrs, dtype=torch.float64)
    k, r = len(lrs), basis.shape[1]
    eye = torch.eye(r, dtype=torch.float64)
    total = eye.expand(k, r, r).clone()
    total_log = torch.zeros(k, dtype=torch.float64)
    per = max(1, (1 << 21) // max(1, k * r * r)) * batch  # rows per chunk: ~16 MiB of factors
    per = min(per, max(batch, CHUNK // batch * batch))
    for lo in range(0, n, per):
        idx = slice(lo, min(lo + per, n))
        a = rows(x[idx] if order is None else x[order[idx]], bias) @ basis  # [m*B, r]
        full, m = (len(a) // batch) * batch, len(a) // batch
        grams = []
        if m:
            ab = a[:full].reshape(m, batch, r)
            grams.append(ab.transpose(1, 2) @ ab / batch)
        if full < len(a):  # the last, smaller batch
            rest = a[full:]
            grams.append((rest.T @ rest / len(rest))[None])
        g = torch.cat(grams)  # [m', r, r]
        f = eye - lr[:, None, None, None] * (2 * g[None] + weight_decay * eye)
        p, plog = _tree_product(f, torch.zeros(f.shape[:2], dtype=torch.float64))
        total, total_log = _unit(p @ total, plog + total_log)
    radius = torch.linalg.eigvals(total).abs().amax(-1)
    return radius.log() + total_log


def _basis(ls: LeastSquares, weight_decay: float) -> torch.Tensor:
    """Where stability is decided: the range of G, or everything with weight decay (which
    shrinks the directions the data does not reach too)."""
    if weight_decay == 0:
        return ls.range_basis()
    return torch.eye(len(ls.moment), dtype=torch.float64)


def fixed_order_critical_lr(
    x, bias: bool, order, batch: int, weight_decay: float, ls: LeastSquares, rounds: int = 9
) -> float | None:
    """The smallest lr > 0 at which the epoch map's spectral radius reaches 1: the first grid
    point (1/64 to 64 times the batch limit) where it does, then bisected 16 ways per round."""
    basis = _basis(ls, weight_decay)
    if basis.shape[1] == 0:
        return None
    base = batch_critical_lr(ls, weight_decay)
    grid = [base * g for g in GRID]
    logs = log_radius(x, bias, order, batch, grid, weight_decay, basis)
    above = (logs >= 0).nonzero()
    if len(above) == 0:
        return None
    i = int(above[0])
    lo, hi = (grid[i - 1] if i else 0.0), grid[i]
    for _ in range(rounds):
        mids = [lo + (hi - lo) * j / 16 for j in range(1, 16)]
        logs = log_radius(x, bias, order, batch, mids, weight_decay, basis)
        above = (logs >= 0).nonzero()
        j = int(above[0]) if len(above) else 15
        lo, hi = (mids[j - 1] if j else lo), (mids[j] if j < 15 else hi)
    return hi


@dataclass
class Theory:
    """What the theory says of one run: its limit, how fast it goes, where it goes."""

    batching: str  # its spec: batch, sgd, minibatch:B
    critical_lr: float | None
    ls: LeastSquares
    weight_decay: float
    note: str = ""  # e.g. for which order the limit holds
    rate_of: object = field(default=None, repr=False)
    gradient_noise: float = 0.0  # --noise: the standard deviation added to every gradient
    stochastic: bool = False  # several batches an epoch: a run settles, on noisy data
    overflow: float | None = None  # the largest |value| when the data's squares overflow

    def rates(self, lrs: list[float]) -> list[float]:
        """Predicted per-epoch contraction of the error for each lr (batch: of the distance to
        the least-squares solution; fixed order: the epoch map's spectral radius)."""
        if self.rate_of is None:  # no theory of the rates (the data overflow)
            return [None] * len(lrs)
        return self.rate_of(list(lrs))

    def rate(self, lr: float) -> float:
        return self.rates([lr])[0]

    def describe(self) -> str:
        """One phrase: which run converges below which lr."""
        what = {
            "batch": "batch gradient descent",
            "sgd": "per-sample SGD",
        }.get(self.batching, f"{self.batching} SGD")
        if self.overflow is not None:
            return (
                f"the data's values (up to {self.overflow:.3g}) overflow float64 when squared, so "
                "no step size is safe and no limit can be computed: scale the data (z-score the "
                "features)"
            )
        if self.critical_lr is None:
            return f"{what} on this data: no limit found up to 64 times the batch limit"
        limit = f"lr < {self.critical_lr:.6g}{self.note}"
        # batch GD's limit bounds an interval; the epoch map of several batches is a product,
        # whose rate can dip below 1 again in narrow bands above it (per-sample SGD on the
        # lecture's data converges at lr = 0.5, where the first sample's factor is 0)
        only = "for every" if self.stochastic else "only for"
        if self.gradient_noise:
            return (
                f"{what} on this data is stable {only} {limit} (the noise-free limit: --noise "
                "adds zero-mean random gradients, which raise the floor a run settles at, not "
                "the limit of its mean)"
            )
        if self.stochastic and self.ls.optimum_loss > 0:
            return (
                f"{what} on this data is stable {only} {limit} (it then settles on a cycle "
                "around the least-squares solution, not on it: noisy data; how far off depends "
                "on lr, and not always growing with it)"
            )
        return f"{what} on this data converges {only} {limit}"


def analyse(config: dict, dataset, batching) -> Theory | None:
    """The theory of a run (its config, the whole data, its Batching), or None where it does
    not apply (see ``why_not``) or the epoch has more than ``MAX_BATCHES`` batches."""
    if dataset is None or why_not(config, dataset) is not None:
        return None
    x, y, bias = dataset.x, dataset.y, bool(config.get("bias"))
    wd = float(config.get("weight_decay") or 0.0)
    ls = least_squares(x, y, bias)
    n = len(y)
    noise = float(config.get("noise") or 0.0)
    if not bool(torch.isfinite(ls.gram).all() and torch.isfinite(ls.moment).all()):
        top = max(float(x.double().abs().max()), float(y.double().abs().max()))
        return Theory(batching.spec, None, ls, wd, overflow=top)
    if batching.kind == "batch" or batching.size(n) >= n:
        return Theory(
            batching.spec,
            batch_critical_lr(ls, wd),
            ls,
            wd,
            rate_of=lambda lrs: [batch_rate(ls, lr, wd) for lr in lrs],
            gradient_noise=noise,
        )
    batch = batching.size(n)
    if batching.steps_per_epoch(n) > MAX_BATCHES:
        return None
    order = batching.order(n, 1)
    note = (
        " (for epoch 1's seeded order: the limit depends on the order, and every epoch has its own)"
        if order is not None
        else ""
    )
    critical = fixed_order_critical_lr(x, bias, order, batch, wd, ls)
    basis = _basis(ls, wd)

    def rates(lrs):
        return log_radius(x, bias, order, batch, lrs, wd, basis).exp().tolist()

    return Theory(batching.spec, critical, ls, wd, note, rates, noise, stochastic=True)
