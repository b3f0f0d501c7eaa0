r"""SGD: the whole of ``torch.optim.SGD``, written out (the lecture's rule, and what follows).

With learning rate :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau`, weight decay
:math:`\lambda`, at step :math:`t` with gradient :math:`g_t` of parameter :math:`\theta`::

    if maximize:   g_t = -g_t
    if lambda != 0: g_t = g_t + lambda * theta_{t-1}
    if mu != 0:
        b_t = g_t                                   if t == 1   (the buffer starts as the gradient,
        b_t = mu * b_{t-1} + (1 - tau) * g_t        otherwise    so dampening acts from step 2)
        g_t = g_t + mu * b_t   if nesterov   else   b_t
    theta_t = theta_{t-1} - gamma * g_t             (the lecture's eq. 2: w = w - lr * grad)

Two spellings of the same math:

* ``textbook``: plain arithmetic, ``w -= lr * grad``. ``lr * grad`` is rounded, then the
  difference is rounded: two roundings.
* ``torch-exact``: the operations ``torch.optim.SGD`` uses (``param.add_(grad, alpha=-lr)`` and
  friends). On CPUs with FMA these kernels compute ``w + (-lr) * grad`` with one rounding, so this
  spelling matches ``torch.optim.SGD`` bit for bit where the textbook may differ by an ulp.

This module imports no torch: the command line reads ``Hyper``'s fields to make its options.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from ..errors import TorchgdError

NAME = "sgd"
TORCH_CLASS = "SGD"  # torch.optim.SGD
STATE = "momentum_buffer"  # the per-parameter state, named as torch.optim.SGD names it


def _help(text: str, **more) -> dict:
    return {"help": text, **more}


@dataclass(frozen=True)
class Hyper:
    """Hyperparameters, keyword-only and checked like ``torch.optim.SGD.__init__``."""

    lr: float = field(default=0.01, metadata=_help("learning rate gamma: w -= lr * grad"))
    momentum: float = field(default=0.0, metadata=_help("SGD momentum mu: b = mu*b + (1-tau)*grad"))
    dampening: float = field(default=0.0, metadata=_help("SGD dampening tau"))
    weight_decay: float = field(default=0.0, metadata=_help("L2 penalty lambda: grad += lambda*w"))
    nesterov: bool = field(
        default=False, metadata=_help("Nesterov momentum: step along grad + mu*b")
    )
    maximize: bool = field(default=False, metadata=_help("ascend: w += lr * grad"))

    def __post_init__(self):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TorchgdError(
                    f"--{name.replace('_', '-')} must be a finite number, got {value}"
                )
        if self.lr <= 0:
            raise TorchgdError(f"--lr must be positive, got {self.lr}")
        if self.momentum < 0:
            raise TorchgdError(f"invalid momentum value {self.momentum}: must be >= 0")
        if self.weight_decay < 0:
            raise TorchgdError(f"invalid weight decay {self.weight_decay}: must be >= 0")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise TorchgdError("nesterov momentum requires a momentum > 0 and zero dampening")

    def asdict(self) -> dict:
        return asdict(self)

    def torch_kwargs(self) -> dict:
        """The keyword arguments of ``torch.optim.SGD``."""
        return self.asdict()

    @property
    def has_state(self) -> bool:
        """Whether the rule keeps a buffer per parameter (the report compares them)."""
        return self.momentum != 0


def init(params: dict) -> dict:
    """No state before the first step: the momentum buffer starts as the first gradient."""
    return {}


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One step of SGD on ``params`` in place; ``state`` holds the momentum buffers.

    ``grads`` is not modified. Must run under ``torch.no_grad()`` for leaf tensors.
    """
    exact = spelling == "torch-exact"
    for name, theta in params.items():
        g = grads[name]
        if hp.maximize:
            g = -g
        if hp.weight_decay != 0:
            g = g.add(theta, alpha=hp.weight_decay) if exact else g + hp.weight_decay * theta
        if hp.momentum != 0:
            buf = state.get(name)
            if buf is None:
                buf = g.clone().detach()
            elif exact:
                buf.mul_(hp.momentum).add_(g, alpha=1 - hp.dampening)
            else:
                buf = hp.momentum * buf + (1 - hp.dampening) * g
            state[name] = buf
            if hp.nesterov:
                g = g.add(buf, alpha=hp.momentum) if exact else g + hp.momentum * buf
            else:
                g = buf
        if exact:
            theta.add_(g, alpha=-hp.lr)
        else:
            theta -= hp.lr * g  # the lecture: w = w - lr * grad


def explain_update(hp: Hyper, w, g) -> str:
    """Why the textbook spelling and ``torch.optim.SGD`` (or torch-exact) can give different
    parameters from the same ``w`` and ``g``; plain SGD recomputes the step both ways."""
    measured = ""
    if hp.momentum == 0 and hp.weight_decay == 0 and not hp.maximize:
        two = w - hp.lr * g
        one = w.add(g, alpha=-hp.lr)
        k = int((two != one).nonzero()[0]) if bool((two != one).any()) else 0
        measured = (
            f" (recomputed: w - lr*grad = {two.reshape(-1)[k].item()!r}, "
            f"w.add(grad, alpha=-lr) = {one.reshape(-1)[k].item()!r})"
        )
    buffer = " (and add_ with alpha for its momentum buffer)" if hp.momentum else ""
    return (
        f"torch.optim.SGD updates with param.add_(grad, alpha=-lr){buffer}, which "
        f"this machine computes as one fused multiply-add, rounding once; the textbook "
        f"rule w -= lr * grad rounds lr * grad and then the difference, twice{measured}. "
        f"--rule torch-exact uses torch's operations and matches torch.optim.SGD bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    """Why the momentum buffers of the two spellings can differ."""
    return (
        "torch.optim.SGD updates the buffer with buf.mul_(momentum).add_(grad, "
        "alpha=1 - dampening), one fused multiply-add, where the textbook rule rounds "
        "momentum * buf and (1 - dampening) * grad before adding them"
    )
