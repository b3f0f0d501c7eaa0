"""Figures drawn by a second process while training goes on.

Drawing the lecture's six figures takes about as long as its training, and importing matplotlib
as long again; done one after the other they made ``torchgd lecture`` 1.7 times as slow as
importing torch. So a command that draws starts ``python -m torchgd.drawing`` first thing: while
the command imports torch and trains, the drawer imports matplotlib and torch (no
``torch._dynamo``: it draws, it does not step an optimizer) and draws each figure as soon as it
is asked, the run-independent ones (``field``, ``batchings``) at once, a run's figures the moment
its summary exists. The command then waits for the last figure.

The protocol is one JSON object a line each way: ``{"kind", "path", "kwargs"}`` in,
``{"path"}`` or ``{"path", "error"}`` out. Figures are written whole and atomically, so Ctrl-C
(which reaches both processes) leaves every finished figure and no torn one. Where the drawer
cannot start, or dies, the figures it did not report are drawn in this process instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .errors import TorchgdError


class Drawer:
    """Queue figures with ``draw``; ``wait`` returns the files, by group, once all are written."""

    def __init__(self, background: bool = True):
        self.queued: list[tuple[str, str, dict, object]] = []  # kind, path, kwargs, group
        self.moves: dict[str, tuple] = {}  # scratch file -> (where it goes, its group)
        self._scratch: str | None = None
        self.proc = None
        if background:
            try:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "torchgd.drawing"],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
            except OSError:
                self.proc = None  # drawn here instead

    def draw(self, kind: str, path, group=None, **kwargs) -> None:
        """Ask for figure ``kind`` at ``path``; ``kwargs`` as ``torchgd.plots.<kind>`` takes
        them, JSON-able (a run as its summary dict). ``group``: returned with the file."""
        self.queued.append((kind, str(path), kwargs, group))
        if self.proc is not None:
            try:
                self.proc.stdin.write(
                    json.dumps({"kind": kind, "path": str(path), "kwargs": kwargs})
                )
                self.proc.stdin.write("\n")
                self.proc.stdin.flush()
            except OSError:  # the drawer has gone: what it did not finish is drawn in wait()
                self._abandon()

    def scratch(self) -> Path:
        """A private directory for figures asked for before their run directory exists (the
        lecture's ``field`` and ``batchings``, drawn while torch is still importing); ``place``
        says where each goes."""
        if self._scratch is None:
            import tempfile

            self._scratch = tempfile.mkdtemp(prefix="torchgd-figures-")
        return Path(self._scratch)

    def place(self, scratch_file, path, group=None) -> None:
        """Move ``scratch_file`` to ``path`` (in ``group``) once it is drawn."""
        self.moves[str(scratch_file)] = (Path(path), group)

    def wait(self) -> dict:
        """Every queued figure, written, as ``{group: [path, ...]}``; a figure that failed
        raises its one-line error."""
        done: dict[str, str | None] = {}
        if self.proc is not None:
            try:
                self.proc.stdin.close()  # no more jobs: the drawer ends after the last one
                for line in self.proc.stdout:
                    answer = json.loads(line)
                    done[answer["path"]] = answer.get("error")
                    if len(done) == len(self.queued):
                        break
                self.proc.wait(timeout=10)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                pass
            self._abandon()
        for kind, path, kwargs, _ in self.queued:
            if path not in done:  # not reported by the drawer: draw it here
                done[path] = _draw(kind, path, kwargs)
        for error in done.values():
            if error:
                raise TorchgdError(error)
        out: dict = {}
        for _, path, _, group in self.queued:
            if path in self.moves:
                import shutil

                dest, group = self.moves.pop(path)
                path = shutil.move(path, dest)
            out.setdefault(group, []).append(Path(path))
        self.queued = []
        self._clean()
        return out

    def _clean(self) -> None:
        if self._scratch is not None:
            import shutil

            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None

    def _abandon(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def close(self) -> None:
        """Stop the drawer now (Ctrl-C, an error): what it finished in a run directory stays
        there; its scratch directory goes."""
        self._abandon()
        self._clean()


def _draw(kind: str, path: str, kwargs: dict) -> str | None:
    """Draw one figure; the error's one line, or None."""
    from . import plots

    try:
        getattr(plots, kind)(path=path, **kwargs)
    except TorchgdError as exc:
        return str(exc)
    return None


def main() -> int:
    import signal

    signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C ends the drawer at once, quietly
    from . import plots  # noqa: F401  (imported while the command imports torch and trains)

    for line in sys.stdin:
        job = json.loads(line)
        try:
            error = _draw(job["kind"], job["path"], job["kwargs"])
        except Exception as exc:  # a bug: report it, the command raises it as one line
            error = f"drawing {job['kind']} failed: {type(exc).__name__}: {exc}"
        answer = {"path": job["path"], **({"error": error} if error else {})}
        print(json.dumps(answer), flush=True)
    return 0


if __name__ == "__main__":
    from .control import quick_exit

    quick_exit(main())
