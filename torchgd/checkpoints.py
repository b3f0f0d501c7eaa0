"""Checkpoints: everything a run needs to continue bit for bit, written so a crash can't corrupt it.

A checkpoint holds every path's parameters and optimizer state (the manual rule's momentum
buffers and ``torch.optim.SGD``'s ``state_dict``), the step, epoch and position inside the epoch,
the per-epoch histories, the agreement report so far (a running summary of every step, not the
steps themselves), the divergence guard's and the callbacks' state, and the config. There is no
random generator state to save: every shuffle and every noise draw is seeded from
``(seed, epoch)`` or ``(seed, step)`` alone, so a resumed run draws the same numbers.

On disk: ``torch.save`` of ``{"format", "sha256", "payload"}`` where the payload is the state,
itself saved with ``torch.save``; both are loaded with ``weights_only=True`` (no pickled code),
and the digest catches a truncated or tampered file. Written to a temporary file in the same
directory, flushed and fsynced, then moved into place with ``os.replace``.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from pathlib import Path

import torch

from .errors import TorchgdError
from .runs import write_atomic

FORMAT = "torchgd-checkpoint-2"  # 2: L-BFGS's history, a cycled momentum; no older one read
NAME = "checkpoint.pt"


def save(path: str | os.PathLike, state: dict) -> None:
    path = Path(path)
    buf = io.BytesIO()
    torch.save(state, buf)
    payload = buf.getvalue()
    outer = {
        "format": FORMAT,
        "sha256": hashlib.sha256(payload).hexdigest(),
        "payload": torch.frombuffer(bytearray(payload), dtype=torch.uint8),
    }
    out = io.BytesIO()
    torch.save(outer, out)
    write_atomic(path, out.getvalue())


def _load(source, what: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            return torch.load(source, map_location="cpu", weights_only=True)
        except Exception:
            raise TorchgdError(f"checkpoint {what} is truncated or corrupt") from None


def load(path: str | os.PathLike) -> dict:
    path = Path(path)
    if not path.is_file():
        raise TorchgdError(
            f"no checkpoint at '{path}' (train with --checkpoint-every K, or "
            "stop a run with Ctrl-C, to write one)"
        )
    outer = _load(path, f"'{path}'")
    if not isinstance(outer, dict) or not str(outer.get("format")).startswith("torchgd-checkp"):
        raise TorchgdError(f"'{path}' is not a torchgd checkpoint")
    if outer["format"] != FORMAT:
        raise TorchgdError(
            f"'{path}' is a {outer['format']}, written by an older torchgd; this one resumes "
            f"{FORMAT} only: train the run again"
        )
    payload = outer.get("payload")
    if not isinstance(payload, torch.Tensor) or payload.dtype != torch.uint8:
        raise TorchgdError(f"checkpoint '{path}' is truncated or corrupt")
    raw = payload.numpy().tobytes()
    if hashlib.sha256(raw).hexdigest() != outer.get("sha256"):
        raise TorchgdError(f"checkpoint '{path}' has been modified: its checksum does not match")
    state = _load(io.BytesIO(raw), f"'{path}'")
    if not isinstance(state, dict) or "position" not in state:
        raise TorchgdError(f"checkpoint '{path}' is truncated or corrupt")
    return state
