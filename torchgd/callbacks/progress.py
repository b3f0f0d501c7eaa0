"""A tqdm progress bar on stderr, for runs long enough to need one.

Shown only when stderr is a terminal and after about two seconds (``delay``), never with
``--json`` or ``--quiet`` (the CLI does not add it then) and never when stderr is piped. The
console prints through ``Progress.write``, so its lines never share a line with the bar.
"""

from __future__ import annotations

import os
import sys
import time

from . import Callback


class Progress(Callback):
    def __init__(self, epochs: int, stream=None, delay: float = 2.0):
        self.epochs, self.stream, self.delay = epochs, stream or sys.stderr, delay
        self.bar = None

    def on_start(self, config, paths):
        if not self.stream.isatty():
            return
        from tqdm import tqdm

        try:  # a terminal that reports no size (some ptys): 80 columns, not an empty bar
            sized = os.get_terminal_size(self.stream.fileno()).columns > 0
        except (OSError, ValueError, AttributeError):
            sized = False
        self.started = time.monotonic()
        self.bar = tqdm(
            total=self.epochs,
            unit="epoch",
            file=self.stream,
            delay=self.delay,
            leave=False,
            dynamic_ncols=sized,
            ncols=None if sized else 80,
        )

    def write(self, line: str, stream) -> None:
        """Print ``line`` to ``stream`` on a line of its own: the bar is cleared first and
        redrawn below, so printed lines and the bar never share a line."""
        if self.bar is None or time.monotonic() - self.started < self.delay:
            print(line, file=stream, flush=True)  # no bar drawn yet: none to clear or redraw
        else:
            self.bar.write(line, file=stream)
            stream.flush()

    def on_epoch(self, epoch):
        if self.bar is not None:
            self.bar.update(1)

    def close(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
