r"""RAdam: Adam whose adaptive step is switched on only once the variance of its second moment
can be trusted, and rectified by how much it can (Liu et al., 2020).

As ``torch.optim.RAdam`` documents it, with learning rate :math:`\gamma`, betas
:math:`(\beta_1, \beta_2)`, weight decay :math:`\lambda`, at step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}       (decoupled_weight_decay: see below)
    m_t = beta1 * m_{t-1} + (1 - beta1) * g_t                              (exp_avg)
    v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2                            (exp_avg_sq)
    m^  = m_t / (1 - beta1^t)
    rho_inf = 2 / (1 - beta2) - 1,   rho_t = rho_inf - 2 t beta2^t / (1 - beta2^t)
    if rho_t > 5:   l_t = sqrt(1 - beta2^t) / (sqrt(v_t) + eps)
                    r_t = sqrt((rho_t - 4)(rho_t - 2) rho_inf / ((rho_inf - 4)(rho_inf - 2) rho_t))
                    theta_t = theta_{t-1} - gamma * m^ * l_t * r_t
    else:           theta_t = theta_{t-1} - gamma * m^          (SGD with momentum, warming up)

The switch-over comes at the first step with rho_t > 5 (step 6 for beta2 = 0.999; the paper
writes 4, torch and the paper's code use 5). ``decoupled_weight_decay`` (RAdamW): the
parameters shrink first, ``theta *= 1 - gamma lambda``.

Two spellings of the same formula:

* ``textbook``: as above, ``lr * r_t * m^ * sqrt(1 - beta2^t) / (sqrt(v) + eps)``, each
  operation rounded on its own.
* ``torch-exact``: ``m.lerp_``, ``v.mul_().addcmul_()``, ``(m / (1 - beta1^t)) * lr`` times
  ``sqrt(1 - beta2^t) / (sqrt(v) + eps)`` (a reciprocal, then a product: how a tensor divides
  a float) times ``r_t``; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import adam, nadam
from ._base import Base, begin, foreach, help_, like, zeros

NAME = "radam"
TORCH_CLASS = "RAdam"
STATE = ("exp_avg", "exp_avg_sq")
FORMULAS = adam.FORMULAS


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.RAdam``'s defaults and checks (same words)."""

    lr: float = field(default=1e-3, metadata=help_("learning rate gamma"))
    betas: tuple = like(adam.Hyper, "betas")
    eps: float = like(adam.Hyper, "eps")
    weight_decay: float = like(adam.Hyper, "weight_decay")
    decoupled_weight_decay: bool = like(nadam.Hyper, "decoupled_weight_decay")
    maximize: bool = like(adam.Hyper, "maximize")

    __post_init__ = adam.Hyper.__post_init__  # the same checks as torch.optim.Adam's

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """Both moments start at zero (torch makes them at the first step)."""
    return zeros(params, STATE)


def rho(beta2: float, t: int) -> tuple:
    """(rho_inf, rho_t): the length of the approximated simple moving average, as torch
    computes it."""
    rho_inf = 2 / (1 - beta2) - 1
    return rho_inf, rho_inf - 2 * t * (beta2**t) / (1 - beta2**t)


def rectifier(rho_inf: float, rho_t: float) -> float:
    return ((rho_t - 4) * (rho_t - 2) * rho_inf / ((rho_inf - 4) * (rho_inf - 2) * rho_t)) ** 0.5


def switch_over(beta2: float, limit: int = 10**6) -> int | None:
    """The first step whose update is rectified (rho_t > 5), or None within ``limit``."""
    return next((t for t in range(1, limit) if rho(beta2, t)[1] > 5.0), None)


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One RAdam step on ``params`` in place."""
    exact = spelling == "torch-exact"
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        step = (_foreach_step if foreach(theta) else _torch_step) if exact else _textbook_step
        step(theta, g, st, hp, float(st["step"]))


def _torch_step(theta, g, st, hp, t) -> None:
    """``torch.optim.radam._single_tensor_radam``'s operations, in its order."""
    beta1, beta2 = hp.betas
    adam.moments(theta, g, st, hp, hp.decoupled_weight_decay)
    m, v = st["exp_avg"], st["exp_avg_sq"]
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    bias_corrected_exp_avg = m / bias_correction1
    rho_inf, rho_t = rho(beta2, t)
    if rho_t > 5.0:
        adaptive_lr = (bias_correction2**0.5) / v.sqrt().add_(hp.eps)
        rect = rectifier(rho_inf, rho_t)
        theta.add_(bias_corrected_exp_avg * hp.lr * adaptive_lr * rect, alpha=-1.0)
    else:
        theta.add_(bias_corrected_exp_avg * hp.lr, alpha=-1.0)


def _foreach_step(theta, g, st, hp, t) -> None:
    """``torch.optim.radam._multi_tensor_radam``'s operations (torch's default on CUDA): one
    buffer, sqrt(1 - beta2^t) lr r / (1 - beta1^t) / (sqrt(v) + eps) plus the unrectified
    step size, times m."""
    import torch

    beta1, beta2 = hp.betas
    rho_inf, rho_t = rho(beta2, t)
    adam.moments(theta, g, st, hp, hp.decoupled_weight_decay, each=True)
    m, v = st["exp_avg"], st["exp_avg_sq"]
    rect = rectifier(rho_inf, rho_t) if rho_t > 5 else 0
    unrectified = 0 if rect > 0 else 1.0
    bc1 = 1 - beta1**t
    unrect_step_size = (hp.lr * unrectified / bc1) * -1
    bc2 = ((1 - beta2**t) ** 0.5) * (hp.lr * rect / bc1) * -1
    buffer = torch._foreach_sqrt([v])
    torch._foreach_add_(buffer, hp.eps)
    torch._foreach_div_(buffer, [bc2])
    torch._foreach_reciprocal_(buffer)
    torch._foreach_add_(buffer, [unrect_step_size])
    torch._foreach_addcmul_([theta], [m], buffer)


def _textbook_step(theta, g, st, hp, t) -> None:
    """Liu et al.'s RAdam as written above."""
    import torch

    beta1, beta2 = hp.betas
    decoupled = hp.decoupled_weight_decay and hp.weight_decay != 0
    if hp.weight_decay != 0 and not decoupled:
        g = g + hp.weight_decay * theta
    st["exp_avg"] = beta1 * st["exp_avg"] + (1 - beta1) * g
    st["exp_avg_sq"] = beta2 * st["exp_avg_sq"] + (1 - beta2) * g * g
    m_hat = st["exp_avg"] / (1 - beta1**t)
    if decoupled:
        theta -= hp.lr * hp.weight_decay * theta
    rho_inf, rho_t = rho(beta2, t)
    if rho_t > 5.0:
        r = rectifier(rho_inf, rho_t)
        l_t = (1 - beta2**t) ** 0.5 / (torch.sqrt(st["exp_avg_sq"]) + hp.eps)
        theta -= hp.lr * r * m_hat * l_t
    else:
        theta -= hp.lr * m_hat


def explain_update(hp: Hyper, w, g) -> str:
    k = switch_over(hp.betas[1])
    when = f"from step {k} on" if k else "never within a million steps"
    return (
        f"RAdam steps like SGD with momentum until rho_t > 5 and rectifies Adam's step {when} "
        "(beta2 = "
        f"{hp.betas[1]}); torch.optim.RAdam computes (m / (1 - beta1^t)) * lr * (sqrt(1 - "
        "beta2^t) / (sqrt(v) + eps)) * r, the quotient as a reciprocal and a product, where the "
        "textbook multiplies lr * r * m^ * l in another order: the same formula, rounded at "
        "other places. --spelling torch-exact uses torch's operations and matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    return nadam.explain_state(hp).replace("torch.optim.NAdam", "torch.optim.RAdam")
