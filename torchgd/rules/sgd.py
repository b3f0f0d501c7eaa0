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

from dataclasses import dataclass, field

from ._base import Base, help_, invalid, slot

NAME = "sgd"
TORCH_CLASS = "SGD"  # torch.optim.SGD
STATE = ("momentum_buffer",)  # per-parameter state, named as torch.optim.SGD names it
FORMULAS = {"momentum_buffer": "b = momentum * b + (1 - dampening) * g"}


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters, keyword-only and checked like ``torch.optim.SGD.__init__`` (same
    words). The default learning rate is the lecture's 0.01 (torch's is 0.001)."""

    lr: float = field(default=0.01, metadata=help_("learning rate gamma: w -= lr * grad"))
    momentum: float = field(
        default=0.0, metadata=help_("SGD momentum mu: b = mu*b + (1-tau)*grad", other=0.9)
    )
    dampening: float = field(default=0.0, metadata=help_("SGD dampening tau", other=0.3))
    weight_decay: float = field(
        default=0.0, metadata=help_("L2 penalty lambda: grad += lambda*w", other=0.01)
    )
    nesterov: bool = field(
        default=False, metadata=help_("Nesterov momentum: step along grad + mu*b")
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        self.numbers("lr", "momentum", "dampening", "weight_decay")
        if self.lr < 0.0:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if self.momentum < 0.0:
            raise invalid(f"Invalid momentum value: {self.momentum}")
        if self.weight_decay < 0.0:
            raise invalid(f"Invalid weight_decay value: {self.weight_decay}")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise invalid("Nesterov momentum requires a momentum and zero dampening")
        self.finite("lr", "momentum", "dampening", "weight_decay")

    @property
    def state_names(self) -> tuple:
        return STATE if self.momentum != 0 else ()


def init(params: dict, hp: Hyper | None = None) -> dict:
    """No state before the first step: the momentum buffer starts as the first gradient."""
    return {}


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One step of SGD on ``params`` in place; ``state[name]["momentum_buffer"]`` holds the
    momentum buffers. ``grads`` is not modified. Must run under ``torch.no_grad()`` for leaf
    tensors."""
    exact = spelling == "torch-exact"
    for name, theta in params.items():
        g = grads[name]
        if hp.maximize:
            g = -g
        if hp.weight_decay != 0:
            g = g.add(theta, alpha=hp.weight_decay) if exact else g + hp.weight_decay * theta
        if hp.momentum != 0:
            st = slot(state, name)
            buf = st.get("momentum_buffer")
            if buf is None:
                buf = g.clone().detach()
            elif exact:
                buf.mul_(hp.momentum).add_(g, alpha=1 - hp.dampening)
            else:
                buf = hp.momentum * buf + (1 - hp.dampening) * g
            st["momentum_buffer"] = buf
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
        f"--spelling torch-exact uses torch's operations and matches torch.optim.SGD bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    """Why the momentum buffers of the two spellings can differ."""
    return (
        "torch.optim.SGD updates the buffer with buf.mul_(momentum).add_(grad, "
        "alpha=1 - dampening), one fused multiply-add, where the textbook rule rounds "
        "momentum * buf and (1 - dampening) * grad before adding them"
    )
