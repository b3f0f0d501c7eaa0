"""Schedulers made of schedulers: SequentialLR (one after another, switching at milestones)
and ChainedScheduler (all at once, each acting on the lr the last one left).

Written on the command line (no quotes needed)::

    linear:start_factor=0.1,total_iters=5@5@cosine:T_max=95     SequentialLR, milestone 5
    exponential:gamma=0.9+step:step_size=10,gamma=0.5          ChainedScheduler

Sequential, at step t between milestones m_i <= t < m_(i+1), member i at its own step t - m_i:
    textbook     its closed form, lr_t = S_i.textbook(t - m_i, base)
    torch-exact  torch's: at t = m_i the member's closed form at 0 (``_update_lr(0)``), then
                 its recursion from the lr before
Chained, the members' factors multiplied:
    textbook     lr_t = base * S_1.textbook(t, 1) * S_2.textbook(t, 1) * ...
    torch-exact  torch's: every member's recursion in turn, each on the lr the one before left

Members: the schedulers torch can restart in closed form (step, multistep, constant, linear,
exponential, polynomial, cosine) and, in a sequence, lambda; in a chain multiplicative too and
cosine only with eta_min=0 (a chain multiplies factors: eta_min is not one).
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass
from types import SimpleNamespace

from ..errors import TorchgdError
from ._torch import torch_scheduler

CLOSED = ("step", "multistep", "constant", "linear", "exponential", "polynomial", "cosine")
IN_SEQUENCE = (*CLOSED, "lambda")
IN_CHAIN = (*CLOSED, "multiplicative")
_THEN = re.compile(r"@(\d+)@")  # a sequence's milestone
_AND = re.compile(r"\+(?=[A-Za-z])")  # a chain's member (not the + of 1e+3)


def is_composed(spec: str) -> bool:
    tail = _after_file(spec)
    return bool(_THEN.search(tail) or _AND.search(tail))


def _after_file(spec: str) -> str:
    """What may compose: all of ``spec``, or what follows a first member that is a scheduler
    file, ``FILE.py:...`` or ``FILE.py`` alone (its path may hold ``+x`` or ``@5@``)."""
    head, colon, rest = spec.partition(":")
    if not colon:
        return "" if spec.endswith(".py") else spec
    return rest if head.endswith(".py") else spec


def _split(pattern, spec: str) -> list:
    """``pattern.split(spec)``, a first member's file path kept whole."""
    tail = _after_file(spec)
    parts = pattern.split(tail)
    parts[0] = spec[: len(spec) - len(tail)] + parts[0]
    return parts


@dataclass(frozen=True)
class Options:
    members: tuple  # ((module, options), ...)
    milestones: tuple = ()  # a sequence's


def parse(spec: str, one):
    """``spec`` as (the composition's pseudo-module, Options); ``one`` parses one member."""
    tail = _after_file(spec)
    if _THEN.search(tail) and _AND.search(tail):
        raise TorchgdError(f"--scheduler {spec}: a sequence (@N@) or a chain (+), not both")
    if _THEN.search(tail):
        parts = _split(_THEN, spec)
        members, milestones = parts[0::2], tuple(int(m) for m in parts[1::2])
        if list(milestones) != sorted(set(milestones)) or milestones[0] < 1:
            raise TorchgdError(f"--scheduler {spec}: milestones must rise from 1: {milestones}")
        kind, allowed = SEQUENTIAL, IN_SEQUENCE
    else:
        members, milestones, kind, allowed = _split(_AND, spec), (), CHAINED, IN_CHAIN
    parsed = tuple(one(m) for m in members)
    for module, options in parsed:
        member = module.NAME in allowed and not hasattr(module, "SPEC")  # built-in ones only
        if not member or (kind is CHAINED and getattr(options, "eta_min", 0)):
            who = (f"a scheduler file ({module.SPEC.rpartition('/')[2]})"
                   if hasattr(module, "SPEC") else module.TORCH_CLASS)  # fmt: skip
            raise TorchgdError(
                f"--scheduler {spec}: {who} cannot be part of a "
                f"{kind.TORCH_CLASS} here (it takes {', '.join(allowed)}"
                + ("; cosine with eta_min=0" if kind is CHAINED else "")
                + ")"
            )
    return kind, Options(parsed, milestones)


def spec(o: Options, one) -> str:
    texts = [one(m, opts) for m, opts in o.members]
    if not o.milestones:
        return "+".join(texts)
    out = texts[0]
    for m, text in zip(o.milestones, texts[1:]):
        out += f"@{m}@{text}"
    return out


class Composed:
    """The schedule of a sequence or a chain (``schedulers.Schedule``'s interface)."""

    cycles_momentum = False

    def __init__(self, module, options: Options, base: float, spelling: str):
        self.module, self.options, self.base = module, options, base
        self.exact = spelling == "torch-exact"
        self.lrs = [self._lr(0, None)]

    def lr_at(self, t: int) -> float:
        while len(self.lrs) <= t:
            self.lrs.append(self._lr(len(self.lrs), self.lrs[-1]))
        return self.lrs[t]

    def _lr(self, t: int, prev):
        base, members = self.base, self.options.members
        if self.module is CHAINED:
            if not self.exact:
                out = base
                for m, o in members:
                    out *= m.textbook(t, 1.0, o)
                return out
            out = base if t == 0 else prev
            for m, o in members:
                out = m.torch_exact(t, out, base, o)
            return out
        i = bisect_right(self.options.milestones, t)
        start = self.options.milestones[i - 1] if i else 0
        m, o = members[i]
        if not self.exact:
            return m.textbook(t - start, base, o)
        if t == start:  # torch: the first member's first step; a later one restarts in closed form
            return m.textbook(0, base, o) if i else m.torch_exact(0, base, base, o)
        return m.torch_exact(t - start, prev, base, o)

    def torch_scheduler(self, optimizer):
        import torch

        made = [torch_scheduler(m, o, optimizer) for m, o in self.options.members]
        cls = getattr(torch.optim.lr_scheduler, self.module.TORCH_CLASS)
        if self.module is SEQUENTIAL:
            return cls(optimizer, made, milestones=list(self.options.milestones))
        return cls(made, optimizer)


SEQUENTIAL = SimpleNamespace(
    NAME="sequential",
    TORCH_CLASS="SequentialLR",
    Schedule=Composed,
    WHY="each member in its own spelling: torch restarts a member in closed form at its "
    "milestone, then runs its recursion (see that member's reason)",
)
CHAINED = SimpleNamespace(
    NAME="chained",
    TORCH_CLASS="ChainedScheduler",
    Schedule=Composed,
    WHY="torch runs every member's recursion in turn on the lr the one before left, rounding "
    "at every member and step, where the closed form multiplies the members' factors once",
)
