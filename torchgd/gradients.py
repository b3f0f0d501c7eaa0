"""Gradients three ways: the analytic formula, autograd, and central differences.

Central differences, as in the lecture (h = 1e-4)::

    df/dx ~ (f(x + h/2, y) - f(x - h/2, y)) / h

``numerical`` evaluates that for a whole grid at once: one call of ``f`` per coordinate and
sign, on tensors holding every point, instead of the lecture's Python loop over points.

Choosing h. The error of a central difference has two parts: truncation, about
``h^2/24 * |f'''|``, which shrinks with h, and rounding, about ``eps * |f| / h``, which grows as h
shrinks (the two values of f agree in their leading digits and the subtraction cancels them).
Their sum is smallest near ``h ~ eps^(1/3)``, scaled by the size of x: ``h="auto"`` uses
``eps^(1/3) * max(1, |x|)`` (6.1e-6 in float64, 4.9e-3 in float32). With the lecture's fixed
h = 1e-4 in float32 the rounding part alone is about 1.2e-7 * |f| / 1e-4 ~ 1e-3 * |f|; the auto
step brings it to about 2.4e-5 * |f|.
"""

from __future__ import annotations

import torch


def analytic(problem, params: dict, x=None, y=None) -> dict:
    """The hand-written formula, ``problem.grad``."""
    with torch.no_grad():
        return problem.grad(params, x, y)


def autograd(problem, params: dict, x=None, y=None) -> tuple[torch.Tensor, dict]:
    """``loss.backward()`` on fresh leaves; returns the loss and the gradients."""
    leaves = {n: t.detach().clone().requires_grad_(True) for n, t in params.items()}
    loss = problem.loss(leaves, x, y)
    grads = torch.autograd.grad(loss, list(leaves.values()))
    return loss.detach(), dict(zip(leaves, grads))


def auto_step(x: torch.Tensor) -> torch.Tensor:
    """The step for central differences chosen for the dtype: eps^(1/3) * max(1, |x|)."""
    eps = torch.finfo(x.dtype).eps
    return eps ** (1 / 3) * torch.clamp(x.abs(), min=1.0)


def numerical(f, *coords: torch.Tensor, h: float | str = 1e-4) -> tuple[torch.Tensor, ...]:
    """Central differences of ``f`` at every point of a grid.

    ``coords`` are tensors of one shape (e.g. from ``torch.meshgrid``), ``f`` works elementwise;
    returns one tensor of partial derivatives per coordinate, of the same shape.
    """
    grads = []
    for i, xi in enumerate(coords):
        step = auto_step(xi) if h == "auto" else h
        plus = list(coords)
        minus = list(coords)
        plus[i] = xi + step / 2
        minus[i] = xi - step / 2
        grads.append((f(*plus) - f(*minus)) / step)
    return tuple(grads)


def numerical_params(
    problem, params: dict, x=None, y=None, h: float | str = 1e-4, loss=None
) -> dict:
    """Central differences of the loss with respect to each entry of each parameter.

    ``loss(problem, params, x, y)``: how to evaluate it; ``problem.loss`` by default."""
    loss = loss or (lambda problem, p, x, y: problem.loss(p, x, y))
    out = {}
    with torch.no_grad():
        for name, value in params.items():
            flat = value.detach().reshape(-1)
            g = torch.empty_like(flat)
            for k in range(flat.numel()):
                step = auto_step(flat[k]) if h == "auto" else h
                shifted = []
                for sign in (1, -1):
                    v = flat.clone()
                    v[k] = flat[k] + sign * step / 2
                    shifted.append(loss(problem, {**params, name: v.reshape(value.shape)}, x, y))
                g[k] = (shifted[0] - shifted[1]) / step
            out[name] = g.reshape(value.shape)
    return out


class AnalyticFunction(torch.autograd.Function):
    """The loss, with the hand-written formula as its backward: what gradcheck verifies."""

    @staticmethod
    def forward(ctx, problem, x, y, names, *values):
        ctx.problem, ctx.names, ctx.data = problem, names, (x, y)
        ctx.save_for_backward(*values)
        return problem.loss(dict(zip(names, values)), x, y)

    @staticmethod
    def backward(ctx, grad_output):
        values = ctx.saved_tensors
        g = ctx.problem.grad(dict(zip(ctx.names, values)), *ctx.data)
        return (None, None, None, None, *(grad_output * g[n] for n in ctx.names))
