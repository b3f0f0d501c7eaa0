r"""Rprop: resilient backpropagation (Riedmiller & Braun, 1993): each weight's step size grows
while its gradient keeps its sign and shrinks when it flips; only the sign of the gradient is
used, never its size.

As ``torch.optim.Rprop`` documents it, with etas :math:`(\eta^-, \eta^+)`, step sizes
bounded by :math:`(\Gamma_{min}, \Gamma_{max})`, the first step size the learning rate::

    if maximize:  g_t = -g_t
    s = g_t * g_{t-1}                                 (g_{t-1}: prev, the last gradient kept)
    eta_t = clip(eta_{t-1} * (eta+ if s > 0, eta- if s < 0, 1 if s = 0), min, max)  (step_size)
    g_t = 0 where s < 0                               (a flip: no step, and no flip next time)
    theta_t = theta_{t-1} - sign(g_t) * eta_t
    g_{t-1} <- g_t                                                                    (prev)

The lr only sets the first step size (a scheduled lr changes nothing after the first step,
as in torch). Both spellings compute the same operations (a product, a sign, a clip): the
textbook writes them with ``torch.where``, torch with masked assignment; they agree to the bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, as_pair, begin, help_, invalid, pair

NAME = "rprop"
TORCH_CLASS = "Rprop"
STATE = ("prev", "step_size")
FORMULAS = {
    "prev": "g_prev = g, or 0 where the sign flipped",
    "step_size": "eta = clip(eta * (eta+ | eta- | 1), min, max)",
}
etas_ = pair("etas", "0.5,1.2")
step_sizes_ = pair("step-sizes", "1e-06,50")


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.Rprop``'s defaults and checks (same words)."""

    lr: float = field(
        default=1e-2, metadata=help_("learning rate gamma: Rprop's first step size", other=0.1)
    )
    etas: tuple = field(
        default=(0.5, 1.2),
        metadata=help_(
            "Rprop: factors eta-,eta+ that shrink and grow a step size", metavar="E-,E+",
            parse=etas_, other=(0.3, 1.5),
        ),
    )  # fmt: skip
    step_sizes: tuple = field(
        default=(1e-6, 50),
        metadata=help_(
            "Rprop: the smallest and largest step size", metavar="MIN,MAX",
            parse=step_sizes_, other=(1e-3, 0.05),
        ),
    )  # fmt: skip
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        self.numbers("lr")
        as_pair(self, "etas", etas_)
        as_pair(self, "step_sizes", step_sizes_)
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if not 0.0 < self.etas[0] < 1.0 < self.etas[1]:
            raise invalid(f"Invalid eta values: {self.etas[0]}, {self.etas[1]}")
        self.finite("lr", "etas", "step_sizes")

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """No last gradient yet (zeros) and every step size at the lr."""
    import torch

    return {
        n: {
            "step": 0,
            "prev": torch.zeros_like(t.detach()),
            "step_size": torch.zeros_like(t.detach()) + hp.lr,  # (a sweep's lr: one per lane)
        }
        for n, t in params.items()
    }


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One Rprop step on ``params`` in place."""
    step = _torch_step if spelling == "torch-exact" else _textbook_step
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        if st["step"] == 1:  # torch makes the step sizes at the first step: from that step's lr
            st["step_size"] = init({name: theta}, hp)[name]["step_size"]
        step(theta, g, st, hp)


def _torch_step(theta, g, st, hp) -> None:
    """``torch.optim.rprop._single_tensor_rprop``'s operations, in its order."""
    etaminus, etaplus = hp.etas
    sign = g.mul(st["prev"]).sign()
    sign[sign.gt(0)] = etaplus
    sign[sign.lt(0)] = etaminus
    sign[sign.eq(0)] = 1
    st["step_size"].mul_(sign).clamp_(*hp.step_sizes)
    g = g.clone()
    g[sign.eq(etaminus)] = 0
    theta.addcmul_(g.sign(), st["step_size"], value=-1)
    st["prev"].copy_(g)


def _textbook_step(theta, g, st, hp) -> None:
    """Rprop as written above."""
    import torch

    etaminus, etaplus = hp.etas
    s = g * st["prev"]
    up, down, one = (torch.full_like(s, v) for v in (etaplus, etaminus, 1.0))  # in g's dtype
    factor = torch.where(s > 0, up, torch.where(s < 0, down, one))
    st["step_size"] = torch.clamp(st["step_size"] * factor, *hp.step_sizes)
    g = torch.where(s < 0, torch.zeros_like(g), g)
    theta -= torch.sign(g) * st["step_size"]
    st["prev"] = g


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "Rprop moves each weight by its step size in the direction of the gradient's sign; the "
        "textbook and torch.optim.Rprop compute the same products and clips, so a difference "
        "comes from the gradient's sign where it is within rounding of zero"
    )


def explain_state(hp: Hyper) -> str:
    return (
        "the step sizes are the lr times products of eta+ and eta-, each product rounded the "
        "same way in both spellings; they part only where the gradients' signs do"
    )
