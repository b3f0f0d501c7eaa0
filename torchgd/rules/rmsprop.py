r"""RMSprop: the step divided by the root of a moving average of squared gradients.

As ``torch.optim.RMSprop`` documents it, with learning rate :math:`\gamma`, smoothing
:math:`\alpha`, momentum :math:`\mu`, weight decay :math:`\lambda`, at step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}
    v_t = alpha * v_{t-1} + (1 - alpha) * g_t^2             (square_avg, v_0 = 0)
    v~  = v_t
    if centered:     m_t = alpha * m_{t-1} + (1 - alpha) * g_t;   v~ = v_t - m_t^2   (grad_avg)
    if mu > 0:       b_t = mu * b_{t-1} + g_t / (sqrt(v~) + eps)    (momentum_buffer)
                     theta_t = theta_{t-1} - gamma * b_t
    else:            theta_t = theta_{t-1} - gamma * g_t / (sqrt(v~) + eps)

Two spellings:

* ``textbook`` (d2l.ai 12.8): ``w -= lr * g / sqrt(v + eps)`` -- eps **inside** the square
  root, as the chapter writes it (a different formula, not only other roundings); the moving
  averages as ``alpha * v + (1 - alpha) * g^2``.
* ``torch-exact``: torch's single-tensor operations (``mul_().addcmul_()``, ``lerp_``,
  ``sqrt().add_(eps)``, ``addcdiv_``); bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, begin, help_, invalid, zeros

NAME = "rmsprop"
TORCH_CLASS = "RMSprop"
STATE = ("square_avg", "grad_avg", "momentum_buffer")
FORMULAS = {
    "square_avg": "v = alpha * v + (1 - alpha) * g^2",
    "grad_avg": "m = alpha * m + (1 - alpha) * g",
    "momentum_buffer": "b = momentum * b + g / (sqrt(v) + eps)",
}


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.RMSprop``'s defaults and checks (same words)."""

    lr: float = field(default=1e-2, metadata=help_("learning rate gamma"))
    alpha: float = field(
        default=0.99, metadata=help_("RMSprop: smoothing, v = alpha*v + (1-alpha)*g^2", other=0.5)
    )
    eps: float = field(
        default=1e-8,
        metadata=help_("added to the denominator (torch's default per rule)", other=1e-3),
    )
    weight_decay: float = field(
        default=0.0, metadata=help_("L2 penalty lambda: grad += lambda*w", other=0.1)
    )
    momentum: float = field(
        default=0.0, metadata=help_("RMSprop momentum mu: b = mu*b + g/(sqrt(v) + eps)", other=0.9)
    )
    centered: bool = field(
        default=False, metadata=help_("RMSprop: divide by the variance, v - m^2 (Graves 2013)")
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        self.numbers("lr", "alpha", "eps", "weight_decay", "momentum")
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if not 0.0 <= self.eps:
            raise invalid(f"Invalid epsilon value: {self.eps}")
        if not 0.0 <= self.momentum:
            raise invalid(f"Invalid momentum value: {self.momentum}")
        if not 0.0 <= self.weight_decay:
            raise invalid(f"Invalid weight_decay value: {self.weight_decay}")
        if not 0.0 <= self.alpha:
            raise invalid(f"Invalid alpha value: {self.alpha}")
        self.finite("lr", "alpha", "eps", "weight_decay", "momentum")

    @property
    def state_names(self) -> tuple:
        return (
            "square_avg",
            *(["grad_avg"] if self.centered else []),
            *(["momentum_buffer"] if self.momentum > 0 else []),
        )


def init(params: dict, hp: Hyper) -> dict:
    """Every average starts at zero, the step count at 0 (torch makes them at the first
    step)."""
    return zeros(params, hp.state_names)


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One RMSprop step on ``params`` in place (``state``: see ``init``)."""
    import torch

    exact = spelling == "torch-exact"
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        a = hp.alpha
        if exact:
            if hp.weight_decay != 0:
                g = g.add(theta, alpha=hp.weight_decay)
            st["square_avg"].mul_(a).addcmul_(g, g, value=1 - a)
            if hp.centered:
                st["grad_avg"].lerp_(g, 1 - a)
                avg = st["square_avg"].addcmul(st["grad_avg"], st["grad_avg"], value=-1).sqrt_()
            else:
                avg = st["square_avg"].sqrt()
            avg = avg.add_(hp.eps)
            if hp.momentum > 0:
                st["momentum_buffer"].mul_(hp.momentum).addcdiv_(g, avg)
                theta.add_(st["momentum_buffer"], alpha=-hp.lr)
            else:
                theta.addcdiv_(g, avg, value=-hp.lr)
            continue
        if hp.weight_decay != 0:
            g = g + hp.weight_decay * theta
        st["square_avg"] = a * st["square_avg"] + (1 - a) * g * g
        v = st["square_avg"]
        if hp.centered:
            st["grad_avg"] = a * st["grad_avg"] + (1 - a) * g
            v = v - st["grad_avg"] * st["grad_avg"]
        if hp.momentum > 0:
            st["momentum_buffer"] = hp.momentum * st["momentum_buffer"] + g / torch.sqrt(v + hp.eps)
            theta -= hp.lr * st["momentum_buffer"]
        else:
            theta -= hp.lr * g / torch.sqrt(v + hp.eps)  # d2l.ai: eps inside the root


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "the textbook rule (d2l.ai) puts eps inside the square root, g / sqrt(v + eps), where "
        f"torch.optim.RMSprop adds it outside, g / (sqrt(v) + eps) (eps={hp.eps:g}): a "
        "different formula, not another rounding; its step, w.addcdiv_(g, avg, value=-lr), "
        "rounds as w - lr * g / avg does. --spelling torch-exact uses torch's operations and "
        "matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    centered = (
        "; the centered mean with grad_avg.lerp_(g, 1 - alpha) (m + (1-alpha)(g - m)) where "
        "the textbook writes alpha * m + (1 - alpha) * g"
        if hp.centered
        else ""
    )
    return (
        "torch.optim.RMSprop updates the average with v.mul_(alpha).addcmul_(g, g, "
        "value=1 - alpha) (its last product and sum rounded once, fused) where the textbook "
        f"rounds alpha * v, (1 - alpha) * g * g and their sum separately{centered}; with "
        "momentum the buffer also takes eps outside the root"
    )
