r"""Adadelta: no learning rate needed -- the step is scaled by the root of a moving average
of past squared steps.

As ``torch.optim.Adadelta`` documents it, with learning rate :math:`\gamma` (1 by default),
decay :math:`\rho`, weight decay :math:`\lambda`, at step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}
    v_t     = rho * v_{t-1} + (1 - rho) * g_t^2                          (square_avg)
    Delta_t = sqrt(u_{t-1} + eps) / sqrt(v_t + eps) * g_t
    u_t     = rho * u_{t-1} + (1 - rho) * Delta_t^2                      (acc_delta)
    theta_t = theta_{t-1} - gamma * Delta_t

Two spellings (the same formula; d2l.ai 12.9 writes it so too, eps inside both roots):

* ``textbook``: ``rho * v + (1 - rho) * g * g``, ``sqrt(u + eps) / sqrt(v + eps) * g``,
  ``w -= lr * Delta``: each operation rounded on its own.
* ``torch-exact``: torch's ``mul_(rho).addcmul_(g, g, value=1 - rho)``, ``add(eps).sqrt_()``,
  ``div_(std).mul_(g)``, ``add_(delta, alpha=-lr)``; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, begin, help_, invalid, zeros

NAME = "adadelta"
TORCH_CLASS = "Adadelta"
STATE = ("square_avg", "acc_delta")
FORMULAS = {
    "square_avg": "v = rho * v + (1 - rho) * g^2",
    "acc_delta": "u = rho * u + (1 - rho) * Delta^2",
}


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.Adadelta``'s defaults and checks (same words)."""

    lr: float = field(default=1.0, metadata=help_("learning rate gamma", other=0.5))
    rho: float = field(
        default=0.9, metadata=help_("Adadelta: decay of both moving averages", other=0.5)
    )
    eps: float = field(
        default=1e-6,
        metadata=help_("added to the denominator (torch's default per rule)", other=1e-3),
    )
    weight_decay: float = field(
        default=0.0, metadata=help_("L2 penalty lambda: grad += lambda*w", other=0.1)
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        self.numbers("lr", "rho", "eps", "weight_decay")
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if not 0.0 <= self.rho <= 1.0:
            raise invalid(f"Invalid rho value: {self.rho}")
        if not 0.0 <= self.eps:
            raise invalid(f"Invalid epsilon value: {self.eps}")
        if not 0.0 <= self.weight_decay:
            raise invalid(f"Invalid weight_decay value: {self.weight_decay}")
        self.finite("lr", "rho", "eps", "weight_decay")

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """Both averages start at zero (torch makes them at the first step)."""
    return zeros(params, STATE)


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One Adadelta step on ``params`` in place (``state``: see ``init``)."""
    import torch

    exact = spelling == "torch-exact"
    rho, eps = hp.rho, hp.eps
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        if exact:
            if hp.weight_decay != 0:
                g = g.add(theta, alpha=hp.weight_decay)
            st["square_avg"].mul_(rho).addcmul_(g, g, value=1 - rho)
            std = st["square_avg"].add(eps).sqrt_()
            delta = st["acc_delta"].add(eps).sqrt_()
            delta.div_(std).mul_(g)
            st["acc_delta"].mul_(rho).addcmul_(delta, delta, value=1 - rho)
            theta.add_(delta, alpha=-hp.lr)
            continue
        if hp.weight_decay != 0:
            g = g + hp.weight_decay * theta
        st["square_avg"] = rho * st["square_avg"] + (1 - rho) * g * g
        delta = torch.sqrt(st["acc_delta"] + eps) / torch.sqrt(st["square_avg"] + eps) * g
        st["acc_delta"] = rho * st["acc_delta"] + (1 - rho) * delta * delta
        theta -= hp.lr * delta


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "torch.optim.Adadelta steps with w.add_(delta, alpha=-lr), one fused multiply-add "
        "rounded once, where the textbook rule w -= lr * delta rounds lr * delta first; the "
        "formula is the same (eps inside both roots in both). --spelling torch-exact uses torch's "
        "operations and matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    return (
        "torch.optim.Adadelta updates both averages with mul_(rho).addcmul_(x, x, value=1 - "
        "rho) (its last product and sum rounded once, fused) where the textbook rounds rho * "
        "v, (1 - rho) * x * x and their sum separately"
    )
