"""Datasets: the lecture's four points, the course's three, and (by spec) others.

A dataset holds CPU tensors of one floating dtype: float64 by default, or the run's dtype when
it is made for a run (``get(spec, dtype)``), so 100 million float32 samples never exist in
float64 too. ``fit`` moves them to the run's device once. ``x`` is 1-D for the lecture's
one-feature model ``y_hat = w * x``.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from .errors import TorchgdError


@dataclass(frozen=True)
class Dataset:
    """Samples ``x`` (shape [N] or [N, d]) and targets ``y``. A rank of a ``--distributed`` run
    may hold only rows ``offset`` to ``offset + len`` of a data set of ``total`` rows."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    meta: dict = field(default_factory=dict)
    offset: int = 0
    total: int | None = None

    def __len__(self) -> int:
        return self.x.shape[0]

    @property
    def n(self) -> int:
        """The whole data set's size (``len`` is what this process holds)."""
        return len(self) if self.total is None else self.total

    def to(self, device, dtype) -> Dataset:
        x, y = self.x.to(device, dtype), self.y.to(device, dtype)
        return Dataset(self.name, x, y, self.meta, self.offset, self.total)

    def rows(self, lo: int, hi: int) -> Dataset:
        """Only rows ``lo`` to ``hi`` (copies: the rest can be freed)."""
        x, y = (
            self.x[lo - self.offset : hi - self.offset],
            self.y[lo - self.offset : hi - self.offset],
        )
        return Dataset(self.name, x.clone(), y.clone(), self.meta, lo, self.n)


def _points(name: str, xs: list[float], ys: list[float]) -> Dataset:
    t = torch.tensor
    return Dataset(name, t(xs, dtype=torch.float64), t(ys, dtype=torch.float64))


def lecture() -> Dataset:
    """The lecture's data: x = [1, 2, 3, 4], y = [2, 4, 6, 8] (so the answer is w = 2)."""
    return _points("lecture", [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0])


def course() -> Dataset:
    """The course's original three points: x = [1, 2, 3], y = [2, 4, 6]."""
    return _points("course", [1.0, 2.0, 3.0], [2.0, 4.0, 6.0])


BUILTIN = {"lecture": lecture, "course": course}
SUFFIXES = (".csv", ".txt", ".npy", ".npz", ".pt", ".pth")


def get(spec: str, dtype=torch.float64, rows=None) -> Dataset:
    """A dataset: ``lecture``, ``course``, ``synthetic:N[,d=D,noise=S,seed=K,bias=B]``, or a
    file (CSV, .npy, .npz, .pt), held in ``dtype``. ``rows``: a function of N giving the rows
    ``(lo, hi)`` to keep (a rank of a ``--distributed`` run); synthetic data then never holds
    the others, a file is read whole and cut."""
    if spec.startswith("synthetic:"):
        return synthetic_from_spec(spec, dtype, rows)
    if spec in BUILTIN:
        ds = BUILTIN[spec]().to("cpu", dtype)
    elif spec.lower().endswith(SUFFIXES) or "/" in spec or Path(spec).exists():
        ds = load(spec, dtype)
    else:
        raise TorchgdError(
            f"unknown data '{spec}': use lecture, course, synthetic:N or a .csv/.npy/.npz/.pt file"
        )
    return ds if rows is None else ds.rows(*rows(len(ds)))


SYNTHETIC_ROWS = 1 << 18  # rows drawn at a time: float64 scratch stays small for any N


def synthetic(
    n: int,
    d: int = 1,
    noise: float = 0.0,
    seed: int = 0,
    bias: float = 0.0,
    dtype=torch.float64,
    rows: tuple[int, int] | None = None,
) -> Dataset:
    """y = x @ w_true + bias + noise * N(0, 1), x ~ N(0, 1); w_true ~ U(-2, 2), all seeded.

    Drawn in float64, ``SYNTHETIC_ROWS`` rows at a time, and stored in ``dtype``: the float32
    data are the float64 data rounded, whatever N. ``meta`` records the true weights. d = 1
    gives the lecture's 1-D ``x``. ``rows=(lo, hi)``: hold only those rows (every row is still
    drawn, so they are the same rows, but the others are never stored)."""
    lo, hi = rows if rows is not None else (0, n)
    g = torch.Generator().manual_seed(seed)
    w_true = torch.rand(d, generator=g, dtype=torch.float64) * 4 - 2
    x = torch.empty((hi - lo,) if d == 1 else (hi - lo, d), dtype=dtype)
    y = torch.empty(hi - lo, dtype=dtype)
    for a in range(0, n, SYNTHETIC_ROWS):
        m = min(SYNTHETIC_ROWS, n - a)
        xc = torch.randn(m, d, generator=g, dtype=torch.float64)
        yc = xc @ w_true + bias
        if noise:
            yc += noise * torch.randn(m, generator=g, dtype=torch.float64)
        i, j = max(a, lo), min(a + m, hi)  # the rows of this block that are kept
        if i < j:
            x[i - lo : j - lo] = xc[i - a : j - a, 0] if d == 1 else xc[i - a : j - a]
            y[i - lo : j - lo] = yc[i - a : j - a]
    meta = {"true_w": w_true.tolist(), "true_b": bias, "noise": noise, "seed": seed, "n": n, "d": d}
    return Dataset(f"synthetic:{n}", x, y, meta, lo, None if rows is None else n)


def synthetic_from_spec(spec: str, dtype=torch.float64, rows=None) -> Dataset:
    body = spec.partition(":")[2]
    parts = body.split(",")
    kinds = {"d": int, "noise": float, "seed": int, "bias": float}
    try:
        n = int(parts[0])
        kw = {}
        for part in parts[1:]:
            key, eq, value = part.partition("=")
            if key not in kinds or not eq:
                raise ValueError(f"unknown option '{part}'")
            kw[key] = kinds[key](value)
    except ValueError as exc:
        raise TorchgdError(
            f"bad data '{spec}': use synthetic:N[,d=D,noise=S,seed=K,bias=B] ({exc})"
        ) from None
    if n < 1 or kw.get("d", 1) < 1:
        raise TorchgdError(f"bad data '{spec}': N and d must be >= 1")
    if not math.isfinite(kw.get("noise", 0.0)) or kw.get("noise", 0.0) < 0:
        raise TorchgdError(f"bad data '{spec}': noise must be a finite number >= 0")
    ds = synthetic(n, **kw, dtype=dtype, rows=None if rows is None else rows(n))
    # the name is the spec: it rebuilds the data
    return Dataset(spec, ds.x, ds.y, ds.meta, ds.offset, ds.total)


def _check(path: str, x: torch.Tensor, y: torch.Tensor, dtype=torch.float64) -> Dataset:
    if x.shape[0] == 0:
        raise TorchgdError(f"data file '{path}' holds no samples")
    if x.dim() not in (1, 2) or y.dim() != 1:
        raise TorchgdError(
            f"data file '{path}': x must be 1-D or 2-D and y 1-D, got shapes "
            f"{tuple(x.shape)} and {tuple(y.shape)}"
        )
    if x.shape[0] != y.shape[0]:
        raise TorchgdError(f"data file '{path}': x has {x.shape[0]} samples but y has {y.shape[0]}")
    for name, t in (("x", x), ("y", y)):
        bad = (~torch.isfinite(t)).nonzero()
        if len(bad):
            where = bad[0].tolist()
            col = f", column {where[1] + 1}" if len(where) > 1 else ""
            raise TorchgdError(
                f"data file '{path}': {name} has a NaN or infinite value at sample "
                f"{where[0] + 1}{col}"
            )
    if x.dim() == 2 and x.shape[1] == 1:
        x = x[:, 0]
    narrowing = any(torch.finfo(t.dtype).max > torch.finfo(dtype).max for t in (x, y))
    x, y = x.to(dtype).contiguous(), y.to(dtype).contiguous()
    if narrowing and not (torch.isfinite(x).all() and torch.isfinite(y).all()):
        raise TorchgdError(
            f"data file '{path}' has values too large for {str(dtype).removeprefix('torch.')}"
        )
    return Dataset(str(path), x, y, {"file": os.path.abspath(path)})  # found again from anywhere


def _numeric(path: str, name: str, a) -> torch.Tensor:
    """The array as a tensor; float arrays as they are (no float64 copy of float32 data)."""
    import numpy as np

    if not isinstance(a, np.ndarray) or a.dtype.kind not in "iuf":
        kind = getattr(a, "dtype", type(a).__name__)
        raise TorchgdError(f"data file '{path}': {name} must hold numbers, not {kind}")
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8):
        return torch.from_numpy(a)
    return torch.from_numpy(a.astype(np.float64))


def load(path: str, dtype=torch.float64) -> Dataset:
    """Read a data file, checking everything; every problem is one line naming file and place."""
    p = Path(path)
    if p.is_dir():
        raise TorchgdError(f"data file '{path}' is a directory: give a file in it")
    if not p.is_file():
        raise TorchgdError(f"data file '{path}' does not exist")
    suffix = p.suffix.lower()
    try:
        if suffix in (".csv", ".txt"):
            return _csv(path, p.read_text(encoding="utf-8"), dtype)
        if suffix in (".npy", ".npz"):
            return _numpy(path, p, suffix, dtype)
        if suffix in (".pt", ".pth"):
            return _torch_file(path, p, dtype)
    except UnicodeDecodeError:
        raise TorchgdError(f"data file '{path}' is not UTF-8 text") from None
    except OSError as exc:
        raise TorchgdError(f"cannot read data file '{path}': {exc.strerror or exc}") from None
    raise TorchgdError(f"data file '{path}': unknown type '{suffix}' (use .csv .npy .npz .pt)")


def _csv(path: str, text: str, dtype=torch.float64) -> Dataset:
    import csv

    rows, header_seen, width = [], False, None
    for lineno, row in enumerate(csv.reader(text.splitlines()), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        try:
            values = [float(c) for c in row]
        except ValueError:
            if not rows and not header_seen and width is None:
                header_seen, width = True, len(row)  # the first line may be a header
                continue
            col = next(i for i, c in enumerate(row) if not _is_float(c))
            raise TorchgdError(
                f"data file '{path}', line {lineno}, column {col + 1}: "
                f"'{row[col].strip()}' is not a number"
            ) from None
        if width is None:
            width = len(row)
        if len(row) != width:
            raise TorchgdError(
                f"data file '{path}', line {lineno}: {len(row)} columns where the others "
                f"have {width}"
            )
        for col, v in enumerate(values):
            if not math.isfinite(v):
                raise TorchgdError(
                    f"data file '{path}', line {lineno}, column {col + 1}: "
                    f"{row[col].strip()} is not a finite number"
                )
        rows.append(values)
    if not rows:
        raise TorchgdError(f"data file '{path}' holds no data rows")
    if width < 2:
        raise TorchgdError(
            f"data file '{path}': need at least two columns (features, then y), got {width}"
        )
    t = torch.tensor(rows, dtype=torch.float64)
    return _check(path, t[:, :-1], t[:, -1], dtype)


def _is_float(c: str) -> bool:
    try:
        float(c)
        return True
    except ValueError:
        return False


def _numpy(path: str, p: Path, suffix: str, dtype=torch.float64) -> Dataset:
    import numpy as np

    try:
        loaded = np.load(p, allow_pickle=False)
    except ValueError:  # not the format, or pickled objects (refused: allow_pickle=False)
        raise TorchgdError(
            f"data file '{path}' is not a valid {suffix} file of numbers (pickled objects are "
            "refused)"
        ) from None
    except Exception as exc:
        raise TorchgdError(f"data file '{path}' is not a valid {suffix} file") from exc
    if suffix == ".npy":
        a = _numeric(path, "the array", loaded)
        if a.dim() != 2 or a.shape[1] < 2:
            raise TorchgdError(
                f"data file '{path}': need a 2-D array with features then y as the last "
                f"column, got shape {tuple(a.shape)}"
            )
        return _check(path, a[:, :-1], a[:, -1], dtype)
    with loaded:
        missing = [k for k in ("x", "y") if k not in loaded.files]
        if missing:
            raise TorchgdError(
                f"data file '{path}' needs arrays named x and y (missing {', '.join(missing)}; "
                f"found {', '.join(loaded.files) or 'none'})"
            )
        x, y = _numeric(path, "x", loaded["x"]), _numeric(path, "y", loaded["y"])
        return _check(path, x, y, dtype)


def _torch_file(path: str, p: Path, dtype=torch.float64) -> Dataset:
    import warnings

    try:
        with warnings.catch_warnings():  # a refused file is our one-line error, nothing more
            warnings.simplefilter("ignore")
            obj = torch.load(p, map_location="cpu", weights_only=True)
    except Exception as exc:
        text = str(exc)
        if "Weights only load failed" in text:
            why = "it holds Python objects, not only tensors (loaded with weights_only=True)"
        elif "central directory" in text or "PytorchStreamReader" in text or "EOF" in text:
            why = "it is truncated or not a torch file"
        else:
            why = (text.strip().splitlines() or [type(exc).__name__])[0][:120]
        raise TorchgdError(f"data file '{path}' cannot be loaded safely: {why}") from None
    if not isinstance(obj, dict) or not {"x", "y"} <= set(obj):
        raise TorchgdError(f"data file '{path}' must hold a dict with tensors 'x' and 'y'")
    for k, v in obj.items():
        if not isinstance(v, torch.Tensor):
            raise TorchgdError(
                f"data file '{path}': '{k}' is a {type(v).__name__}; the file may hold only tensors"
            )
    for k in ("x", "y"):
        if obj[k].is_complex() or not (
            obj[k].is_floating_point()
            or obj[k].dtype in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8)
        ):
            raise TorchgdError(f"data file '{path}': {k} has dtype {obj[k].dtype}, not numbers")
    x, y = (obj[k] if obj[k].is_floating_point() else obj[k].double() for k in ("x", "y"))
    return _check(path, x, y, dtype)


def from_values(x, y, name: str = "custom") -> Dataset:
    """A dataset from two equally long sequences of numbers (x may be rows of features)."""
    try:
        xt, yt = torch.as_tensor(x, dtype=torch.float64), torch.as_tensor(y, dtype=torch.float64)
    except (TypeError, ValueError, RuntimeError):
        raise TorchgdError(
            "x and y must be numbers (lists, arrays or tensors of numbers)"
        ) from None
    if yt.dim() != 1:
        raise TorchgdError(f"y must be one number per sample (1-D), got shape {tuple(yt.shape)}")
    if xt.dim() not in (1, 2):
        raise TorchgdError(f"x must be 1-D or rows of features (2-D), got shape {tuple(xt.shape)}")
    if xt.shape[0] != yt.shape[0] or xt.shape[0] == 0:
        raise TorchgdError(
            f"x and y must be non-empty and equally long, got {len(xt)} and {len(yt)}"
        )
    if not (torch.isfinite(xt).all() and torch.isfinite(yt).all()):
        raise TorchgdError("x and y must be finite numbers")
    return Dataset(name, xt, yt)


def moments(x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """``[mean(x^2), mean(x*y), mean(y^2), mean(x), mean(y)]`` of one-feature data in float64,
    a million samples at a time: all that the cost ``cost(w) = w^2 mean(x^2) - 2w mean(xy) +
    mean(y^2)`` (and, with a bias b, ``+ 2wb mean(x) - 2b mean(y) + b^2``) needs, so a curve
    of 400 points on 100 million samples needs no 400 x N tensor (and the process that draws
    it no copy of the data)."""
    sums = torch.zeros(5, dtype=torch.float64)
    for xc, yc in zip(x.split(1 << 20), y.split(1 << 20)):
        xc, yc = xc.double(), yc.double()
        sums += torch.stack([xc @ xc, xc @ yc, yc @ yc, xc.sum(), yc.sum()])
    return (sums / len(x)).tolist()
