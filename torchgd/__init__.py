"""torchgd: gradient descent made exact, visible and verifiable.

The lecture's model fitted by three paths in lockstep, every step compared::

    import torchgd
    result = torchgd.fit(data="lecture", schedule="sgd", lr=0.01, epochs=100)
    result.params()            # {'w': 1.9999999999999998}
    result.agreement["max_ulp"]  # 0: manual, autograd and torch.optim.SGD agree bit for bit

Names are loaded lazily, so ``torchgd --help`` does not import torch.
"""

__version__ = "0.1.0"

_LAZY = {
    "fit": ("train", "fit"),
    "plan": ("train", "plan"),
    "execute": ("train", "execute"),
    "Result": ("train", "Result"),
    "TorchgdError": ("errors", "TorchgdError"),
    "FunctionProblem": ("problems", "FunctionProblem"),
    "ulp_distance": ("compare", "ulp_distance"),
    "check_gradients": ("check", "check_gradients"),
    "numerical_gradient": ("gradients", "numerical"),
}
_MODULES = ("problems", "data", "datasets", "gradients", "rules", "paths", "schedules", "compare")

__all__ = sorted([*_LAZY, *_MODULES])


def __getattr__(name):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _MODULES:
        return importlib.import_module(f".{'data' if name == 'datasets' else name}", __name__)
    raise AttributeError(f"module 'torchgd' has no attribute '{name}'")
