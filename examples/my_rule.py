"""An update rule of your own: momentum as a student writes it, run against torch.optim.SGD.

    torchgd train --optimizer examples/my_rule.py:MomentumSGD --lr 0.01 --momentum 0.9

    v = momentum * v + grad          (v starts at 0, so after the first step v = grad,
    w = w - lr * v                    which is where torch.optim.SGD starts its buffer)

torchgd runs it by hand on the manual and autograd paths, and ``torch.optim.SGD`` with the same
options on the optim path (``TORCH_CLASS``), and tells you how far apart they end and why: the
buffer is torch's to the bit; the step ``w - lr * v`` rounds twice where torch's
``w.add_(v, alpha=-lr)`` rounds once. On the lecture's batch run the two happen to agree bit for
bit; with ``--batching sgd`` they end a few units in the last place apart, and the report says
that this is the reason.
"""

from dataclasses import dataclass

import torch


class MomentumSGD:
    TORCH_CLASS = "SGD"  # the torch.optim class this rule should match
    STATE = ("momentum_buffer",)  # torch's name for v, so the report compares the two

    @dataclass(frozen=True)
    class Hyper:  # its fields become options: --lr, --momentum
        lr: float = 0.01
        momentum: float = 0.9

    @staticmethod
    def init(params, hp):
        return {name: {"momentum_buffer": torch.zeros_like(w)} for name, w in params.items()}

    @staticmethod
    def update(params, grads, state, hp, spelling):
        for name, w in params.items():
            v = state[name]["momentum_buffer"]
            v.mul_(hp.momentum).add_(grads[name])  # v = momentum * v + grad
            w.sub_(hp.lr * v)  # w = w - lr * v
