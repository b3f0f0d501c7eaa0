r"""Hand-written update rules: the whole of ``torch.optim.SGD``, written out.

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
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch

from .errors import TorchgdError

RULES = ("textbook", "torch-exact")


@dataclass(frozen=True)
class SGD:
    """Hyperparameters, keyword-only and checked like ``torch.optim.SGD.__init__``."""

    lr: float = 0.01
    momentum: float = 0.0
    dampening: float = 0.0
    weight_decay: float = 0.0
    nesterov: bool = False
    maximize: bool = False

    def __post_init__(self):
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise TorchgdError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
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
        return self.asdict()


def sgd_(params: dict, grads: dict, state: dict, hp: SGD, rule: str = "textbook") -> None:
    """One step of SGD on ``params`` in place; ``state`` holds the momentum buffers.

    ``grads`` is not modified. Must run under ``torch.no_grad()`` for leaf tensors.
    """
    exact = rule == "torch-exact"
    for name, theta in params.items():
        g = grads[name]
        if hp.maximize:
            g = -g
        if hp.weight_decay != 0:
            g = g.add(theta, alpha=hp.weight_decay) if exact else g + hp.weight_decay * theta
        if hp.momentum != 0:
            buf = state.get(name)
            if buf is None:
                buf = torch.clone(g).detach()
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
