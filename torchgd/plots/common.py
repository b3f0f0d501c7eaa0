"""What every figure shares: the Figure class, sizes, titles, legends, saving, and a run
described in words."""

from __future__ import annotations

import io
import math
import textwrap
from pathlib import Path

import matplotlib.figure

from .. import rules
from ..errors import TorchgdError
from ..runs import write_atomic

FORMATS = ("png", "svg", "pdf")


DPI = 100


SIZE = (8, 5)  # inches: 800 x 500 pixels


WIDE = (12, 5)  # 1200 x 500


MARKERS = {"manual": "o", "autograd": "x", "optim": "+"}


# paths drawn over each other stay visible: each group of paths a thinner, broken line
STYLES = [("-", 2.2), ("--", 1.6), (":", 1.6), ("-.", 1.2)]


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that a notebook shows as a PNG, whether or not pyplot was imported."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", dpi=DPI)
        return buf.getvalue()


def _figure(size) -> Figure:
    return Figure(figsize=size, dpi=DPI, layout="tight")


def _title(ax, text: str, width: int | None = None, **kw) -> None:
    """A title of one or more lines, each wrapped to ``width`` characters (default: what the
    axes' share of the figure holds at the title's size, about 9 characters an inch)."""
    if width is None:
        inches = ax.get_position().width * ax.figure.get_figwidth()
        width = max(30, int(inches * 9.5 / 0.8))  # the axes span ~80% of their slot
    lines = [w for line in text.split("\n") for w in wrap_phrases(line, width)]
    ax.set_title("\n".join(lines), **kw)


def wrap_phrases(line: str, width: int) -> list[str]:
    """``line`` in lines of at most ``width`` characters, broken after a phrase (``", "``,
    ``": "``), never inside one unless a phrase alone is longer than a line."""
    import re

    phrases = re.split(r"(?<=[,:;]) ", line)
    out: list[str] = []
    for phrase in phrases:
        if out and len(out[-1]) + 1 + len(phrase) <= width:
            out[-1] += " " + phrase
        else:
            out += textwrap.wrap(phrase, width) or [""]
    return out


def legend_below(ax, **kw) -> None:
    """The legend under the axes, outside them: it never covers a curve, an arrow or a point."""
    _, labels = ax.get_legend_handles_labels()
    width = ax.get_position().width * ax.figure.get_figwidth() * ax.figure.dpi  # pixels
    column = 40 + 5 * max(map(len, labels), default=0)  # a marker and 8-point characters
    ncol = max(1, min(2, int(width // column))) if len(labels) > 3 else 1
    # anchored at the axes' bottom edge, 4 font sizes (32 points) below: under the tick
    # labels and the axis label, whatever the axes' height
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, 0), borderaxespad=4, ncol=ncol,
              fontsize=8, frameon=False, **kw)  # fmt: skip


def check_path(path) -> Path:
    """The file a figure may be saved to: a known suffix, in a directory that exists."""
    path = Path(path)
    if path.suffix.lstrip(".").lower() not in FORMATS:
        raise TorchgdError(
            f"cannot save a figure as '{path}': name it with one of the suffixes "
            f"{', '.join('.' + f for f in FORMATS)}"
        )
    if path.is_dir():
        raise TorchgdError(f"cannot save a figure as '{path}': it is a directory")
    if not path.parent.is_dir():
        raise TorchgdError(
            f"cannot save a figure as '{path}': directory '{path.parent}' does not exist"
        )
    return path


def _done(fig: Figure, path) -> Figure:
    if path is not None:
        path = Path(path)
        buf = io.BytesIO()  # drawn whole first: Ctrl-C or a full disk leaves no torn file
        fig.savefig(buf, dpi=DPI, format=path.suffix.lstrip(".").lower())
        try:
            write_atomic(path, buf.getvalue())
        except OSError as exc:
            raise TorchgdError(f"cannot save a figure as '{path}': {exc.strerror or exc}") from None
    return fig


def _summary(run) -> dict:
    return run.to_json() if hasattr(run, "to_json") else run


def num(v, spec: str = "g") -> str:
    """A number as a person writes it: 1.0 -> 1, 0.0001 -> 0.0001, 1e-08 -> 1e-08."""
    return "nan" if v is None else format(v, spec)


def point(values: dict, spec: str = "g") -> str:
    """``{'x': -3.0, 'y': 0.0}`` as ``x=-3, y=0``; a list of weights as ``w=[1, 1]``."""

    def one(v):
        return f"[{', '.join(num(u, spec) for u in v)}]" if isinstance(v, list) else num(v, spec)

    return ", ".join(f"{k}={one(v)}" for k, v in values.items())


def describe(summary: dict, lr: str | None = None) -> str:
    """A run's settings in words, for a title: ``lecture data, batch, lr=0.01, 100 epochs``
    (``lr``: what to say instead of ``lr=...``)."""
    cfg = summary["config"]
    parts = []
    if cfg.get("data") is not None:
        data = str(cfg["data"])
        parts.append(f"{Path(data).name if '/' in data else data} data")
        parts.append(cfg["batching"] + (" shuffled" if cfg.get("shuffle") else ""))
        if cfg.get("bias"):
            parts.append("with a bias")
    parts.append(lr or f"lr={num(cfg['lr'])}")
    parts += rules.words(cfg, num, sep="=")
    if cfg.get("noise"):
        parts.append(f"gradient noise sigma={num(cfg['noise'])} (seed {cfg.get('seed', 0)})")
    unit = "epochs" if cfg.get("data") is not None else "steps"
    done, planned = summary.get("epochs", cfg["epochs"]), cfg["epochs"]
    if summary.get("status", "completed") == "completed" or done == planned:
        parts.append(f"{done} {unit}")
    else:
        parts.append(f"{summary['status']} after {done} of {planned} {unit}")
    if cfg.get("dtype", "float64") != "float64":
        parts.append(cfg["dtype"])
    return ", ".join(parts)


def _groups(summary: dict, key) -> list[list[str]]:
    """The paths, grouped where ``key(path)`` gives the same series bit for bit; path order."""
    groups: list[tuple[list, list[str]]] = []
    for p in summary["paths"]:
        series = key(p)
        for seen, names in groups:
            if seen == series:
                names.append(p)
                break
        else:
            groups.append((series, [p]))
    return [names for _, names in groups]


def smooth(values: list[float], beta: float = 0.9, log: bool = False) -> list[float]:
    """Exponential moving average with bias correction, the lecture's weighted mean of the loss:
    s_t = beta * s_(t-1) + (1 - beta) * loss_t, shown as s_t / (1 - beta^t).

    ``log``: averaged in log space, ``10 ** smooth(log10(loss))``, for a loss drawn on a log
    axis: a linear average there is ruled by the largest values (a loss between 1e-28 and 1e-4
    averages to about 1e-5, 24 decades above most of it)."""
    if log:
        return [10**s for s in smooth([math.log10(v) for v in values], beta)]
    out, s = [], 0.0
    for t, v in enumerate(values, start=1):
        s = beta * s + (1 - beta) * v
        out.append(s / (1 - beta**t))
    return out


def _drawable(v) -> bool:
    """A value a log axis can show: matplotlib's layout overflows near the float64 limit (a
    diverged lane's loss of 1e292 crashed tight_layout)."""
    return v is not None and math.isfinite(v) and abs(v) < 1e200


def _spans_decades(values) -> bool:
    positive = [v for v in values if _drawable(v) and v > 0]
    return bool(positive) and max(positive) / min(positive) > 100


def _iterates(summary: dict, path: str, name: str) -> list:
    start = summary["config"]["init"][name]
    return [start, *summary["paths"][path]["history"][name]]


def _floats(values) -> list[float]:
    return [math.nan if v is None else v for v in values]


def _same_as(groups: list[list[str]], p: str) -> str:
    """`` (same as manual)`` for a path identical to an earlier one, else nothing."""
    group = next(g for g in groups if p in g)
    return f" (same as {group[0]})" if group[0] != p else ""
