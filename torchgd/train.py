"""execute(): the lockstep loop, nothing else (``torchgd.fit`` is ``torchgd.fitting``'s).

Every step, every selected path steps on the same batch (``run.Run.step``); each step's numbers
(parameters, gradients, and the analytic formula evaluated at each autograd path's own
parameters) go into a block on the run's device, which ``explain.Agreement`` folds and the
callbacks get when it is full. Callbacks see each epoch as it ends. The pieces: ``plan`` checks
and resolves the arguments, ``run`` holds the state, ``control`` stops and saves.
"""

from __future__ import annotations

import time

from . import interfaces
from .control import Checkpointer, Stop, StopFlag  # noqa: F401
from .history import HISTORY_MAX, history_epochs  # noqa: F401
from .planning import (  # noqa: F401  (the names torchgd.train has always offered)
    PATH_NAMES,
    SHADOW_MAX_VALUES,
    Plan,
    initial_params,
    parse_paths,
    plan,
    plan_from_config,
)
from .records import Epoch, Record, Step, sync_allowed  # noqa: F401
from .result import Result  # noqa: F401  (torchgd.train.Result, as before)
from .run import Run  # noqa: F401
from .run import advice as _advice  # noqa: F401
from .run import batch_of as _batch  # noqa: F401


def divergence_message(info: dict, lr: float, config: dict | None = None) -> str:
    """The one line a diverged run ends with (see ``torchgd.guard``)."""
    from .guard import message

    return message(info, lr, config)


def execute(
    p: Plan, callbacks=(), *, resume: dict | None = None, checkpoint=None, group=None, run=None
) -> Result:
    """The lockstep loop over a validated plan; every callback is closed on every exit.

    ``resume``: a checkpoint's state to continue from. ``checkpoint``: a ``Checkpointer`` that
    saves every K epochs and when the run is interrupted. Ctrl-C (SIGINT) stops the run cleanly
    after the current step: status ``interrupted``, everything up to that step kept.
    ``group``: a ``torchgd.distributed.Group``; this process then works on its shard of every
    batch and the ranks add up their sums before each update (see ``torchgd.distributed``).
    ``run``: what the loop steps (default: a ``run.Run`` of the plan's paths; a sweep's
    ``lanerun.LaneRun``, whose result is the sweep's report).
    """
    callbacks = interfaces.check_callbacks(callbacks)
    stop = StopFlag()
    try:
        with stop:
            return _loop(p, callbacks, resume, checkpoint, stop, group, run)
    finally:
        interfaces.call(callbacks, "close")


def _loop(p: Plan, callbacks, resume, checkpointer, stop, group, run) -> Result:
    with sync_allowed(p.device):  # -- setup: the data to the device, the starting cost
        run = run or Run(p, callbacks, group)
        run.load_state_dict(resume) if resume is not None else run.start()
    step, start_epoch, start_batch = run.position
    for cb in callbacks:  # every hook is optional (interfaces.Callback)
        interfaces.call([cb], "on_start", p.config, run.paths)
        if resume is not None and callable(getattr(cb, "resume", None)):
            cb.resume(resume.get("callbacks", {}).get(type(cb).__name__), step)

    status, diverged, started = "completed", None, time.perf_counter()
    try:
        for epoch in range(start_epoch, p.epochs + 1):
            # -- the epoch's batches: every path steps on the same samples
            first = start_batch if epoch == start_epoch else 0
            for j, batch in run.batches(epoch, first):
                info = run.step(epoch, j, batch)
                # -- callbacks that want every step (the rest get blocks, from run.flush)
                for cb in run.step_callbacks:
                    cb.on_step(info)
                # -- Ctrl-C: stop between steps; a resumed run starts at batch j + 1
                if stop.requested and j + 1 < len(run.slices):
                    raise Stop(epoch, j + 1)
            # -- the epoch's end: losses, history, callbacks
            info = run.end_epoch(epoch, batch)
            interfaces.call(callbacks, "on_epoch", info)
            # -- the guard: stop a diverging run at the epoch it diverged
            if p.config["guard"] and (diverged := run.watch(info)):
                status = "diverged"
                break
            # -- checkpoint, stop
            if checkpointer is not None and checkpointer.due(epoch):
                checkpointer.save(run.state_dict(epoch + 1, 0), callbacks)
            if stop.requested:
                raise Stop(epoch + 1, 0)
    except Stop as at:  # a clean stop between steps: everything is consistent, save it
        status = "interrupted"
        if checkpointer is not None:
            checkpointer.save(run.state_dict(at.epoch, at.batch), callbacks)
    except KeyboardInterrupt:  # a second Ctrl-C: stop at once, keep what is complete
        status = "interrupted"
    with sync_allowed(p.device):  # -- the end: the last block, the histories, the report
        result = run.result(status, time.perf_counter() - started, diverged)
    interfaces.call(callbacks, "on_end", result)
    return result
