r"""Adafactor (Shazeer & Stern, 2018), as ``torch.optim.Adafactor`` writes it: a relative step
size, a second moment whose decay approaches 1, factored into row and column averages for a
matrix, and the update clipped by its root mean square. No first moment.

With learning rate :math:`\gamma` (the largest relative step), ``beta2_decay`` :math:`c`,
``eps`` :math:`(\epsilon_1, \epsilon_2)` (:math:`\epsilon_1` None: the dtype's machine epsilon),
clipping threshold :math:`d`, weight decay :math:`\lambda`, at step :math:`t`::

    if maximize: g_t = -g_t
    rho_t   = min(gamma, 1 / sqrt(t))                         (the relative step size)
    alpha_t = max(eps2, RMS(theta_{t-1})) * rho_t             (RMS(x) = sqrt(mean(x^2)))
    if lambda != 0: theta_{t-1} = theta_{t-1} * (1 - gamma * lambda)
    beta2_t = 1 - t^c
    a vector (or a number):  v_t = beta2_t v_{t-1} + (1 - beta2_t) g_t^2          (variance)
    a matrix: R_t = beta2_t R_{t-1} + (1 - beta2_t) mean_cols(g_t^2)               (row_var)
              C_t = beta2_t C_{t-1} + (1 - beta2_t) mean_rows(g_t^2)               (col_var)
              v_t = R_t C_t / max(mean(R_t), eps1)
    U_t = g_t / sqrt(max(v_t, eps1^2));   U_t = U_t / max(1, RMS(U_t) / d)
    theta_t = theta_{t-1} - alpha_t U_t

Two spellings of the same formula:

* ``textbook``: as above, each operation rounded on its own (``beta2_t * v + (1 - beta2_t) *
  g^2``, ``g / sqrt(...)``, the RMS as ``sqrt(mean(x^2))``).
* ``torch-exact``: torch's operations: ``v.lerp_(g * g, t^c)``, ``clamp_(eps1^2).rsqrt_()``
  times g, the RMS as ``norm(x) / sqrt(numel)`` read as a Python float; bit for bit.

Each step depends on the whole parameter (its RMS), so a sweep's lanes (K parameters stacked
into one tensor) cannot run it: the sweep and the race leave it out, saying so. The report
compares ``variance``; a matrix's ``row_var`` and ``col_var`` are kept, not compared.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, begin, foreach, help_, invalid

NAME = "adafactor"
TORCH_CLASS = "Adafactor"
STATE = ("variance",)
FORMULAS = {"variance": "v = beta2_t * v + (1 - beta2_t) * g^2, beta2_t = 1 - t^beta2_decay"}
LANES = False  # a step reads the whole parameter's RMS: no lanes of a sweep
WHOLE = "its RMS"  # what it reads, in the sweep's refusal


def eps_pair(text) -> tuple:
    """``--eps None,1e-3`` (Adafactor's pair: eps1 may be None, the dtype's epsilon)."""
    parts = str(text).split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        return (None if parts[0].strip() == "None" else float(parts[0]), float(parts[1]))
    except ValueError:
        raise invalid(
            f"--eps takes two numbers for adafactor, e.g. None,1e-3; got '{text}'"
        ) from None


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.Adafactor``'s defaults and checks (same words)."""

    lr: float = field(
        default=1e-2, metadata=help_("learning rate gamma: the largest relative step")
    )
    beta2_decay: float = field(
        default=-0.8, metadata=help_("Adafactor: beta2_t = 1 - t^beta2_decay", other=-0.5)
    )
    eps: tuple = field(
        default=(None, 1e-3),
        metadata=help_(
            "Adafactor: eps1,eps2 (eps1 None: the dtype's epsilon)", metavar="E1,E2",
            parse=eps_pair, other=(1e-30, 1e-2),
        ),
    )  # fmt: skip
    d: float = field(
        default=1.0, metadata=help_("Adafactor: clip the update's RMS at d", other=2.0)
    )
    weight_decay: float = field(
        default=0.0, metadata=help_("Adafactor: w *= 1 - lr * weight_decay", other=0.1)
    )
    maximize: bool = field(default=False, metadata=help_("ascend: w += lr * grad"))

    def __post_init__(self):
        if isinstance(self.eps, (list, str)):  # config.json's list, the command line's text
            value = tuple(self.eps) if isinstance(self.eps, list) else eps_pair(self.eps)
            object.__setattr__(self, "eps", value)
        if not isinstance(self.eps, tuple) or len(self.eps) != 2:
            raise invalid(f"--eps takes two numbers for adafactor, e.g. None,1e-3; got {self.eps}")
        self.numbers("lr", "beta2_decay", "d", "weight_decay")
        if not 0.0 <= self.lr:
            raise invalid(f"Learning rate should be >= 0 but is: {self.lr}")
        if not 0.0 >= self.beta2_decay:
            raise invalid(f"beta2_decay should be <= 0 but is: {self.beta2_decay}")
        if self.eps[0] is not None and not 0.0 <= self.eps[0]:
            raise invalid(f"epsilon1 should be >= 0 but is: {self.eps[0]}")
        if not 0.0 <= self.eps[1]:
            raise invalid(f"epsilon2 should be >= 0 but is: {self.eps[1]}")
        if not 1.0 <= self.d:
            raise invalid(f"Clipping threshold d should be >= 1 but is: {self.d}")
        if not 0.0 <= self.weight_decay:
            raise invalid(f"weight_decay should be >= 0 but is: {self.weight_decay}")
        self.finite("lr", "beta2_decay", "d", "weight_decay")

    @property
    def state_names(self) -> tuple:
        return STATE


def init(params: dict, hp: Hyper) -> dict:
    """A vector's (or a number's) variance at zero; a matrix's row and column averages."""
    import torch

    out = {}
    for n, t in params.items():
        t = t.detach()
        if t.dim() > 1:
            rows, cols = list(t.shape), list(t.shape)
            rows[-1], cols[-2] = 1, 1
            out[n] = {"step": 0, "row_var": t.new_zeros(rows), "col_var": t.new_zeros(cols)}
        else:
            out[n] = {"step": 0, "variance": torch.zeros_like(t)}
    return out


def update(params: dict, grads: dict, state: dict, hp: Hyper, spelling: str = "textbook") -> None:
    """One Adafactor step on ``params`` in place."""
    exact = spelling == "torch-exact"
    for name, theta in params.items():
        st, g = begin(state, name, theta, grads[name], hp, init)
        step = (_foreach_step if foreach(theta) else _torch_step) if exact else _textbook_step
        step(theta, g, st, hp, float(st["step"]))


def _torch_step(theta, g, st, hp, t) -> None:
    """``torch.optim._adafactor._single_tensor_adafactor``'s operations, in its order."""
    import torch

    eps1, eps2 = hp.eps
    eps1 = torch.finfo(theta.dtype).eps if eps1 is None else eps1
    one_minus_beta2_t = t**hp.beta2_decay
    rho_t = min(hp.lr, 1 / (t**0.5))
    alpha = max(eps2, theta.norm(2).item() / (theta.numel() ** 0.5)) * rho_t
    if hp.weight_decay != 0:
        theta.mul_(1 - hp.lr * hp.weight_decay)
    if g.dim() > 1:
        row_mean = torch.norm(g, dim=-1, keepdim=True).square_().div_(g.size(-1))
        st["row_var"].lerp_(row_mean, one_minus_beta2_t)
        col_mean = torch.norm(g, dim=-2, keepdim=True).square_().div_(g.size(-2))
        st["col_var"].lerp_(col_mean, one_minus_beta2_t)
        var_estimate = st["row_var"] @ st["col_var"]
        var_estimate.div_(st["row_var"].mean(dim=-2, keepdim=True).clamp_(min=eps1))
    else:
        st["variance"].lerp_(g * g, one_minus_beta2_t)
        var_estimate = st["variance"].clone()
    u = var_estimate.clamp_(min=eps1 * eps1).rsqrt_()
    u.mul_(g)
    denom = max(1.0, u.norm(2).item() / ((u.numel() ** 0.5) * hp.d))
    theta.add_(u, alpha=-alpha / denom)


def _foreach_step(theta, g, st, hp, t) -> None:
    """``torch.optim._adafactor._multi_tensor_adafactor``'s operations (torch's choice on CUDA),
    for one parameter: the squares by ``_foreach_mul_``, and the update scaled by
    ``_foreach_mul_(u, -alpha / denom)`` then added (two roundings, where the single-tensor code
    adds with ``alpha`` in one kernel)."""
    import torch

    eps1, eps2 = hp.eps
    eps1 = torch.finfo(theta.dtype).eps if eps1 is None else eps1
    one_minus_beta2_t = t**hp.beta2_decay
    alpha = max(eps2, theta.norm(2).item() / (theta.numel() ** 0.5)) * min(hp.lr, 1 / (t**0.5))
    if hp.weight_decay != 0:
        torch._foreach_mul_([theta], 1 - hp.lr * hp.weight_decay)
    if g.dim() > 1:
        for k, name in ((-1, "row_var"), (-2, "col_var")):
            means = [torch.norm(g, dim=k, keepdim=True)]
            torch._foreach_mul_(means, means)
            torch._foreach_div_(means, [g.size(k)])
            torch._foreach_lerp_([st[name]], means, [one_minus_beta2_t])
        u = [st["row_var"] @ st["col_var"]]
        mean = [st["row_var"].mean(dim=-2, keepdim=True)]
        torch._foreach_clamp_min_(mean, eps1)
        torch._foreach_div_(u, mean)
    else:
        torch._foreach_lerp_([st["variance"]], torch._foreach_mul([g], [g]), [one_minus_beta2_t])
        u = [st["variance"].clone()]
    torch._foreach_clamp_min_(u, eps1 * eps1)
    torch._foreach_rsqrt_(u)
    torch._foreach_mul_(u, [g])
    denom = max(1.0, u[0].norm(2).item() / ((u[0].numel() ** 0.5) * hp.d))
    torch._foreach_mul_(u, [-alpha / denom])
    torch._foreach_add_([theta], u)


def _rms(x) -> float:
    return float((x * x).mean().sqrt())


def _textbook_step(theta, g, st, hp, t) -> None:
    """Adafactor as written above."""
    import torch

    eps1, eps2 = hp.eps
    eps1 = torch.finfo(theta.dtype).eps if eps1 is None else eps1
    beta2_t = 1 - t**hp.beta2_decay
    alpha = max(eps2, _rms(theta)) * min(hp.lr, 1 / t**0.5)
    if hp.weight_decay != 0:
        theta *= 1 - hp.lr * hp.weight_decay
    g2 = g * g
    if g.dim() > 1:
        st["row_var"] = beta2_t * st["row_var"] + (1 - beta2_t) * g2.mean(dim=-1, keepdim=True)
        st["col_var"] = beta2_t * st["col_var"] + (1 - beta2_t) * g2.mean(dim=-2, keepdim=True)
        mean_r = st["row_var"].mean(dim=-2, keepdim=True).clamp(min=eps1)
        v = st["row_var"] * st["col_var"] / mean_r
    else:
        st["variance"] = beta2_t * st["variance"] + (1 - beta2_t) * g2
        v = st["variance"]
    u = g / torch.sqrt(torch.clamp(v, min=eps1 * eps1))
    theta -= alpha * (u / max(1.0, _rms(u) / hp.d))


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "torch.optim.Adafactor takes the RMS of w and of the update as norm(x) / sqrt(n), read "
        "as Python floats, and the update as rsqrt(max(v, eps1^2)) * g, where the textbook "
        "takes sqrt(mean(x^2)) and g / sqrt(max(v, eps1^2)): the same formula, rounded at other "
        "places. --spelling torch-exact uses torch's operations and matches it bit for bit"
    )


def explain_state(hp: Hyper) -> str:
    return (
        "torch.optim.Adafactor moves the variance with v.lerp_(g * g, t^beta2_decay) (v + "
        "(1 - beta2_t)(g^2 - v)), where the textbook rounds beta2_t * v, (1 - beta2_t) * g^2 "
        "and their sum separately"
    )
