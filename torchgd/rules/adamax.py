r"""Adamax: Adam with the infinity norm in place of the root mean square (Kingma & Ba, 2015,
section 7.1).

As ``torch.optim.Adamax`` documents it, with learning rate :math:`\gamma`, betas
:math:`(\beta_1, \beta_2)`, weight decay :math:`\lambda`, at step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}
    m_t = beta1 * m_{t-1} + (1 - beta1) * g_t                         (exp_avg)
    u_t = max(beta2 * u_{t-1}, |g_t| + eps)                            (exp_inf)
    theta_t = theta_{t-1} - gamma * m_t / ((1 - beta1^t) * u_t)

Two spellings of the same formula:

* ``textbook``: as above, each operation rounded on its own: ``beta1 * m + (1 - beta1) * g``,
  then ``w -= lr * m / ((1 - beta1^t) * u)``.
* ``torch-exact``: ``m.lerp_(g, 1 - beta1)``, ``torch.maximum(u.mul_(beta2), g.abs().add_(eps))``
  and the correction folded into the step size: ``w.addcdiv_(m, u, value=-lr / (1 -
  beta1^t))``; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import adam
from ._base import Base, begin, help_, like, zeros

NAME = "adamax"
TORCH_CLASS = "Adamax"
STATE = ("exp_avg", "exp_inf")
FORMULAS = {
    "exp_avg": "m = beta1 * m + (1 - beta1) * g",
    "exp_inf": "u = max(beta2 * u, |g| + eps)",
}


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.Adamax``'s defaults and checks (Adam's words)."""

    lr: float = field(default=2e-3, metadata=help_("learning rate gamma"))
    betas: tuple = like(adam.Hyper, "betas")
    eps: float = like(adam.Hyper, "eps")
    weight_decay: float = like(adam.Hyper, "weight_decay")
    maximize: bool = like(adam.Hyper, "maximize")

    __post_init__ = adam.Hyper.__post_init__  # the same checks as torch.optim.Adam's

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """The moment and the infinity norm start at zero (torch makes them at the first step)."""
    return zeros(params, STATE)


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One Adamax step on ``params`` in place."""
    import torch

    beta1, beta2 = hp.betas
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        t = st["step"]
        if spelling == "torch-exact":  # torch.optim.adamax._single_tensor_adamax, in its order
            if hp.weight_decay != 0:
                g = g.add(theta, alpha=hp.weight_decay)
            st["exp_avg"].lerp_(g, 1 - beta1)
            torch.maximum(st["exp_inf"].mul_(beta2), g.abs().add_(hp.eps), out=st["exp_inf"])
            theta.addcdiv_(st["exp_avg"], st["exp_inf"], value=-(hp.lr / (1 - beta1**t)))
            continue
        if hp.weight_decay != 0:
            g = g + hp.weight_decay * theta
        st["exp_avg"] = beta1 * st["exp_avg"] + (1 - beta1) * g
        st["exp_inf"] = torch.maximum(beta2 * st["exp_inf"], torch.abs(g) + hp.eps)
        theta -= hp.lr * st["exp_avg"] / ((1 - beta1**t) * st["exp_inf"])


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "the textbook rule divides by the bias correction and the norm together, lr * m / ((1 "
        "- beta1^t) * u), where torch.optim.Adamax folds the correction into the step size, "
        "w.addcdiv_(m, u, value=-lr / (1 - beta1^t)): the same formula, rounded at other "
        "places. --spelling torch-exact uses torch's operations and matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    return (
        "torch.optim.Adamax moves the moment with m.lerp_(g, 1 - beta1) (m + (1 - beta1)(g - "
        "m)), where the textbook rounds beta1 * m, (1 - beta1) * g and their sum separately; "
        "the infinity norm max(beta2 * u, |g| + eps) rounds the same in both"
    )
