r"""NAdam: Adam with Nesterov momentum (Dozat, 2016), the momentum warmed up by a schedule.

As ``torch.optim.NAdam`` documents it, with learning rate :math:`\gamma`, betas
:math:`(\beta_1, \beta_2)`, momentum decay :math:`\psi`, weight decay :math:`\lambda`, at
step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}       (decoupled_weight_decay: see below)
    mu_t     = beta1 * (1 - 0.5 * 0.96^(t psi))            (the momentum of step t)
    mu_{t+1} = beta1 * (1 - 0.5 * 0.96^((t+1) psi))
    m_t = beta1 * m_{t-1} + (1 - beta1) * g_t                              (exp_avg)
    v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2                            (exp_avg_sq)
    m^  = mu_{t+1} m_t / (1 - prod_{i<=t+1} mu_i) + (1 - mu_t) g_t / (1 - prod_{i<=t} mu_i)
    v^  = v_t / (1 - beta2^t)
    theta_t = theta_{t-1} - gamma * m^ / (sqrt(v^) + eps)

``decoupled_weight_decay`` (NAdamW): the parameters shrink first, ``theta *= 1 - gamma
lambda``, and the gradient is left alone.

Two spellings of the same formula:

* ``textbook``: as above; the product of the momenta ``prod mu_i`` (``mu_product``) kept in
  Python's float64, each operation rounded on its own.
* ``torch-exact``: torch keeps ``mu_product`` in a 0-d tensor of the default dtype (float32,
  even for a float64 run) and multiplies it there; ``m.lerp_``, ``v.mul_().addcmul_()``,
  ``denom = (v / (1 - beta2^t)).sqrt() + eps`` and two ``addcdiv_`` steps, one for the gradient
  and one for the moment; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import adam
from ._base import Base, begin, foreach, help_, invalid, like, zeros

NAME = "nadam"
TORCH_CLASS = "NAdam"
STATE = ("exp_avg", "exp_avg_sq", "mu_product")  # mu_product: a scalar, compared too
FORMULAS = {**adam.FORMULAS, "mu_product": "prod mu_i = mu_1 * mu_2 * ... * mu_t"}
UNDERFLOW = (
    "; after about 130 steps (the defaults) the float32 product underflows to 0 where "
    "float64's is still about 1e-46: the state row then counts billions of ulps (max rel 1) "
    "for a number that no longer changes a step (1 - prod mu is 1 either way)"
)
STATE_WHY = {  # where a scalar state differs first, why (``explain_state`` is the moments')
    "mu_product": "torch.optim.NAdam keeps the product of the momenta in a float32 scalar "
    "tensor (the default dtype, even in a float64 run), rounding each product to float32, "
    "where the textbook multiplies them in float64" + UNDERFLOW
}


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.NAdam``'s defaults and checks (same words)."""

    lr: float = field(default=2e-3, metadata=help_("learning rate gamma"))
    betas: tuple = like(adam.Hyper, "betas")
    eps: float = like(adam.Hyper, "eps")
    weight_decay: float = like(adam.Hyper, "weight_decay")
    momentum_decay: float = field(
        default=4e-3, metadata=help_("NAdam: psi, how fast the momentum warms up", other=0.05)
    )
    decoupled_weight_decay: bool = field(
        default=False, metadata=help_("NAdam, RAdam: weight decay on w, not the gradient")
    )
    maximize: bool = like(adam.Hyper, "maximize")

    def __post_init__(self):
        adam.Hyper.__post_init__(self)  # torch.optim.Adam's checks and words, then its own
        self.numbers("momentum_decay")
        if not 0.0 <= self.momentum_decay:
            raise invalid(f"Invalid momentum_decay value: {self.momentum_decay}")
        self.finite("momentum_decay")

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """Both moments start at zero, the product of the momenta at one."""
    state = zeros(params, STATE)
    for st in state.values():
        st["mu_product"] = 1.0
    return state


def _momenta(hp: Hyper, t: int) -> tuple:
    beta1 = hp.betas[0]
    mu = beta1 * (1.0 - 0.5 * (0.96 ** (t * hp.momentum_decay)))
    mu_next = beta1 * (1.0 - 0.5 * (0.96 ** ((t + 1) * hp.momentum_decay)))
    return mu, mu_next


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One NAdam step on ``params`` in place."""
    exact = spelling == "torch-exact"
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        step = (_foreach_step if foreach(theta) else _torch_step) if exact else _textbook_step
        step(theta, g, st, hp, st["step"])


def _mu_product(st) -> None:
    """torch's ``mu_product``: a 0-d tensor of the default dtype, on the CPU."""
    import torch

    if not isinstance(st["mu_product"], torch.Tensor):
        st["mu_product"] = torch.tensor(st["mu_product"], dtype=torch.get_default_dtype())


def _torch_step(theta, g, st, hp, t) -> None:
    """``torch.optim.nadam._single_tensor_nadam``'s operations, in its order."""
    beta2 = hp.betas[1]
    _mu_product(st)
    bias_correction2 = 1 - beta2**t
    g = adam.moments(theta, g, st, hp, hp.decoupled_weight_decay)
    mu, mu_next = _momenta(hp, t)
    st["mu_product"] *= mu
    denom = st["exp_avg_sq"].div(bias_correction2).sqrt()
    mu_product = st["mu_product"].item()
    mu_product_next = mu_product * mu_next
    denom.add_(hp.eps)
    theta.addcdiv_(g, denom, value=(-hp.lr * (1.0 - mu) / (1.0 - mu_product)))
    theta.addcdiv_(st["exp_avg"], denom, value=(-hp.lr * mu_next) / (1.0 - mu_product_next))


def _foreach_step(theta, g, st, hp, t) -> None:
    """``torch.optim.nadam._multi_tensor_nadam``'s operations (torch's default on CUDA): the
    root divided by sqrt(1 - beta2^t), not the average by 1 - beta2^t."""
    import torch

    beta2 = hp.betas[1]
    _mu_product(st)
    m, v = st["exp_avg"], st["exp_avg_sq"]
    g = adam.moments(theta, g, st, hp, hp.decoupled_weight_decay, each=True)
    denom = torch._foreach_sqrt([v])
    mu, mu_next = _momenta(hp, t)
    torch._foreach_mul_([st["mu_product"]], [mu])
    torch._foreach_div_(denom, [(1 - beta2**t) ** 0.5])
    torch._foreach_add_(denom, hp.eps)
    mu_product = st["mu_product"].item()
    step_grad = (hp.lr * (1.0 - mu) / (1.0 - mu_product)) * -1
    step_avg = (hp.lr * mu_next / (1.0 - mu_product * mu_next)) * -1
    torch._foreach_addcdiv_([theta], [g], denom, [step_grad])
    torch._foreach_addcdiv_([theta], [m], denom, [step_avg])


def _textbook_step(theta, g, st, hp, t) -> None:
    """Dozat's NAdam as written above; the product of the momenta in float64."""
    import torch

    beta1, beta2 = hp.betas
    decoupled = hp.decoupled_weight_decay and hp.weight_decay != 0
    if hp.weight_decay != 0 and not decoupled:
        g = g + hp.weight_decay * theta
    mu, mu_next = _momenta(hp, t)
    st["mu_product"] = float(st["mu_product"]) * mu
    st["exp_avg"] = beta1 * st["exp_avg"] + (1 - beta1) * g
    st["exp_avg_sq"] = beta2 * st["exp_avg_sq"] + (1 - beta2) * g * g
    m_hat = mu_next * st["exp_avg"] / (1 - st["mu_product"] * mu_next) + (1 - mu) * g / (
        1 - st["mu_product"]
    )
    v_hat = st["exp_avg_sq"] / (1 - beta2**t)
    if decoupled:
        theta -= hp.lr * hp.weight_decay * theta
    theta -= hp.lr * m_hat / (torch.sqrt(v_hat) + hp.eps)


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "torch.optim.NAdam keeps the product of the momenta, mu_1 mu_2 ... mu_t, in a float32 "
        "scalar tensor (the default dtype, even in a float64 run), so its bias corrections 1 - "
        "prod mu carry float32's rounding, where the textbook multiplies them in float64; it also "
        "steps in two addcdiv_ (the gradient's part, then the moment's) where the textbook adds "
        "them first. --spelling torch-exact does as torch does and matches it bit for bit"
        + UNDERFLOW
    )


def explain_state(hp: Hyper) -> str:
    return (
        "torch.optim.NAdam moves the first moment with m.lerp_(g, 1 - beta1) (m + (1 - beta1)(g "
        "- m)) and the second with v.mul_(beta2).addcmul_(g, g, value=1 - beta2) (its last "
        "product and sum rounded once, fused), where the textbook rounds beta1 * m, (1 - beta1) "
        "* g, beta2 * v, (1 - beta2) * g * g and the sums separately"
    )
