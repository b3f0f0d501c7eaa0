r"""AdamW: Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

As ``torch.optim.AdamW`` documents it: Adam's step (see ``adam.py``), but the weight decay
shrinks the parameters instead of entering the gradient::

    theta_{t-1} <- theta_{t-1} - gamma * lambda * theta_{t-1}
    theta_t = theta_{t-1} - gamma * m^ / (sqrt(v^) + eps)

Two spellings:

* ``textbook``: ``w -= lr * (m_hat / (sqrt(v_hat) + eps) + weight_decay * w)``, the paper's
  one expression (with its schedule multiplier 1 and the decay scaled by lr, as torch does).
* ``torch-exact``: ``w.mul_(1 - lr * weight_decay)`` then Adam's torch operations; bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import adam
from ._base import help_

NAME = "adamw"
TORCH_CLASS = "AdamW"
STATE = adam.STATE
FORMULAS = adam.FORMULAS


@dataclass(frozen=True)
class Hyper(adam.Hyper):
    """Adam's hyperparameters, with ``torch.optim.AdamW``'s default weight decay (0.01)."""

    weight_decay: float = field(
        default=1e-2, metadata=help_("AdamW: decoupled decay, w -= lr * weight_decay * w")
    )

    decoupled = True


init = adam.init
update = adam.update
explain_update = adam.explain_update
explain_state = adam.explain_state
