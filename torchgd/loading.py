"""A user's own code named as ``FILE.py:NAME`` or ``package.module:NAME`` (a problem, an
update rule): the file run once per process while it is unchanged, and every failure one line.

Imports no torch (the command line loads a user's rule before it parses its options)."""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from .errors import TorchgdError

_FILES: dict = {}  # (path, mtime, size) -> module


def attribute(spec: str, kind: str):
    """The object ``NAME`` of ``FILE.py:NAME`` or ``package.module:NAME`` (None if the file
    has no such name); ``kind`` ("problem", "optimizer") words the errors."""
    where, _, attr = spec.rpartition(":")
    try:
        module = (
            _file(Path(where), kind) if where.endswith(".py") else importlib.import_module(where)
        )
    except TorchgdError:
        raise
    except Exception as exc:  # a user's file: report, don't crash
        raise TorchgdError(f"cannot load {kind} '{spec}': {type(exc).__name__}: {exc}") from exc
    return getattr(module, attr, None)


def module_file(path: Path, kind: str):
    """The module of a user's file (a scheduler file is a module, not one name in it); a file
    that cannot run is one line."""
    try:
        return _file(path, kind)
    except TorchgdError:
        raise
    except Exception as exc:
        raise TorchgdError(f"cannot load {kind} '{path}': {type(exc).__name__}: {exc}") from exc


def _file(path: Path, kind: str):
    if path.is_dir():
        raise TorchgdError(f"{kind} file '{path}' is a directory, not a .py file")
    if not path.is_file():
        raise TorchgdError(f"{kind} file '{path}' does not exist")
    stat = path.stat()
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    if key not in _FILES:
        module_spec = importlib.util.spec_from_file_location(path.stem, path)
        module = importlib.util.module_from_spec(module_spec)
        module_spec.loader.exec_module(module)
        _FILES[key] = module
    return _FILES[key]
