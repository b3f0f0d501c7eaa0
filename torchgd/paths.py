"""The three paths behind one small interface.

Every path holds its own copy of the parameters and steps on the batch it is given::

    manual:   grad = problem.grad(w, x, y)          (the analytic formula)   then  w -= lr * grad
    autograd: loss.backward(); grad = w.grad        (PyTorch's chain rule)    then  w -= lr * grad
    optim:    loss.backward(); torch.optim.SGD(...).step()

``step(x, y)`` returns ``(loss, grads)``: the loss on the batch before the update, and the
gradient that was used. Adding a path means adding a class here and an entry in ``PATHS``.
"""

from __future__ import annotations

import torch

from . import rules


class Path:
    name = "path"
    uses_autograd = False

    def __init__(self, problem, params0: dict, hp: rules.SGD, rule: str = "textbook"):
        self.problem, self.hp, self.rule = problem, hp, rule
        self.params = {n: t.detach().clone() for n, t in params0.items()}
        self.state: dict = {}

    def values(self) -> dict:
        """The current parameters, detached from any graph."""
        return {n: t.detach() for n, t in self.params.items()}

    def state_dict(self) -> dict:
        """Parameters and the rule's momentum buffers, as copies (for checkpoints)."""
        return {
            "params": {n: t.detach().clone() for n, t in self.params.items()},
            "buffers": {n: b.clone() for n, b in self.state.items() if b is not None},
        }

    @torch.no_grad()
    def load_state_dict(self, state: dict) -> None:
        for n, t in self.params.items():
            t.copy_(state["params"][n])
        self.state = {n: b.to(self.params[n].device).clone() for n, b in state["buffers"].items()}

    def step(self, x, y, noise=None):
        """One update; ``noise`` (a dict like the gradient) is added to the gradient it uses.
        Returns the loss before the update and the gradient before any noise."""
        raise NotImplementedError


def _with_noise(grads: dict, noise) -> dict:
    return grads if noise is None else {k: g + noise[k] for k, g in grads.items()}


class ManualPath(Path):
    """Analytic gradient (the lecture's formula), then the hand-written rule."""

    name = "manual"

    @torch.no_grad()
    def step(self, x, y, noise=None):
        loss = self.problem.loss(self.params, x, y)
        grads = self.problem.grad(self.params, x, y)
        rules.sgd_(self.params, _with_noise(grads, noise), self.state, self.hp, self.rule)
        return loss, grads


class AutogradPath(Path):
    """``loss.backward()`` computes the gradient, then the same hand-written rule."""

    name = "autograd"
    uses_autograd = True

    def __init__(self, problem, params0, hp, rule="textbook"):
        super().__init__(problem, params0, hp, rule)
        for t in self.params.values():
            t.requires_grad_(True)

    def backward(self, x, y):
        for t in self.params.values():
            t.grad = None
        loss = self.problem.loss(self.params, x, y)
        loss.backward()
        return loss.detach(), {n: t.grad for n, t in self.params.items()}

    def step(self, x, y, noise=None):
        loss, grads = self.backward(x, y)
        with torch.no_grad():
            rules.sgd_(self.params, _with_noise(grads, noise), self.state, self.hp, self.rule)
        return loss, grads


class OptimPath(AutogradPath):
    """``loss.backward()``, then ``torch.optim.SGD.step()``: PyTorch's own rule."""

    name = "optim"

    def __init__(self, problem, params0, hp, rule="torch"):
        super().__init__(problem, params0, hp, rule="torch")
        self.optimizer = torch.optim.SGD(list(self.params.values()), **hp.torch_kwargs())

    def state_dict(self) -> dict:
        return {**super().state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        super().load_state_dict(state)
        self.optimizer.load_state_dict(state["optimizer"])

    def step(self, x, y, noise=None):
        loss, grads = self.backward(x, y)
        if noise is not None:
            for name, t in self.params.items():
                t.grad = t.grad + noise[name]  # a new tensor: the returned gradient stays clean
        self.optimizer.step()
        return loss, grads


PATHS = {cls.name: cls for cls in (ManualPath, AutogradPath, OptimPath)}
