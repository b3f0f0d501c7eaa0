r"""Hand-written update rules: the whole of ``torch.optim.SGD``, written out.

With learning rate :math:`\gamma`, momentum :math:`\mu`, dampening :math:`\tau`, weight decay
:math:`\lambda`, at step :math:`t` with gradient :math:`g_t` of parameter :math:`\theta`::

    if maximize:   g_t = -g_t
    if lambda != 0: g_t = g_t + lambda * theta_{t-1}
    if mu != 0:
        b_t = g_t                                   if t == 1   (the buffer starts as the gradient,
        b_t = mu * b_{t-1} + (1 - tau) * g_t        otherwise    so dampening acts from step 2)
        g_t = g_t + mu * b_t   if nesterov   else   b_t
    theta_t = theta_{t-1} - gamma * g_t             (the lecture's eq. 2: w = w - lr * grad)

Two spellings of the same math:

* ``textbook``: plain arithmetic, ``w -= lr * grad``. ``lr * grad`` is rounded, then the
  difference is rounded: two roundings.
* ``torch-exact``: the operations ``torch.optim.SGD`` uses (``param.add_(grad, alpha=-lr)`` and
  friends). On CPUs with FMA these kernels compute ``w + (-lr) * grad`` with one rounding, so this
  spelling matches ``torch.optim.SGD`` bit for bit where the textbook may differ by an ulp.
"""

from __future__ import annotations

import torch

from .options import RULES, SGD

__all__ = ["RULES", "SGD", "sgd_"]


def sgd_(params: dict, grads: dict, state: dict, hp: SGD, rule: str = "textbook") -> None:
    """One step of SGD on ``params`` in place; ``state`` holds the momentum buffers.

    ``grads`` is not modified. Must run under ``torch.no_grad()`` for leaf tensors.
    """
    exact = rule == "torch-exact"
    for name, theta in params.items():
        g = grads[name]
        if hp.maximize:
            g = -g
        if hp.weight_decay != 0:
            g = g.add(theta, alpha=hp.weight_decay) if exact else g + hp.weight_decay * theta
        if hp.momentum != 0:
            buf = state.get(name)
            if buf is None:
                buf = torch.clone(g).detach()
            elif exact:
                buf.mul_(hp.momentum).add_(g, alpha=1 - hp.dampening)
            else:
                buf = hp.momentum * buf + (1 - hp.dampening) * g
            state[name] = buf
            if hp.nesterov:
                g = g.add(buf, alpha=hp.momentum) if exact else g + hp.momentum * buf
            else:
                g = buf
        if exact:
            theta.add_(g, alpha=-hp.lr)
        else:
            theta -= hp.lr * g  # the lecture: w = w - lr * grad
