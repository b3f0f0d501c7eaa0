"""The user's own files a run depends on (a problem, a rule, a scheduler's function, the data),
and their SHA-256, recorded in ``config.json``: ``--resume`` refuses a run whose files changed."""

from __future__ import annotations

import re


def _files(config: dict) -> list[str]:
    """The user's files a run depends on: its problem and rule files, its lr scheduler's file
    and functions (``lr_lambda=``, ``scale_fn=``), its data file."""
    out = []
    for spec in (config.get("problem_spec"), config.get("optimizer")):
        where = (spec or "").rpartition(":")[0]
        if where.endswith(".py"):
            out.append(where)
    scheduler = config.get("scheduler") or ""
    out += re.findall(r"(?:^|[@+])([^,=@+:]+\.py):", scheduler)  # a scheduler file of one's own
    out += re.findall(r"=([^,=@+]+\.py):", scheduler)  # its lr_lambda or scale_fn
    data = (config.get("data_meta") or {}).get("file")
    if data:
        out.append(data)
    return out


def _sha256(path: str) -> str | None:
    import hashlib

    digest = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    except OSError:
        return None
    return digest.hexdigest()


def file_hashes(config: dict) -> dict:
    """``{path: SHA-256}`` of every file of ``_files``."""
    return {path: _sha256(path) for path in _files(config)}


def changed_files(config: dict) -> list[str]:
    """The files a run's ``config.json`` recorded that are missing or differ now."""
    return [path for path, h in (config.get("files") or {}).items() if _sha256(path) != h]
