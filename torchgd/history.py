"""What a run keeps of its epochs and, with ``history="steps"``, of every step, per path.

An epoch's row (its loss and every path's parameters) waits on the run's device with the next
ones and is copied to the host ``HISTORY_BLOCK`` epochs at a time; the lr (and a cycled
momentum) of the epoch's last step, as the paths took it, joins it. The result keeps every
epoch up to ``HISTORY_MAX`` + 1 and evenly spaced ones beyond (``history_epochs``).
"""

from __future__ import annotations

import torch

from .records import sync_allowed

HISTORY_MAX = 10_000
HISTORY_BLOCK = 4096  # epochs of history held on the device before they are copied to the host


def history_epochs(done: int, mode: str = "auto") -> list[int] | None:
    """The epochs a history keeps: all (None) up to ``HISTORY_MAX`` + 1 epochs or with
    ``mode`` "all"; beyond, ``HISTORY_MAX`` + 1 evenly spaced epochs from the first to the
    last (a 700,000-epoch run's summary stays a few hundred kilobytes per series)."""
    if mode in ("all", "steps") or done <= HISTORY_MAX + 1:
        return None
    return [1 + round(i * (done - 1) / HISTORY_MAX) for i in range(HISTORY_MAX + 1)]


def _no_steps(params0: dict) -> dict:
    """A path's per-step history before its first step (history="steps")."""
    keys = list(params0)
    return {
        "step": [],
        "epoch": [],
        "loss": [],
        **{k: [] for k in keys},
        "grad": {k: [] for k in keys},
    }


def by_param(rows: torch.Tensor, params0: dict) -> dict:
    """``[T, D]`` rows of flattened parameter entries (host) as each parameter's T values,
    shaped like it: ``{"w": [...], "b": [...]}`` (Python floats, or nested lists)."""
    out, at, T = {}, 0, len(rows)
    for k, t in params0.items():
        out[k] = rows[:, at : at + t.numel()].reshape(T, *t.shape).tolist()
        at += t.numel()
    return out


class History:
    """Every path's epochs (loss and parameters), their lrs and cycled momenta where they
    change, and with ``mode`` "steps" every step (the batch's loss before its update, the
    parameters after it, the gradient used, the lr and momentum taken)."""

    def __init__(self, names, params0: dict, mode: str, device, scheduled=False, cycles=False):
        self.names, self.params0, self.mode, self.device = list(names), params0, mode, device
        self.epochs = {p: {"loss": [], **{k: [] for k in params0}} for p in self.names}
        self._rows: list = []  # per epoch [P, 1 + D] on the device, not yet in ``epochs``
        self.lrs: list | None = [] if scheduled else None  # per epoch, per path
        self.momenta: list | None = [] if cycles else None
        self.steps = {p: _no_steps(params0) for p in self.names} if mode == "steps" else None

    def add_epoch(self, row, taken) -> None:
        """One epoch's row (on the device) and ``taken``: the (lrs, momenta) of its last step."""
        self._rows.append(row)
        for kept, values in ((self.lrs, taken[0]), (self.momenta, taken[1])):
            if kept is not None:
                kept.append(values)
        if len(self._rows) >= HISTORY_BLOCK:
            self.drain()

    def drain(self) -> None:
        """Copy the epochs held on the device into ``epochs`` (one copy)."""
        if not self._rows:
            return
        with sync_allowed(self.device):
            rows = torch.stack(self._rows).cpu()
        self._rows = []
        P, E = len(self.names), len(rows)
        params = rows[:, P:].reshape(E, P, -1)
        for i, p in enumerate(self.names):
            self.epochs[p]["loss"].extend(rows[:, i].tolist())
            for k, values in by_param(params[:, i], self.params0).items():
                self.epochs[p][k].extend(values)

    def add_steps(self, host) -> None:
        """A block's steps (``records.HostBlock``), where every step is kept."""
        if self.steps is None:
            return
        for i, p in enumerate(self.names):
            kept = self.steps[p]
            kept["step"] += host.steps
            kept["epoch"] += host.epochs
            for key, rows in (("lr", host.lrs), ("momentum", host.momenta)):
                if rows is not None:
                    kept.setdefault(key, []).extend(row[i] for row in rows)
            kept["loss"] += host.losses[:, i].tolist()
            for k, values in by_param(host.params[:, i], self.params0).items():
                kept[k] += values
            for k, values in by_param(host.grads[:, i], self.params0).items():
                kept["grad"][k] += values

    @property
    def done(self) -> int:
        """The epochs kept so far (after ``drain``)."""
        return len(self.epochs[self.names[0]]["loss"])

    def of(self, p: str) -> dict:
        """Path ``p``'s history as the result holds it: every epoch (or the evenly spaced ones
        of a long run, listed in ``epoch``), its lr and momentum, its steps."""
        hist = {k: list(v) for k, v in self.epochs[p].items()}
        i = self.names.index(p)
        for key, rows in (("lr", self.lrs), ("momentum", self.momenta)):
            if rows is not None:
                hist[key] = [row[i] for row in rows]
        kept = history_epochs(self.done, self.mode)
        if kept is not None:
            hist = {k: [v[e - 1] for e in kept] for k, v in hist.items()}
            hist["epoch"] = kept
        if self.steps is not None:
            hist["steps"] = self.steps[p]
        return hist

    def state_dict(self) -> dict:
        """For a checkpoint (the epochs on the device copied first)."""
        self.drain()
        return {"history": self.epochs, "steps": self.steps, "epoch_lrs": self.lrs,
                "epoch_momenta": self.momenta}  # fmt: skip

    def load_state_dict(self, state: dict) -> None:
        self.epochs = state["history"]
        self.steps = state.get("steps", self.steps)
        self.lrs = state.get("epoch_lrs", self.lrs)
        self.momenta = state.get("epoch_momenta", self.momenta)
