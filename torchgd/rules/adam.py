r"""Adam: momentum on the gradient, RMSprop's scaling, both bias-corrected.

As ``torch.optim.Adam`` documents it, with learning rate :math:`\gamma`, betas
:math:`(\beta_1, \beta_2)`, weight decay :math:`\lambda`, at step :math:`t`::

    if maximize:     g_t = -g_t
    if lambda != 0:  g_t = g_t + lambda * theta_{t-1}                (AdamW: see adamw.py)
    m_t = beta1 * m_{t-1} + (1 - beta1) * g_t                         (exp_avg)
    v_t = beta2 * v_{t-1} + (1 - beta2) * g_t^2                       (exp_avg_sq)
    m^  = m_t / (1 - beta1^t)
    v^  = v_t / (1 - beta2^t)      amsgrad: v^ = max(v^max_{t-1}, v_t) / (1 - beta2^t)
    theta_t = theta_{t-1} - gamma * m^ / (sqrt(v^) + eps)

Two spellings of the same formula:

* ``textbook`` (d2l.ai 12.10): the bias correction applied **to the moments**, as above:
  ``w -= lr * m_hat / (sqrt(v_hat) + eps)``, each operation rounded on its own.
* ``torch-exact``: torch folds the first correction **into the step size** and divides the
  root by ``sqrt(1 - beta2^t)``: ``m.lerp_(g, 1 - beta1)``, ``v.mul_(beta2).addcmul_(g, g,
  value=1 - beta2)``, ``denom = (v.sqrt() / sqrt(bc2)).add_(eps)``, ``w.addcdiv_(m, denom,
  value=-lr / bc1)``; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, begin, foreach, help_, invalid, pair, zeros

NAME = "adam"
TORCH_CLASS = "Adam"
STATE = ("exp_avg", "exp_avg_sq", "max_exp_avg_sq")
FORMULAS = {
    "exp_avg": "m = beta1 * m + (1 - beta1) * g",
    "exp_avg_sq": "v = beta2 * v + (1 - beta2) * g^2",
    "max_exp_avg_sq": "v_max = max(v_max, v)",
}


betas = pair("betas", "0.9,0.999")  # ``--betas 0.9,0.999`` as a pair of floats


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.Adam``'s defaults and checks (same words)."""

    lr: float = field(default=1e-3, metadata=help_("learning rate gamma"))
    betas: tuple = field(
        default=(0.9, 0.999),
        metadata=help_(
            "Adam: decays of the moments, beta1,beta2",
            metavar="B1,B2",
            parse=betas,
            other=(0.5, 0.9),
        ),
    )
    eps: float = field(
        default=1e-8,
        metadata=help_("added to the denominator (torch's default per rule)", other=1e-3),
    )
    weight_decay: float = field(
        default=0.0, metadata=help_("L2 penalty lambda: grad += lambda*w", other=0.1)
    )
    amsgrad: bool = field(
        default=False, metadata=help_("Adam: divide by the largest v so far (AMSGrad)")
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    decoupled = False  # AdamW: weight decay on the parameters, not the gradient

    def __post_init__(self):
        if isinstance(self.betas, list):  # from config.json
            object.__setattr__(self, "betas", tuple(self.betas))
        if isinstance(self.betas, str):  # "0.9,0.999", as on the command line
            object.__setattr__(self, "betas", betas(self.betas))
        self.numbers("lr", "eps", "weight_decay")
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        if not 0.0 <= self.eps:
            raise invalid(f"Invalid epsilon value: {self.eps}")
        b = self.betas
        if not isinstance(b, tuple) or len(b) != 2:
            raise invalid(f"--betas takes two numbers, e.g. 0.9,0.999; got {b}")
        self.numbers("betas")
        if not 0.0 <= b[0] < 1.0:
            raise invalid(f"Invalid beta parameter at index 0: {b[0]}")
        if not 0.0 <= b[1] < 1.0:
            raise invalid(f"Invalid beta parameter at index 1: {b[1]}")
        if not 0.0 <= self.weight_decay:
            raise invalid(f"Invalid weight_decay value: {self.weight_decay}")
        if not (isinstance(b[0], float) and isinstance(b[1], float)):
            raise invalid("betas must be either both floats or both Tensors")
        self.finite("lr", "eps", "weight_decay")

    @property
    def state_names(self) -> tuple:
        return STATE if self.amsgrad else STATE[:2]


def init(params: dict, hp: Hyper) -> dict:
    """Both moments (and AMSGrad's maximum) start at zero (torch makes them at the first
    step)."""
    return zeros(params, hp.state_names)


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One Adam (or AdamW, ``hp.decoupled``) step on ``params`` in place."""
    exact = spelling == "torch-exact"
    beta1, beta2 = hp.betas
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        step = (_foreach_step if foreach(theta) else _torch_step) if exact else _textbook_step
        step(theta, g, st, hp, st["step"], beta1, beta2)


def moments(theta, g, st, hp, decoupled: bool, each: bool = False):
    """What torch's Adam, AdamW, NAdam and RAdam do first: the weight decay (on w where it is
    ``decoupled``, else into the gradient), then ``m.lerp_(g, 1 - beta1)`` and
    ``v.mul_(beta2).addcmul_(g, g, value=1 - beta2)``; ``each``: with the ``torch._foreach_*``
    operations (torch's multi-tensor code). Returns the gradient used."""
    import torch

    beta1, beta2 = hp.betas
    m, v = st["exp_avg"], st["exp_avg_sq"]
    if hp.weight_decay != 0:
        if decoupled:
            if each:
                torch._foreach_mul_([theta], 1 - hp.lr * hp.weight_decay)
            else:
                theta.mul_(1 - hp.lr * hp.weight_decay)
        elif each:
            g = torch._foreach_add([g], [theta], alpha=hp.weight_decay)[0]
        else:
            g = g.add(theta, alpha=hp.weight_decay)
    if each:
        torch._foreach_lerp_([m], [g], 1 - beta1)
        torch._foreach_mul_([v], beta2)
        torch._foreach_addcmul_([v], [g], [g], 1 - beta2)
    else:
        m.lerp_(g, 1 - beta1)
        v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
    return g


def _torch_step(theta, g, st, hp, t, beta1, beta2) -> None:
    """``torch.optim.adam._single_tensor_adam``'s operations, in its order."""
    moments(theta, g, st, hp, hp.decoupled)
    m, v = st["exp_avg"], st["exp_avg_sq"]
    bias_correction1 = 1 - beta1**t
    bias_correction2 = 1 - beta2**t
    step_size = hp.lr / bias_correction1
    bias_correction2_sqrt = bias_correction2**0.5
    if hp.amsgrad:
        import torch

        torch.maximum(st["max_exp_avg_sq"], v, out=st["max_exp_avg_sq"])
        v = st["max_exp_avg_sq"]
    denom = (v.sqrt() / bias_correction2_sqrt).add_(hp.eps)
    theta.addcdiv_(m, denom, value=-step_size)


def _foreach_step(theta, g, st, hp, t, beta1, beta2) -> None:
    """``torch.optim.adam._multi_tensor_adam``'s operations (torch's default on CUDA)."""
    import torch

    moments(theta, g, st, hp, hp.decoupled, each=True)
    m, v = st["exp_avg"], st["exp_avg_sq"]
    step_size = (hp.lr / (1 - beta1**t)) * -1
    bias_correction2_sqrt = (1 - beta2**t) ** 0.5
    if hp.amsgrad:
        torch._foreach_maximum_([st["max_exp_avg_sq"]], [v])
        v = st["max_exp_avg_sq"]
    denom = torch._foreach_sqrt([v])
    torch._foreach_div_(denom, [bias_correction2_sqrt])
    torch._foreach_add_(denom, hp.eps)
    torch._foreach_addcdiv_([theta], [m], denom, [step_size])


def _textbook_step(theta, g, st, hp, t, beta1, beta2) -> None:
    """d2l.ai's Adam: bias-corrected moments, then the step (AdamW: plus lr * wd * w)."""
    import torch

    if hp.weight_decay != 0 and not hp.decoupled:
        g = g + hp.weight_decay * theta
    st["exp_avg"] = beta1 * st["exp_avg"] + (1 - beta1) * g
    st["exp_avg_sq"] = beta2 * st["exp_avg_sq"] + (1 - beta2) * g * g
    v = st["exp_avg_sq"]
    if hp.amsgrad:
        st["max_exp_avg_sq"] = torch.maximum(st["max_exp_avg_sq"], v)
        v = st["max_exp_avg_sq"]
    m_hat = st["exp_avg"] / (1 - beta1**t)
    v_hat = v / (1 - beta2**t)
    if hp.decoupled and hp.weight_decay != 0:  # Loshchilov & Hutter: decay beside the step
        theta -= hp.lr * (m_hat / (torch.sqrt(v_hat) + hp.eps) + hp.weight_decay * theta)
    else:
        theta -= hp.lr * m_hat / (torch.sqrt(v_hat) + hp.eps)


def explain_update(hp: Hyper, w, g) -> str:
    decay = (
        " AdamW: torch first shrinks w.mul_(1 - lr * weight_decay), then steps; the textbook "
        "subtracts lr * (step + weight_decay * w) in one expression."
        if hp.decoupled and hp.weight_decay
        else ""
    )
    return (
        f"the textbook rule (d2l.ai) divides the moments by the bias corrections, m / (1 - "
        f"beta1^t) and sqrt(v / (1 - beta2^t)) + eps, where torch.optim.{_torch_name(hp)} "
        f"folds the first into the step size, lr / (1 - beta1^t), and divides sqrt(v) by "
        f"sqrt(1 - beta2^t): the same formula, rounded at other places.{decay} --spelling "
        f"torch-exact uses torch's operations and matches it bit for bit"
    )


def _torch_name(hp) -> str:
    """The torch.optim class these hyperparameters are for (AdamW's are decoupled)."""
    return "AdamW" if hp.decoupled else "Adam"


def explain_state(hp: Hyper) -> str:
    return (
        f"torch.optim.{_torch_name(hp)} moves the first moment with m.lerp_(g, 1 - beta1) "
        "(m + (1 - beta1)(g - m)) and the second with v.mul_(beta2).addcmul_(g, g, value=1 - "
        "beta2) (its last product and sum rounded once, fused), where the textbook rounds "
        "beta1 * m, (1 - beta1) * g, beta2 * v, (1 - beta2) * g * g and the sums separately"
    )
