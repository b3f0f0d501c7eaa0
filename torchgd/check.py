"""``torchgd check``: is the hand-written gradient right?

At seeded random points in the problem's box plus its special points, compare

* the analytic formula with autograd (abs, rel, ulp): they must agree to rounding;
* central differences with the analytic formula (abs, rel): they must agree to the
  truncation and rounding error of the step h;

and run ``torch.autograd.gradcheck`` and ``gradgradcheck`` on the loss whose backward is the
formula. A formula that is wrong fails loudly, naming the parameter and the point.
"""

from __future__ import annotations

import torch

from . import compare, gradients, problems
from . import data as datasets
from .device import dtype_name, resolve_dtype
from .errors import TorchgdError

# analytic vs autograd: rounding only (the bound is 1e-12 in float64)
MAX_REL = {torch.float64: 1e-12, torch.float32: 1e-5}
# numerical vs analytic: |num - an| <= ATOL + RTOL * |an|; h = 1e-4 leaves a truncation error
# of h^2/24 * |f'''|, 1e-6 for rosenbrock at (1, 1) where f''' = 2400
NUM_TOL = {torch.float64: (1e-5, 1e-6), torch.float32: (1e-2, 1e-2)}


def _points(problem, n: int, seed: int, dtype, dataset=None) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    names = problem.param_names
    lo, hi = getattr(problem, "box", (-4.0, 4.0))
    start = problem.start_for(dataset) if hasattr(problem, "start_for") else problem.start
    shapes = {k: torch.as_tensor(v).shape for k, v in start.items()}
    pts = []
    for _ in range(n):
        pts.append(
            {
                k: (lo + (hi - lo) * torch.rand(shapes[k], generator=g, dtype=torch.float64))
                for k in names
            }
        )
    for special in getattr(problem, "special_points", ()):
        pts.append({k: torch.tensor(v, dtype=torch.float64) for k, v in zip(names, special)})
    if not getattr(problem, "special_points", ()):
        pts.append({k: torch.as_tensor(v, dtype=torch.float64) for k, v in start.items()})
    return [{k: v.to(dtype) for k, v in p.items()} for p in pts]


def _where(point: dict) -> str:
    return (
        "("
        + ", ".join(
            f"{k}={compare.flat({k: v}).tolist()[0] if v.dim() == 0 else v.tolist()}"
            for k, v in point.items()
        )
        + ")"
    )


def _gradchecks(problem, pts, x, y) -> tuple[bool, bool, str]:
    names = tuple(problem.param_names)
    x64 = None if x is None else x.double()
    y64 = None if y is None else y.double()

    def fn(*values):
        return gradients.AnalyticFunction.apply(problem, x64, y64, names, *values)

    message = ""
    results = []
    for check in (torch.autograd.gradcheck, torch.autograd.gradgradcheck):
        ok = True
        for p in pts[:4]:
            inputs = tuple(p[n].double().clone().requires_grad_(True) for n in names)
            try:
                ok = check(fn, inputs, raise_exception=True) and ok
            except Exception as exc:  # gradcheck's own GradcheckError, or a broken formula
                ok = False
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                message = message or f"{check.__name__} failed at {_where(p)}: {first}"
                break
        results.append(ok)
    return results[0], results[1], message


def check_gradients(
    problem="paraboloid",
    *,
    points: int = 16,
    seed: int = 0,
    h: float | str = 1e-4,
    dtype="float64",
    data="lecture",
) -> dict:
    """Compare analytic, autograd and numerical gradients; returns the report (``ok`` inside)."""
    problem = problems.get(problem) if isinstance(problem, str) else problem
    dtype = resolve_dtype(dtype)
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise TorchgdError(f"--points must be a whole number >= 0, got {points}")
    if h != "auto" and not (isinstance(h, float | int) and 0 < h < float("inf")):
        raise TorchgdError(f"--h must be a positive number or 'auto', got {h}")
    x = y = ds = None
    if problem.needs_data:
        ds = datasets.get(data) if isinstance(data, str) else data
        x, y = ds.x.to(dtype=dtype), ds.y.to(dtype=dtype)
    pts = _points(problem, points, seed, dtype, ds)
    labels = compare.labels_for(pts[0])
    A, B, N = [], [], []
    for p in pts:
        A.append(compare.flat(gradients.analytic(problem, p, x, y)))
        B.append(compare.flat(gradients.autograd(problem, p, x, y)[1]))
        N.append(compare.flat(gradients.numerical_params(problem, p, x, y, h)))
    A, B, N = torch.stack(A), torch.stack(B), torch.stack(N)
    steps = list(range(1, len(pts) + 1))
    ab = compare.pair_report(A, B, steps, steps, labels)
    na = compare.pair_report(N, A, steps, steps, labels)
    atol, rtol = NUM_TOL[dtype]
    num_bad = (N - A).abs() > atol + rtol * A.abs()
    gc, ggc, gc_message = _gradchecks(problem, pts, x, y)

    failures = []
    if ab["max_rel"] > MAX_REL[dtype]:
        at = ab["max_rel_at"]
        i = at["step"] - 1
        d = labels.index(at["param"])
        ratio = (A[:, d] / B[:, d])[B[:, d] != 0]
        hint = ""
        if len(ratio) and torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-9):
            hint = f"; the formula is {ratio[0].item():.6g} times autograd's at every point"
        failures.append(
            f"analytic d/d{at['param']} disagrees with autograd at {_where(pts[i])}: "
            f"formula gives {A[i, d].item()!r}, autograd {B[i, d].item()!r}, "
            f"central differences {N[i, d].item()!r}{hint}"
        )
    if bool(num_bad.any()):
        i, d = divmod(int(torch.nonzero(num_bad.reshape(-1))[0]), A.shape[1])
        failures.append(
            f"central differences (h={h}) disagree with the formula for d/d{labels[d]} at "
            f"{_where(pts[i])}: {N[i, d].item()!r} vs {A[i, d].item()!r}"
        )
    if not (gc and ggc):
        failures.append(gc_message or "gradcheck failed")

    def strip(r, keys):
        out = {}
        for k in keys:
            at = r[k]
            if k.endswith("_at") and at is not None:  # a check's "step" is a point
                at = {"point": at["step"], "param": at["param"], "at": _where(pts[at["step"] - 1])}
            out[k] = at
        return out

    return {
        "problem": problem.name,
        "points": len(pts),
        "dtype": dtype_name(dtype),
        "h": h,
        "analytic_vs_autograd": strip(ab, ("max_abs", "max_rel", "max_ulp", "max_rel_at")),
        "numerical_vs_analytic": strip(na, ("max_abs", "max_rel", "max_abs_at")),
        "tolerances": {
            "analytic_vs_autograd_max_rel": MAX_REL[dtype],
            "numerical_atol": atol,
            "numerical_rtol": rtol,
        },
        "gradcheck": gc,
        "gradgradcheck": ggc,
        "ok": not failures,
        "failures": failures,
    }


def format_report(r: dict) -> str:
    def n(v):
        return "0" if v == 0 else f"{v:.3g}"

    av, na = r["analytic_vs_autograd"], r["numerical_vs_analytic"]
    lines = [
        f"check {r['problem']}: {r['points']} points, {r['dtype']}, central differences h={r['h']}",
        f"  {'compared':<22}  {'max abs':>9}  {'max rel':>9}  {'max ulp':>7}",
        f"  {'analytic ~ autograd':<22}  {n(av['max_abs']):>9}  {n(av['max_rel']):>9}  "
        f"{av['max_ulp']:>7}",
        f"  {'numerical ~ analytic':<22}  {n(na['max_abs']):>9}  {n(na['max_rel']):>9}  {'-':>7}",
        f"  gradcheck: {'passed' if r['gradcheck'] else 'FAILED'}; "
        f"gradgradcheck: {'passed' if r['gradgradcheck'] else 'FAILED'}",
    ]
    lines += [f"  FAIL: {f}" for f in r["failures"]]
    lines.append("ok" if r["ok"] else "FAILED")
    return "\n".join(lines)
