"""Run directories and the files in them, written so that nothing is lost or half-written.

Every run writes ``<logdir>/<name>/``: ``config.json`` when it starts, ``summary.json`` when it
ends (the same object ``--json`` prints). JSON files are replaced atomically: a temporary file in
the same directory, flushed and fsynced, then ``os.replace``. Files get the usual permissions
(``0o666`` less the umask: 0644 under the common 022), as ``open()`` would give them.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from pathlib import Path

from .errors import TorchgdError

FILE_MODE = 0o666  # os.open applies the umask to it, as open() does


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def new_run_dir(logdir: str | os.PathLike, name: str | None, prefix: str) -> Path:
    """Create the run directory; never reuse a non-empty one."""
    root = Path(logdir)
    if root.exists() and not root.is_dir():
        raise TorchgdError(f"--logdir '{root}' exists and is not a directory")
    if name:
        if "/" in name or name in (".", ".."):
            raise TorchgdError(f"--name '{name}' must be a plain name, not a path")
        run = root / name
        if run.exists() and (not run.is_dir() or any(run.iterdir())):
            raise TorchgdError(
                f"run directory '{run}' already exists and is not empty; choose another name "
                "(--name, or name= in Python), or leave it out for a new <command>-<time> one"
            )
    else:
        stem = f"{prefix}-{time.strftime('%Y%m%d-%H%M%S')}"
        run, i = root / stem, 1
        while run.exists():
            i += 1
            run = root / f"{stem}-{i}"
    try:
        run.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # no permission, a read-only or full disk: exit 74, as any write
        raise OSError(exc.errno, exc.strerror, str(run)) from None
    return run


def jsonable(obj):
    """Floats that JSON cannot hold (nan, inf) become None; everything else passes through."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    return obj


def dumps(obj, indent=None) -> str:
    """Strict JSON with floats at full precision (Python's repr)."""
    return json.dumps(jsonable(obj), indent=indent, allow_nan=False)


def write_atomic(path: str | os.PathLike, data: bytes | str) -> None:
    path = Path(path)
    raw = data.encode() if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, FILE_MODE & ~_umask())  # mkstemp makes 0600 files
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:  # disk full: the old file (if any) is untouched; name the file
        Path(tmp).unlink(missing_ok=True)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_json(path: str | os.PathLike, obj) -> None:
    write_atomic(path, dumps(obj, indent=2) + "\n")
