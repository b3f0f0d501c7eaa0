"""``--compile``: the manual path's sums over a big batch as one fused kernel.

Without it a big batch goes chunk by chunk (``Linear.sums``): one kernel writes the residual's
negative ``e_n = y_n - x_n * w`` into a buffer that stays in cache, two dot products read it
back. ``torch.compile`` (inductor: C++ on CPU, Triton on CUDA) fuses the lines below into one
loop over the whole batch that reads each ``x_n`` and ``y_n`` once and writes nothing but the
sums: the time of one pass over memory, like ``torch.dot(x, y)``::

    e_n = y_n - x_n * w   (- b)          rounded to the run's dtype, as every path computes it
    sum_n e_n^2                          = N * cost(w)
    sum_n 2 * x_n * (x_n * w - y_n)      = -2 * sum_n x_n * e_n   (x^T e for many features)
    sum_n 2 * (x_n * w + b - y_n)        = -2 * sum_n e_n         (with a bias)

The products and the sums are taken in float64 (free here: the loop waits on memory, not on
arithmetic), and divided by N before they are rounded to the run's dtype once. So in float32
the fused manual path is *closer* to the float64 formula than the eager one, whose sums round
at every addition; ``torchgd train`` reports both distances. Batches that fit one chunk keep
the lecture's expressions, compiled or not, so every lecture number stays bit for bit.

Compiling costs seconds (9-17 s in a fresh process with an empty cache on the README's machine,
2-6 s once inductor's cache under ``$TMPDIR/torchinductor_$USER`` has the kernel); it happens
before a run writes anything, and a failure (no C++ compiler, say) is one line.
"""

from __future__ import annotations

import time

import torch

from .errors import TorchgdError

WIDE = torch.float64


def linear_sums(w, b, x, y):
    """The sums of the module docstring for ``y_hat = x * w (+ b)`` or ``x @ w (+ b)``, as
    float64 tensors: ``(sum e^2, -2 * sum x e, -2 * sum e or None)``."""
    xw = x * w if x.dim() == 1 else (x * w).sum(-1)
    e = (y - xw if b is None else y - xw - b).to(WIDE)
    xs = x.to(WIDE)
    gw = (xs * e).sum() if x.dim() == 1 else (xs * e[:, None]).sum(0)
    gb = None if b is None else -2 * e.sum()
    return (e * e).sum(), -2 * gw, gb


class Kernel:
    """``linear_sums`` compiled once per process, called as ``kernel(params, x, y)`` ->
    ``(loss_sum, {"w": ..., "b": ...})`` in float64; ``seconds``: the time the last
    ``prepare`` took (compiling, or finding the kernel in the cache)."""

    _compiled = None

    def __init__(self):
        self.seconds = 0.0

    def __call__(self, params: dict, x, y) -> tuple:
        s, gw, gb = Kernel._compiled(params["w"].detach(), _bias(params), x, y)
        return s, ({"w": gw} if gb is None else {"w": gw, "b": gb})

    def prepare(self, params: dict, x, y) -> Kernel:
        """Compile for (and run once on) a batch like the run's: errors become one line here,
        before the run has written anything (torch.compile itself refuses some Pythons)."""
        start = time.perf_counter()
        try:
            if Kernel._compiled is None:
                Kernel._compiled = torch.compile(linear_sums, fullgraph=True)
            self(params, x, y)
        except Exception as exc:  # inductor's errors are pages long: keep their first line
            lines = str(exc).strip().splitlines() or [""]
            raise TorchgdError(
                f"--compile: torch.compile failed on this machine ({type(exc).__name__}: "
                f"{lines[0][:200]}); run without --compile"
            ) from None
        self.seconds = time.perf_counter() - start
        return self


def nothing_to_compile() -> str:
    """What ``--compile`` says when every batch fits one chunk."""
    from .problems import CHUNK_ROWS

    return (
        f"--compile: nothing to compile: every batch fits one chunk ({CHUNK_ROWS:,} rows) and "
        "runs the lecture's expressions"
    )


def check(problem) -> None:
    """Refuse, in one line, a problem the kernel does not compute."""
    from .problems import Linear

    if not isinstance(problem, Linear):
        raise TorchgdError(
            f"--compile fuses the linear model's sums; it does not apply to problem "
            f"'{problem.name}'"
        )


def kernel_for(problem, params: dict, x, y) -> Kernel | None:
    """The kernel for the linear ``problem``, compiled for batches like ``(x, y)`` (on their
    device); None when they fit one chunk: those run the lecture's expressions."""
    from .problems import fits

    check(problem)
    return None if fits(problem, y) else Kernel().prepare(params, x, y)


def _bias(params: dict):
    b = params.get("b")
    return None if b is None else b.detach()
