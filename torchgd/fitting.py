"""``torchgd.fit``: a run in one call, from Python, into a run directory if asked.

It plans (``torchgd.plan``), runs the loop (``torchgd.train.execute``) and, with ``logdir``,
writes what ``torchgd train`` writes (``torchgd.rundir``); an error is worded for Python
(``epochs=``, not ``--epochs``), as it is by ``torchgd.plan``, defined here too. Its own
module, so that the loop (``train``) imports nothing that draws: the figures' code may run the
loop without an import cycle.
"""

from __future__ import annotations

from . import planning
from .errors import TorchgdError
from .result import Result
from .train import execute


def fit(
    problem="linear",
    data=None,
    *,
    callbacks=(),
    logdir=None,
    name=None,
    tensorboard=True,
    plots=True,
    **options,
) -> Result:
    """Run the selected paths in lockstep and compare them at every step.

    ``data``: a name or file as the command line takes it ("lecture", "course",
    "synthetic:1000,d=3,noise=0.1", "points.csv"), ``(x, y)`` (tensors, arrays or lists) or
    ``{"x": x, "y": y}``. ``options`` are ``plan``'s, every run option of
    ``torchgd.runconfig.RunConfig`` (batching, lr, epochs, optimizer, scheduler, ...; see
    ``help(torchgd.plan)``) and the rule's options (SGD: momentum, ...; Adam: betas, eps,
    amsgrad, ...). The epoch's ``loss`` is what the lecture
    prints: for ``batch`` (and data-free problems) the cost over the batch before the update;
    for ``sgd`` and ``minibatch`` the loss of the epoch's last batch after its update, as the
    lecture's SGD code computes it.

    ``logdir``: write the run directory ``train`` writes, ``<logdir>/<name>`` (default name
    ``fit-<time>``): config.json, TensorBoard's event files (``tensorboard=False``: none),
    summary.json and the figures (``plots=False``: none); ``result.run_dir`` is where. Without
    it nothing is written.
    """
    try:
        p = planning.plan(problem, data, **options)
        if logdir is None:
            return execute(p, callbacks)
        from .rundir import fit_into

        return fit_into(p, logdir, name, callbacks=callbacks, tensorboard=tensorboard, plots=plots)
    except TorchgdError as exc:
        raise TorchgdError(in_python(str(exc))) from None


def _signature():
    """fit's signature: plan's (every run option with its default), then fit's own."""
    import inspect

    own = inspect.signature(fit).parameters
    options = list(inspect.signature(planning.plan).parameters.values())
    keep = [p for p in options if p.name != "rows" and p.kind is not p.VAR_KEYWORD]
    mine = [own[n] for n in ("callbacks", "logdir", "name", "tensorboard", "plots")]
    return inspect.Signature([*keep, *mine, own["options"]])


fit.__signature__ = _signature()


def plan(problem="linear", data=None, **options):
    try:
        return planning.plan(problem, data, **options)
    except TorchgdError as exc:
        raise TorchgdError(in_python(str(exc))) from None


# torchgd.plan: planning.plan as Python calls it, its errors worded for Python as fit's are
# (``init= names 'q'``, not ``--init names 'q'``); the command line calls planning.plan
plan.__signature__ = planning.plan.__signature__
plan.__doc__ = planning.plan.__doc__


def in_python(message: str) -> str:
    """A message worded for the command line (``--epochs must be ...``) as Python's caller
    names the argument (``epochs= must be ...``); one that already says both is left alone."""
    import re

    if "in Python" in message:
        return message
    return re.sub(r"(?<![\w-])--([a-z][a-z0-9-]*)", lambda m: m[1].replace("-", "_") + "=", message)
