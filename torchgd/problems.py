"""Problems: a starting point, a loss, and its analytic gradient written by hand.

A problem has ``param_names``, default starting values ``start``, ``loss(params, x, y)`` and
``grad(params, x, y)``, where ``params`` maps each name to a tensor. The linear model learns from
data; the function problems (``paraboloid`` and friends) ignore ``x`` and ``y``.

The lecture's model (eq. 3 and 4)::

    y_hat = w * x
    cost(w) = 1/N sum_n (x_n * w - y_n)^2
    d cost / d w = 1/N sum_n 2 * x_n * (x_n * w - y_n)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from .errors import TorchgdError

Params = dict[str, torch.Tensor]

CHUNK_ROWS = 1 << 19
"""Rows per chunk when a batch is bigger: 524,288 float32 values are 2 MiB, so a chunk's x, y
and residual stay in the CPU's cache while the paths work on them (measured best of 2^17 to
2^21 rows on the machine of the README's benchmark)."""


XT_BLOCK = 4096


def xt(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """``X^T r`` for x of shape [N, d], added up block by block: ``r_k^T X_k`` for each block
    of ``XT_BLOCK`` rows (one batched product), then the blocks' results added. A single
    product runs down each column of X one row after another: in float32 on 600,000 rows of two
    features that was 2e-5 off (relative) against float64; blocks of 4,096 rows, 2e-7."""
    k = r.shape[-1] // XT_BLOCK * XT_BLOCK
    tail = x[k:].T @ r[k:]
    if k == 0:
        return tail
    blocks = x[:k].reshape(-1, XT_BLOCK, x.shape[1])
    return torch.bmm(r[:k].reshape(-1, 1, XT_BLOCK), blocks).sum(0).squeeze(0) + tail


def xw(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``X w`` for x of shape [N, d], as ``w^T X_k^T`` for each block of ``XT_BLOCK`` rows (one
    batched product), so that autograd's backward forms ``X^T g`` block by block, as ``xt``
    does: the backward of a plain ``x @ w`` was 3e-5 off in float32 on 600,000 rows of two
    features. (Measured on 524,288 rows of three: forward and backward 2.1 ms, against 3.2 ms
    for ``x @ w``.)"""
    k = x.shape[0] // XT_BLOCK * XT_BLOCK
    if k == 0:
        return x @ w
    blocks = x[:k].reshape(-1, XT_BLOCK, x.shape[1]).transpose(1, 2)
    head = torch.bmm(w.expand(blocks.shape[0], 1, -1), blocks).reshape(-1)
    return torch.cat([head, x[k:] @ w])


def terms_summed(n: int, rows: int = CHUNK_ROWS) -> int:
    """The k of Higham's gamma_k for a gradient summed over n rows: each term rounded 4 times,
    and the sum of n terms (n - 1 additions, in any order) when the batch is one chunk; a
    bigger batch is summed chunk by chunk (``rows`` each) and the chunks' sums added one after
    another. (N + 4 for every N, as before, made gamma negative beyond N u = 1: 1e8 float32
    rows said "at most -3.5e-08 of the rounding bound".)"""
    if n <= rows:
        return n + 4
    return rows + math.ceil(n / rows) + 4


class Linear:
    """The lecture's model ``y_hat = w * x`` with the mean squared error as cost.

    With several features (x of shape [N, d]) it is ``y_hat = x @ w`` with w of shape [d], and
    with ``bias=True`` ``y_hat = x @ w + b``; the lecture's one-feature case is d = 1.
    """

    name = "linear"
    needs_data = True
    description = "y_hat = w * x, cost(w) = 1/N sum (x_n*w - y_n)^2 (the lecture's model)"

    chunk_rows = CHUNK_ROWS

    def __init__(self, bias: bool = False):
        self.bias = bias
        self.param_names = ("w", "b") if bias else ("w",)
        self.start = {"w": 1.0, "b": 0.0} if bias else {"w": 1.0}

    def gradient_words(self, batch_sizes, dtype, max_rel) -> str:
        """Why the lecture's formula and autograd's backward round differently."""
        odd = sorted({n for n in batch_sizes if n & (n - 1)})
        r = "x_n.w + b - y_n" if self.bias else "x_n*w - y_n"
        text = (
            f"the formula sums 2*x_n*({r}) and divides by N; autograd's backward "
            f"multiplies the incoming 1/N by 2*({r}) (the square's derivative) and by "
            "x_n (the product's), then sums: the same derivative, rounded at other places"
        )
        if self.bias:
            text += f" (and for b the sum of 2*({r}) without the x_n)"
        if odd:
            text += (
                f"; 1/N is not exact in binary for N = {', '.join(map(str, odd))}, so "
                f"autograd's per-term 1/N carries a rounding the single division does not"
            )
        if self.chunk_rows and max(batch_sizes) > self.chunk_rows:
            text += (
                f"; batches of more than {self.chunk_rows:,} samples are summed chunk by chunk, "
                f"the formula's sums as dot products and autograd's by its backward's kernels, "
                f"in a different order"
            )
        return text

    def start_for(self, dataset) -> dict:
        """w0 = 1 for every feature (the lecture starts at w = 1.0), b0 = 0."""
        start = dict(self.start)
        if dataset is not None and dataset.x.dim() == 2:
            start["w"] = [1.0] * dataset.x.shape[1]
        return start

    def forward(self, params: Params, x: torch.Tensor) -> torch.Tensor:
        w = params["w"]
        if x.dim() == 2:  # w of shape [K, d]: K runs at once (``torchgd sweep``'s lanes)
            y_hat = xw(x, w) if w.dim() == 1 else w @ x.T
        else:
            y_hat = x * w
        return y_hat + params["b"] if self.bias else y_hat

    def loss(self, params: Params, x: torch.Tensor, y: torch.Tensor, n=None) -> torch.Tensor:
        """cost(w) = 1/N sum (x_n * w - y_n)^2            (eq. 3)

        ``n``: the batch's N when ``x`` and ``y`` are one chunk of it (the chunk's share of
        the cost); by default their own length. (Sums run over the last dimension, so a column
        of K weights, shape [K, 1], gives K costs at once: that is how ``torchgd sweep`` runs K
        learning rates as one tensor.)"""
        y_pred = self.forward(params, x)
        return ((y_pred - y) ** 2).sum(-1) / (n or y.shape[-1])

    def grad(self, params: Params, x: torch.Tensor, y: torch.Tensor) -> Params:
        """d cost/dw = 1/N sum 2 * x_n * (x_n * w - y_n)  (eq. 4)
                    = 2/N X^T (X w - y)                   (many features)
        d cost/db = 1/N sum 2 * (x_n * w + b - y_n)       (with a bias)"""
        w, n = params["w"], y.shape[-1]
        if x.dim() == 1 and not self.bias:
            return {"w": (2 * x * (x * w - y)).sum(-1) / n}  # the lecture's line, verbatim
        r = self.forward(params, x) - y
        # many features: 2/N X^T r, in blocks (a float32 sum down each column of X, one row
        # after another, lost 1% on 10 million rows; see ``xt``)
        if x.dim() == 2:
            gw = 2 * (xt(x, r) if r.dim() == 1 else r @ x) / n
        else:
            gw = (2 * x * r).sum(-1) / n
        return {"w": gw, "b": (2 * r).sum(-1) / n} if self.bias else {"w": gw}

    @torch.no_grad()
    def grad_bound(self, params: Params, x: torch.Tensor, y: torch.Tensor, n=None) -> Params:
        """How far two correct roundings of the gradient can be apart at ``params``: a bound
        on |formula - autograd| from the magnitudes of the summed terms t_n = 2 x_n r_n::

            2 gamma_k * 1/N sum |t_n|                             (summing N rounded terms,
                                                                   in any order, twice;
                                                                   k = terms_summed(N))
          + 2 (d+3) u * 1/N sum 2 |x_n| (|x_n|.|w| + |b| + |y_n|) (two roundings of r_n)
          + (sum |x_n| + 2 N + 2) * eta                          (subnormal roundings)

        with u the unit roundoff, gamma_k = k u / (1 - k u), eta the smallest subnormal
        (Higham, Accuracy and Stability of Numerical Algorithms, ch. 3). A gradient near zero
        at the optimum is a sum of terms that cancel: its rounding is measured against
        sum |t_n|, not against |gradient|. With ``n``, ``x`` and ``y`` are one chunk of a
        batch of n: the chunk's share (shares add up)."""
        w = params["w"]
        n = n or y.shape[-1]
        info = torch.finfo(y.dtype)
        u, eta = info.eps / 2, info.smallest_normal * info.eps
        k = terms_summed(n, self.chunk_rows) * u
        gamma = k / (1 - k) if k < 1 else math.inf
        d = x.shape[1] if x.dim() == 2 else 1
        r = (self.forward(params, x) - y).abs()
        ax = x.abs()
        size = (xw(ax, w.abs()) if x.dim() == 2 else ax * w.abs()) + y.abs()
        if self.bias:
            size = size + params["b"].abs()

        def xsum(v):
            return xt(ax, v) if x.dim() == 2 else torch.dot(ax, v)

        rows = y.shape[-1]
        bw = 2 * gamma * 2 * xsum(r) / n + 2 * (d + 3) * u * 2 * xsum(size) / n
        bw = bw + (ax.sum(0) + 2 * rows + 2) * eta
        if not self.bias:
            return {"w": bw}
        bb = 2 * gamma * 2 * r.sum() / n + 2 * (d + 3) * u * 2 * size.sum() / n
        return {"w": bw, "b": bb + (2 * rows + 2) * eta}

    def chunk(self, params: Params, x: torch.Tensor, y: torch.Tensor, n: int) -> tuple:
        """For autograd, one chunk of a batch of N: its share of the cost, with autograd's
        graph, and the formula's gradient sums at the same parameters from the same residual
        ``r_n = x_n * w - y_n`` (detached)::

            1/N sum_n r_n^2          (its backward() adds this chunk's part of the gradient)
            sum_n 2 * x_n * r_n      (and sum_n 2 * r_n for the bias), divided by N later
        """
        r = self.forward(params, x) - y
        rd = r.detach()
        gw = 2 * (torch.dot(x, rd) if x.dim() == 1 else xt(x, rd))
        sums = {"w": gw, "b": 2 * rd.sum()} if self.bias else {"w": gw}
        return torch.dot(r, r) / n, sums

    def sums(self, params: Params, x: torch.Tensor, y: torch.Tensor, out=None) -> tuple:
        """One chunk's share of the cost and the gradient, before the division by N.

        The same formulas as ``loss`` and ``grad``, with fused kernels that read each value
        once: the residual's negative ``e_n = y_n - x_n * w`` comes from one kernel
        (``addcmul``, or ``addmv`` for many features) and stays in cache; then

            sum_n (x_n * w - y_n)^2         = e . e        (a dot product)
            sum_n 2 * x_n * (x_n * w - y_n) = -2 * x . e   (a dot product, or x^T e: ``xt``)
            sum_n 2 * (x_n * w + b - y_n)   = -2 * sum e   (with a bias)

        ``out``: a buffer of at least ``len(y)`` values for ``e``, reused chunk after chunk (a
        fresh one each time is memory the cache has never seen: measured 15% slower).
        """
        w = params["w"]
        e = None if out is None else out[: y.shape[-1]]
        if x.dim() == 1:
            e = torch.addcmul(y, x, w, value=-1, out=e)
        else:
            e = torch.addmv(y, x, w, alpha=-1, out=e)
        if self.bias:
            e.sub_(params["b"])
        gw = torch.dot(x, e) if x.dim() == 1 else xt(x, e)
        grads = {"w": gw.mul_(-2), "b": e.sum().mul_(-2)} if self.bias else {"w": gw.mul_(-2)}
        return torch.dot(e, e), grads


@dataclass(frozen=True)
class FunctionProblem:
    """A function of a few named coordinates with its gradient written by hand.

    ``f`` and ``df`` work elementwise, so the same code evaluates one point or a whole grid.
    """

    name: str
    param_names: tuple[str, ...]
    f: Callable[..., torch.Tensor]
    df: Callable[..., tuple[torch.Tensor, ...]]
    start: dict[str, float]
    description: str = ""  # for titles and reports; the name when empty
    special_points: tuple[tuple[float, ...], ...] = ()
    minimum: tuple[float, ...] | None = None
    box: tuple[float, float] = (-4.0, 4.0)
    terms: Callable[..., tuple[torch.Tensor, ...]] | None = None
    """Optional: per coordinate, the sum of the magnitudes of the terms ``df`` adds up (for
    ``-2*(1-x) - 400*x*(y-x^2)``: ``2*|1-x| + 400*|x|*(|y| + x^2)``): the scale of its
    rounding, which ``grad_bound`` turns into a bound."""
    needs_data: bool = field(default=False, init=False)

    ROUNDINGS = 16  # a few operations per term, each side: generous, still ~1e-15 in float64

    def __post_init__(self):
        if not self.description:
            object.__setattr__(self, "description", self.name)

    def grad_bound(self, params: Params, x=None, y=None, n=None) -> Params | None:
        """A bound on |formula - autograd| at ``params``: ``ROUNDINGS * u * terms`` plus a
        subnormal; None when the problem gives no ``terms``."""
        if self.terms is None:
            return None
        values = [params[k] for k in self.param_names]
        info = torch.finfo(values[0].dtype)
        mags = self.terms(*(v.detach() for v in values))
        return {
            k: self.ROUNDINGS * info.eps / 2 * m.abs() + info.smallest_normal * info.eps
            for k, m in zip(self.param_names, mags)
        }

    def loss(self, params: Params, x=None, y=None) -> torch.Tensor:
        return self.f(*(params[n] for n in self.param_names))

    def grad(self, params: Params, x=None, y=None) -> Params:
        return dict(zip(self.param_names, self.df(*(params[n] for n in self.param_names))))


XCOS_C = 0.15 * math.pi

PROBLEMS: dict[str, object] = {
    "linear": Linear(),
    "paraboloid": FunctionProblem(
        "paraboloid",
        ("x", "y"),
        f=lambda x, y: x**2 + y**2,
        df=lambda x, y: (2 * x, 2 * y),
        terms=lambda x, y: (2 * x.abs(), 2 * y.abs()),
        start={"x": -3.0, "y": 4.0},
        description="f = x^2 + y^2 (the lecture's first section)",
        special_points=((0.0, 0.0), (1.0, -1.0), (-4.0, 3.75)),
        minimum=(0.0, 0.0),
    ),
    "elliptic": FunctionProblem(
        "elliptic",
        ("x", "y"),
        f=lambda x, y: x**2 + 2 * y**2,
        df=lambda x, y: (2 * x, 4 * y),
        terms=lambda x, y: (2 * x.abs(), 4 * y.abs()),
        start={"x": -5.0, "y": -2.0},
        description="f = x^2 + 2*y^2",
        special_points=((0.0, 0.0), (-5.0, -2.0)),
        minimum=(0.0, 0.0),
        box=(-6.0, 6.0),
    ),
    "ravine": FunctionProblem(
        "ravine",
        ("x", "y"),
        f=lambda x, y: 0.1 * x**2 + 2 * y**2,
        df=lambda x, y: (0.2 * x, 4 * y),
        terms=lambda x, y: (0.2 * x.abs(), 4 * y.abs()),
        start={"x": -5.0, "y": -2.0},
        description="f = 0.1*x^2 + 2*y^2 (d2l.ai's ill-conditioned example, chapter 12)",
        special_points=((0.0, 0.0), (-5.0, -2.0)),
        minimum=(0.0, 0.0),
        box=(-6.0, 6.0),
    ),
    "saddle": FunctionProblem(
        "saddle",
        ("x", "y"),
        f=lambda x, y: x**2 - y**2,
        df=lambda x, y: (2 * x, -2 * y),
        terms=lambda x, y: (2 * x.abs(), 2 * y.abs()),
        start={"x": -3.0, "y": 0.0},
        description="f = x^2 - y^2 (a saddle point at the origin)",
        special_points=((0.0, 0.0), (-3.0, 0.0), (0.0, 1e-8)),
    ),
    "rosenbrock": FunctionProblem(
        "rosenbrock",
        ("x", "y"),
        f=lambda x, y: (1 - x) ** 2 + 100 * (y - x**2) ** 2,
        df=lambda x, y: (-2 * (1 - x) - 400 * x * (y - x**2), 200 * (y - x**2)),
        terms=lambda x, y: (
            2 * (1 + x.abs()) + 400 * x.abs() * (y.abs() + x**2),
            200 * (y.abs() + x**2),
        ),
        start={"x": -1.2, "y": 1.0},
        description="f = (1-x)^2 + 100*(y-x^2)^2 (minimum at (1, 1))",
        special_points=((1.0, 1.0), (-1.2, 1.0), (0.0, 0.0)),
        minimum=(1.0, 1.0),
        box=(-2.0, 2.0),
    ),
    "square": FunctionProblem(
        "square",
        ("x",),
        f=lambda x: x**2,
        df=lambda x: (2 * x,),
        terms=lambda x: (2 * x.abs(),),
        start={"x": 10.0},
        description="f = x^2",
        special_points=((0.0,), (10.0,)),
        minimum=(0.0,),
        box=(-10.0, 10.0),
    ),
    "xcos": FunctionProblem(
        "xcos",
        ("x",),
        f=lambda x: x * torch.cos(XCOS_C * x),
        df=lambda x: (torch.cos(XCOS_C * x) - XCOS_C * x * torch.sin(XCOS_C * x),),
        # cos and sin of c*x: their argument is rounded, so errors scale with |c*x| too
        terms=lambda x: ((1 + XCOS_C * x.abs()) * (1 + XCOS_C * x.abs()),),
        start={"x": 10.0},
        description="f = x*cos(c*x), c = 0.15*pi (local minima)",
        special_points=((0.0,), (10.0,), (-10.0,)),
        box=(-13.0, 13.0),
    ),
}


def fits(problem, y) -> bool:
    """Whether a batch with targets ``y`` is one chunk: small, data-free (``y`` None), or of a
    problem without ``sums``."""
    rows = getattr(problem, "chunk_rows", None)
    return y is None or rows is None or y.shape[-1] <= rows


def rounding_bound(problem, params: dict, x, y, n=None) -> dict | None:
    """The problem's bound on |formula - autograd| at ``params`` (``grad_bound``) over the batch
    ``x, y`` of ``n`` rows (default: all of ``y``; a process's shard is part of a bigger batch),
    chunk by chunk for big data; None when the problem gives none."""
    bound = getattr(problem, "grad_bound", None)
    if bound is None:
        return None
    if y is None:
        return bound(params, x, y)
    total = None
    for xc, yc in chunks(problem, x, y):
        part = bound(params, xc, yc, n or y.shape[-1])
        if part is None:
            return None
        total = part if total is None else {k: total[k] + v for k, v in part.items()}
    return total


def chunks(problem, x, y) -> list:
    """The batch ``(x, y)`` as a list of chunks of ``problem.chunk_rows`` rows; a single chunk
    when it ``fits``."""
    if fits(problem, y):
        return [(x, y)]
    rows = problem.chunk_rows
    return [(x[a : a + rows], y[a : a + rows]) for a in range(0, y.shape[-1], rows)]


def get(spec: str):
    """A problem by name, or a user's own as ``file.py:NAME`` or ``package.module:NAME``.

    A user's problem is any object with ``name``, ``param_names``, ``start``,
    ``loss(params, x, y)`` and ``grad(params, x, y)`` (``torchgd.interfaces.Problem``; the
    optional members get their defaults); a ``FunctionProblem`` is the easy way.
    """
    if spec in PROBLEMS:
        return PROBLEMS[spec]
    if ":" not in spec:
        raise TorchgdError(
            f"unknown problem '{spec}': use one of {', '.join(PROBLEMS)} or FILE.py:NAME"
        )
    from .loading import attribute

    attr = spec.rpartition(":")[2]
    problem = attribute(spec, "problem")
    if problem is None:
        raise TorchgdError(
            f"'{spec}' is not a problem (no {attr} there); "
            "define a torchgd.problems.FunctionProblem"
        )
    from .interfaces import as_problem

    return as_problem(problem, f"'{spec}'")  # checked once here, optional members defaulted
