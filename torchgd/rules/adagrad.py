r"""Adagrad: each coordinate's step divided by the root of its summed squared gradients.

As ``torch.optim.Adagrad`` documents it, with learning rate :math:`\gamma`, decay :math:`\eta`,
weight decay :math:`\lambda`, initial accumulator :math:`\tau`, at step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}
    gamma_t = gamma / (1 + (t - 1) * eta)
    s_t     = s_{t-1} + g_t^2                       (s_0 = tau)
    theta_t = theta_{t-1} - gamma_t * g_t / (sqrt(s_t) + eps)

Two spellings:

* ``textbook`` (d2l.ai 12.7): ``w -= lr_t * g / sqrt(s + eps)`` -- eps **inside** the square
  root, as the chapter writes it. A different formula, not only other roundings: the
  denominators differ by about ``eps / (2 sqrt(s))`` against ``eps``.
* ``torch-exact``: torch's single-tensor operations: ``s.addcmul_(g, g, value=1)``,
  ``std = s.sqrt().add_(eps)``, ``w.addcdiv_(g, std, value=-clr)``; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, begin, foreach, help_, invalid

NAME = "adagrad"
TORCH_CLASS = "Adagrad"
STATE = ("sum",)
FORMULAS = {"sum": "s = s + g^2"}


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.Adagrad``'s defaults and checks (same words)."""

    lr: float = field(default=1e-2, metadata=help_("learning rate gamma"))
    lr_decay: float = field(
        default=0.0, metadata=help_("Adagrad: lr_t = lr / (1 + (t-1) * lr_decay)", other=0.01)
    )
    weight_decay: float = field(
        default=0.0, metadata=help_("L2 penalty lambda: grad += lambda*w", other=0.1)
    )
    initial_accumulator_value: float = field(
        default=0.0, metadata=help_("Adagrad: the sum of squared gradients starts here", other=0.5)
    )
    eps: float = field(
        default=1e-10,
        metadata=help_("added to the denominator (torch's default per rule)", other=1e-3),
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        self.numbers("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if not 0.0 <= self.lr_decay:
            raise invalid(f"Invalid lr_decay value: {self.lr_decay}")
        if not 0.0 <= self.weight_decay:
            raise invalid(f"Invalid weight_decay value: {self.weight_decay}")
        if not 0.0 <= self.initial_accumulator_value:
            raise invalid(
                f"Invalid initial_accumulator_value value: {self.initial_accumulator_value}"
            )
        if not 0.0 <= self.eps:
            raise invalid(f"Invalid epsilon value: {self.eps}")
        self.finite("lr", "lr_decay", "weight_decay", "initial_accumulator_value", "eps")

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """The sums start at ``initial_accumulator_value`` (torch fills them when it is made)."""
    import torch

    return {
        n: {"step": 0, "sum": torch.full_like(t.detach(), hp.initial_accumulator_value)}
        for n, t in params.items()
    }


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One Adagrad step on ``params`` in place (``state``: see ``init``)."""
    import torch

    exact = spelling == "torch-exact"
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        t = st["step"]
        if exact and foreach(theta):
            _foreach_step(theta, g, st, hp, t)
        elif exact:
            if hp.weight_decay != 0:
                g = g.add(theta, alpha=hp.weight_decay)
            clr = hp.lr / (1 + (t - 1) * hp.lr_decay)
            st["sum"].addcmul_(g, g, value=1)
            std = st["sum"].sqrt().add_(hp.eps)
            theta.addcdiv_(g, std, value=-clr)
        else:
            if hp.weight_decay != 0:
                g = g + hp.weight_decay * theta
            st["sum"] = st["sum"] + g * g
            # lr first meets a tensor: a sweep's lanes (lr a tensor) round as one run does
            theta -= hp.lr * g / torch.sqrt(st["sum"] + hp.eps) / (1 + (t - 1) * hp.lr_decay)


def _foreach_step(theta, g, st, hp, t) -> None:
    """``torch.optim.adagrad._multi_tensor_adagrad``'s operations (torch's default on CUDA)."""
    import torch

    if hp.weight_decay != 0:
        g = torch._foreach_add([g], [theta], alpha=hp.weight_decay)[0]
    minus_clr = -hp.lr / (1 + (t - 1) * hp.lr_decay)
    torch._foreach_addcmul_([st["sum"]], [g], [g], value=1)
    std = torch._foreach_sqrt([st["sum"]])
    torch._foreach_add_(std, hp.eps)
    numerator = torch._foreach_mul([g], [minus_clr])
    torch._foreach_addcdiv_([theta], numerator, std)


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "the textbook rule (d2l.ai) puts eps inside the square root, w -= lr * g / "
        "sqrt(s + eps), where torch.optim.Adagrad adds it outside, sqrt(s) + eps "
        f"(eps={hp.eps:g}): a different formula, not another rounding (the denominators "
        "differ by about eps * (1 - 1/(2 sqrt(s)))); its step, w.addcdiv_(g, std, "
        "value=-lr), rounds as w - lr * g / std does. --spelling torch-exact uses torch's "
        "operations and matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    return (
        "torch.optim.Adagrad adds the squared gradient with s.addcmul_(g, g, value=1) (g*g "
        "and the sum rounded once, fused) where the textbook rounds g*g and then s + g*g"
    )
