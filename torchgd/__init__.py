"""torchgd: gradient descent made exact, visible and verifiable.

The lecture's model fitted by three paths in lockstep, every step compared::

    import torchgd
    result = torchgd.fit(data="lecture", batching="sgd", lr=0.01, epochs=100)
    result                       # Result(completed: linear, lecture data, sgd, lr=0.01, ...)
    result.params()              # {'w': 1.9999999999999998}
    result.agreement["max_ulp"]  # 0: manual, autograd and torch.optim.SGD agree bit for bit
    torchgd.plots.loss(result)   # a matplotlib Figure (a notebook shows it)

Functions and classes:

    fit(problem, data, **options)    run the paths in lockstep; returns a Result
                                     (logdir="runs": and write the run directory train writes)
    plan(problem, data, **options)   check and resolve the options (a Plan), running nothing
    execute(plan, callbacks)         run a Plan
    Result                           what a run gives: config, status, paths, agreement
    check_gradients(problem)         analytic gradient against autograd and central differences
    numerical_gradient(f, *xs, h=)   central differences on a grid, vectorized
    ulp_distance(a, b)               how many floats lie between two tensors, elementwise
    FunctionProblem                  a function of a few parameters to minimize
    TorchgdError                     the one exception for bad input
    from_values(x, y)                a dataset from numbers (fit takes data=(x, y) too)

Modules: problems, datasets (= data), gradients, rules, paths, batching, compare, plots,
sweep (``torchgd.sweep.sweep(lrs=[...], ...)``: K learning rates as one vectorized run),
check (``torchgd.check.check_gradients``).

Names are loaded lazily, so ``import torchgd`` and ``torchgd --help`` do not import torch.
"""

__version__ = "0.1.0"

_LAZY = {
    "fit": ("fitting", "fit"),
    "plan": ("fitting", "plan"),
    "execute": ("train", "execute"),
    "Result": ("train", "Result"),
    "TorchgdError": ("errors", "TorchgdError"),
    "FunctionProblem": ("problems", "FunctionProblem"),
    "ulp_distance": ("compare", "ulp_distance"),
    "check_gradients": ("check", "check_gradients"),
    "numerical_gradient": ("gradients", "numerical"),
    "from_values": ("data", "from_values"),
}
_MODULES = (
    "problems",
    "data",
    "datasets",
    "gradients",
    "rules",
    "paths",
    "batching",
    "compare",
    "plots",
    "sweep",
    "check",
)

__all__ = sorted([*_LAZY, *_MODULES])


def __getattr__(name):
    import importlib

    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    if name in _MODULES:
        return importlib.import_module(f".{'data' if name == 'datasets' else name}", __name__)
    raise AttributeError(f"module 'torchgd' has no attribute '{name}'")


def __dir__():
    """The public API (loaded lazily, so ``dir`` imports nothing) and the module's own names."""
    return sorted(
        {*(n for n in globals() if not n.startswith("_") or n.startswith("__")), *__all__}
    )
