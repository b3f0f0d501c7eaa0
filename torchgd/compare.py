"""Distances between floating-point results, and agreement reports that say where and why.

``ulp_distance(a, b)`` counts the representable numbers between ``a`` and ``b`` (0 means
bit-identical up to the sign of zero). ``pair_report`` finds, over a whole run, the largest
absolute, relative and ulp difference between two series and the step and parameter where each
occurred, plus the first step where they differed at all; ``merge_reports`` joins the reports
of consecutive stretches of a run (so a long run is compared block by block).
"""

from __future__ import annotations

import struct

import torch

_INT = {
    torch.float64: torch.int64,
    torch.float32: torch.int32,
    torch.float16: torch.int16,
    torch.bfloat16: torch.int16,
}
INT64_MAX = torch.iinfo(torch.int64).max


def _ordered(t: torch.Tensor) -> torch.Tensor:
    """Map floats to integers in the same order, adjacent floats to adjacent integers."""
    bits = t.contiguous().view(_INT[t.dtype]).to(torch.int64)
    width = torch.finfo(t.dtype).bits
    magnitude = bits & ((1 << (width - 1)) - 1)
    return torch.where(bits < 0, -magnitude, magnitude)


def ulp_distance(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Elementwise number of ulps between ``a`` and ``b`` (same dtype), as int64.

    +0.0 and -0.0 are 0 apart; a NaN against a number is INT64_MAX apart, two NaNs are 0 apart.
    """
    if a.dtype != b.dtype:
        raise TypeError(f"ulp_distance needs one dtype, got {a.dtype} and {b.dtype}")
    oa, ob = _ordered(a), _ordered(b)
    same_sign = (oa >= 0) == (ob >= 0)
    d_same = (oa - ob).abs()
    # opposite signs: |oa| + |ob| may overflow int64; saturate instead
    room = INT64_MAX - ob.abs()
    d_cross = torch.where(oa.abs() > room, torch.full_like(oa, INT64_MAX), oa.abs() + ob.abs())
    d = torch.where(same_sign, d_same, d_cross)
    na, nb = torch.isnan(a), torch.isnan(b)
    d = torch.where(na | nb, torch.full_like(d, INT64_MAX), d)
    return torch.where(na & nb, torch.zeros_like(d), d)


def _at(index: int, width: int, steps: list[int], epochs: list[int], labels: list[str]) -> dict:
    t, d = divmod(index, width)
    return {"step": steps[t], "epoch": epochs[t], "param": labels[d]}


def pair_report(
    a: torch.Tensor, b: torch.Tensor, steps: list[int], epochs: list[int], labels: list[str]
) -> dict:
    """Compare two series of shape ``[T, D]`` (T steps, D parameter entries)."""
    absd = torch.nan_to_num((a - b).abs(), nan=float("inf"))
    scale = torch.maximum(a.abs(), b.abs())
    rel = torch.where(scale > 0, absd / scale, torch.zeros_like(absd))
    rel = torch.where(absd > 0, rel, torch.zeros_like(rel))
    ulp = ulp_distance(a, b)
    width = a.shape[1]
    report = {}
    for key, values in (("abs", absd), ("rel", rel), ("ulp", ulp)):
        flat = values.reshape(-1)
        i = int(torch.argmax(flat))
        peak = flat[i].item()
        report[f"max_{key}"] = peak
        report[f"max_{key}_at"] = _at(i, width, steps, epochs, labels) if peak > 0 else None
    differs = (ulp > 0).reshape(-1).nonzero()
    report["first_difference"] = (
        _at(int(differs[0]), width, steps, epochs, labels) if len(differs) else None
    )
    return report


def greater(a, b) -> bool:
    """a > b, with NaN above every number (as ``argmax`` ranks it; the first NaN stays)."""
    return (a != a and b == b) or a > b


def merge_reports(old: dict | None, new: dict) -> dict:
    """The ``pair_report`` of two consecutive stretches of a run, from theirs (``new`` follows
    ``old``): the same report as over the whole, as the earlier of equal maxima is kept."""
    if old is None:
        return new
    out = dict(old)
    for key in ("max_abs", "max_rel", "max_ulp"):
        if greater(new[key], old[key]):
            out[key], out[f"{key}_at"] = new[key], new[f"{key}_at"]
    if out["first_difference"] is None:
        out["first_difference"] = new["first_difference"]
    return out


def labels_for(params: dict) -> list[str]:
    """Names of the flattened parameter entries: ``w`` for a scalar, ``w[0]``, ``w[1]``... else."""
    out = []
    for name, t in params.items():
        out += [name] if t.dim() == 0 else [f"{name}[{i}]" for i in range(t.numel())]
    return out


def flat(params: dict) -> torch.Tensor:
    return torch.cat([t.detach().reshape(-1) for t in params.values()])


_FORMATS = {"float64": ("<d", "<q", 63), "float32": ("<f", "<i", 31)}


def ulp_distance_floats(a: list, b: list, dtype: str = "float64") -> int:
    """The largest ulp distance between two lists of Python floats holding ``dtype`` values.

    The same measure as ``ulp_distance``, without tensors: cheap for a handful of values.
    """
    fmt, ifmt, bits = _FORMATS[dtype]
    mask = (1 << bits) - 1
    worst = 0
    for x, y in zip(a, b):
        if x != x or y != y:  # NaN
            if (x != x) != (y != y):
                return int(INT64_MAX)
            continue
        ix = struct.unpack(ifmt, struct.pack(fmt, x))[0]
        iy = struct.unpack(ifmt, struct.pack(fmt, y))[0]
        ox = ix if ix >= 0 else -(ix & mask)
        oy = iy if iy >= 0 else -(iy & mask)
        worst = max(worst, abs(ox - oy))
    return worst
