r"""ASGD: averaged stochastic gradient descent (Polyak & Juditsky, 1992), in Bottou's form with
a decaying step size and a running average of the iterates.

As ``torch.optim.ASGD`` computes it, with learning rate :math:`\gamma`, decay :math:`\lambda`
(``lambd``), power :math:`\alpha`, averaging start :math:`t_0`, weight decay ``weight_decay``,
at step :math:`t` (``eta`` and ``mu`` as the last step left them; at first ``gamma`` and 1)::

    if maximize:           g_t = -g_t
    if weight_decay != 0:  g_t = g_t + weight_decay * theta_{t-1}
    theta_t = theta_{t-1} * (1 - lambd * eta) - eta * g_t
    ax_t    = ax_{t-1} + mu * (theta_t - ax_{t-1})      (ax: the average; = theta_t while mu = 1)
    eta <- gamma / (1 + lambd * gamma * t)^alpha,   mu <- 1 / max(1, t - t0)

Two spellings of the same formula:

* ``textbook``: ``eta`` and ``mu`` as Python floats (float64).
* ``torch-exact``: torch keeps ``eta`` and ``mu`` in 0-d tensors of the default dtype (float32,
  even in a float64 run), so every step's ``eta`` is its float32 rounding (the lr 0.01 steps
  as 0.009999999776482582), then ``w.mul_(1 - lambd * eta).add_(g, alpha=-eta)`` and
  ``ax.add_(w.sub(ax).mul_(mu))`` (``ax.copy_(w)`` while mu is 1); bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, begin, foreach, help_, invalid

NAME = "asgd"
TORCH_CLASS = "ASGD"
STATE = ("ax", "eta", "mu")  # eta and mu: scalars, compared too
FORMULAS = {
    "ax": "ax = ax + mu * (w - ax)",
    "eta": "eta = lr / (1 + lambd * lr * t)^alpha",
    "mu": "mu = 1 / max(1, t - t0)",
}
STATE_WHY = {  # where a scalar state differs first, why (``explain_state`` is the average's)
    s: f"torch.optim.ASGD keeps {s} in a float32 scalar tensor (the default dtype, even in a "
    f"float64 run), so {s} is rounded to float32, where the textbook keeps it in float64"
    for s in ("eta", "mu")
}
ADAPTIVE = False  # a step of about eta * grad, as SGD's: the guard treats it as SGD


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.ASGD``'s defaults and checks (same words)."""

    lr: float = field(default=1e-2, metadata=help_("learning rate gamma"))
    lambd: float = field(
        default=1e-4, metadata=help_("ASGD: decay term lambda of the step size", other=0.5)
    )
    alpha: float = field(
        default=0.75,
        metadata=help_("RMSprop: smoothing constant; ASGD: power of the step size's decay"),
    )
    t0: float = field(default=1e6, metadata=help_("ASGD: the step averaging starts", other=3.0))
    weight_decay: float = field(
        default=0.0, metadata=help_("L2 penalty lambda: grad += lambda*w", other=0.1)
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        self.numbers("lr", "lambd", "alpha", "t0", "weight_decay")
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if not 0.0 <= self.weight_decay:
            raise invalid(f"Invalid weight_decay value: {self.weight_decay}")
        self.finite("lr", "lambd", "alpha", "t0", "weight_decay")

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """The average at zero, ``eta`` at the lr and ``mu`` at 1 (torch makes them at the first
    step)."""
    import torch

    return {
        n: {"step": 0, "ax": torch.zeros_like(t.detach()), "eta": hp.lr, "mu": 1.0}
        for n, t in params.items()
    }


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One ASGD step on ``params`` in place."""
    exact = spelling == "torch-exact"
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        if st["step"] == 1:  # torch makes eta at the first step: from that step's lr
            st["eta"] = hp.lr
        step = (_foreach_step if foreach(theta) else _torch_step) if exact else _textbook_step
        step(theta, g, st, hp, st["step"])


def _scalars(st, theta) -> None:
    """torch's ``eta`` and ``mu``: 0-d tensors of the default dtype, on the parameter's
    device."""
    import torch

    for s in ("eta", "mu"):
        if not isinstance(st[s], torch.Tensor):
            dtype = torch.get_default_dtype()
            st[s] = torch.as_tensor(st[s], dtype=dtype, device=theta.device).clone()


def _torch_step(theta, g, st, hp, t) -> None:
    """``torch.optim.asgd._single_tensor_asgd``'s operations, in its order, ``eta`` and ``mu``
    in 0-d tensors of the default dtype."""
    import torch

    _scalars(st, theta)
    if hp.weight_decay != 0:
        g = g.add(theta, alpha=hp.weight_decay)
    eta = st["eta"].item()
    theta.mul_(1 - hp.lambd * eta)
    theta.add_(g, alpha=-eta)
    if st["mu"].item() != 1:
        st["ax"].add_(theta.sub(st["ax"]).mul_(st["mu"]))
    else:
        st["ax"].copy_(theta)
    st["eta"].copy_(torch.as_tensor(hp.lr / ((1 + hp.lambd * hp.lr * float(t)) ** hp.alpha)))
    st["mu"].copy_(torch.as_tensor(1 / max(1, float(t) - hp.t0)))


def _foreach_step(theta, g, st, hp, t) -> None:
    """``torch.optim.asgd._multi_tensor_asgd``'s operations (torch's default on CUDA): another
    arrangement, ``w - eta * (g + lambd * w)``, and the next eta computed from the step count
    as a float32 tensor."""
    import torch

    _scalars(st, theta)
    if hp.weight_decay != 0:
        inter = torch._foreach_add([g], [theta], alpha=hp.weight_decay)
        torch._foreach_add_(inter, [theta], alpha=hp.lambd)
    else:
        inter = torch._foreach_add([g], [theta], alpha=hp.lambd)
    torch._foreach_addcmul_([theta], inter, [st["eta"]], value=-1)
    inter = torch._foreach_sub([theta], [st["ax"]])
    torch._foreach_addcmul_([st["ax"]], inter, [st["mu"]])
    step = torch.tensor(float(t), dtype=torch.get_default_dtype())  # torch's step: a tensor
    new_eta = torch.as_tensor(
        hp.lr / ((1 + hp.lambd * hp.lr * step) ** hp.alpha), device=theta.device
    )
    new_mu = torch.as_tensor(1 / max(1, step.item() - hp.t0), device=theta.device)
    torch._foreach_copy_([st["eta"]], [new_eta])
    torch._foreach_copy_([st["mu"]], [new_mu])


def _textbook_step(theta, g, st, hp, t) -> None:
    """ASGD as written above, ``eta`` and ``mu`` in float64."""
    if hp.weight_decay != 0:
        g = g + hp.weight_decay * theta
    eta, mu = st["eta"], st["mu"]  # floats (a sweep's or race's lanes: a tensor of them)
    theta -= eta * (g + hp.lambd * theta)
    st["ax"] = st["ax"] + mu * (theta - st["ax"])
    st["eta"] = hp.lr / (1 + hp.lambd * hp.lr * t) ** hp.alpha
    st["mu"] = 1 / max(1, t - hp.t0)


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "torch.optim.ASGD keeps its step size eta in a float32 scalar tensor (the default "
        "dtype, even in a float64 run), so it steps with eta rounded to float32, and it shrinks "
        "w by (1 - lambd * eta) before it subtracts eta * g, where the textbook keeps eta in "
        "float64 and subtracts eta * (g + lambd * w) at once. --spelling torch-exact does as torch "
        "does and matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    return (
        "the average ax follows w (a copy while mu = 1, from step t0 on ax + mu * (w - ax)), so "
        "it differs where w does; torch weights it by mu held in float32"
    )
