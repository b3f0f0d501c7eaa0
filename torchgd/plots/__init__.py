"""Figures of a run: each function returns a matplotlib ``Figure`` and saves it only when given
``path=`` (``.png``, ``.svg`` or ``.pdf``, by the file's suffix).

The figures are built without pyplot: importing this module leaves matplotlib's backend as it
was, no figure is kept in a global registry (a figure lives as long as you hold it), and a
returned figure shows itself in a notebook (``_repr_png_``). Sizes are fixed (``SIZE`` or
``WIDE`` at ``DPI``) so tests can check them. A run can be given as a ``torchgd.Result`` or as
the object its ``summary.json`` holds (``Result.to_json()``)::

    result = torchgd.fit(batching="sgd")
    plots.loss(result)                    # a Figure: a notebook shows it
    plots.loss(result, path="loss.png")   # the same Figure, saved too

* ``field``: the lecture's first section: f(x, y) = x^2 + y^2 as a 3-D surface, and a quiver
  plot of its numerical gradient (central differences, h = 1e-4) on the lecture's grid.
* ``cost``: cost(w) over a range of w, with each path's iterates marked on it.
* ``loss``: loss per epoch, one line per path (one line for paths that are identical bit for
  bit, and the legend says so); a log scale when the loss spans more than two decades; a
  smoothed curve, thinner and under the raw loss, only where the raw loss goes up and down.
* ``batchings``: batch GD, per-sample SGD and mini-batch on the same data, against epochs and
  against samples seen.
* ``trajectory``: contour lines of a 2-D problem (or the curve of a 1-D one, its local minima
  marked) with each path's iterates.
* ``sweep``: final loss against the learning rate, and the loss curves of a few telling ones.
* ``schedule``: a scheduled run's lr per step (per path), the critical lr as a line where the
  theory gives one, and the loss per step beneath.
* ``race``: every update rule from the same start on 2-D functions, each at the learning rate
  of one shared grid that reaches the minimum first: its iterates on the contour lines, and its
  loss.

One module each: ``common`` (what every figure shares), ``lecture`` (field, cost, loss,
batchings), ``functions`` (trajectory), ``sweep``, ``race``, ``schedule``.
"""

from __future__ import annotations

from ..racing import RACE_DIGITS, RACE_LRS, RACE_STEPS, race_problem, settled_at  # noqa: F401
from .common import (  # noqa: F401
    DPI,
    FORMATS,
    MARKERS,
    SIZE,
    STYLES,
    WIDE,
    Figure,
    check_path,
    describe,
    legend_below,
    num,
    point,
    smooth,
    wrap_phrases,
)
from .functions import trajectory  # noqa: F401
from .lecture import batchings, cost, cost_curve, field, loss  # noqa: F401
from .race import race  # noqa: F401
from .schedule import limit, schedule  # noqa: F401
from .sweep import sweep  # noqa: F401
