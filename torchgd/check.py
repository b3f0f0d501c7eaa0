"""``torchgd check``: is the hand-written gradient right?

At seeded random points in the problem's box plus its special points, compare

* the analytic formula with autograd (abs, rel, ulp): they must agree to rounding, judged
  against the problem's rounding bound (``grad_bound``: from the magnitudes of the summed
  terms, so a gradient that is nearly zero is not a wrong formula), or, for a problem without
  one, to a relative 1e-12 (float64) or 1e-5 (float32);
* central differences with the analytic formula (abs, rel): they must agree to the
  truncation and rounding error of the step h;

and run ``torch.autograd.gradcheck`` and ``gradgradcheck`` on the loss whose backward is the
formula. A formula that is wrong fails loudly, naming the parameter and the point.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from . import compare, fused, gradients, memory, problems
from . import data as datasets
from .device import dtype_name, resolve_dtype
from .errors import TorchgdError
from .interfaces import optional

# analytic vs autograd: rounding only (the bound is 1e-12 in float64)
MAX_REL = {torch.float64: 1e-12, torch.float32: 1e-5}
GRADCHECK_ROWS = 10_000
# the gradients a training step uses (chunked for big data) vs the formula in float64
MAX_REL_FLOAT64_REF = {torch.float64: 1e-12, torch.float32: 1e-5}
# numerical vs analytic: |num - an| <= ATOL + RTOL * |an| + 4 * eps * |f| / h. h = 1e-4 leaves
# a truncation error of h^2/24 * |f'''|, 1e-6 for rosenbrock at (1, 1) where f''' = 2400, and the
# two rounded values of f a rounding error of about 2 * eps * |f| / h (see torchgd.gradients)
NUM_TOL = {torch.float64: (1e-5, 1e-6), torch.float32: (1e-2, 1e-2)}


def _points(problem, n: int, seed: int, dtype, dataset=None) -> list[dict]:
    g = torch.Generator().manual_seed(seed)
    names = problem.param_names
    lo, hi = optional(problem, "box")
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
    for special in optional(problem, "special_points"):
        pts.append({k: torch.tensor(v, dtype=torch.float64) for k, v in zip(names, special)})
    if not optional(problem, "special_points"):
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


def step_gradients(path, problem, params: dict, x, y, fused=None) -> tuple:
    """The loss and gradient one training step of ``path`` computes at ``params``: the same
    code as ``train``, chunk by chunk when the batch is big (whole, through the compiled
    kernel ``fused``, for the manual path with ``--compile``)."""
    from .options import SGD
    from .paths import PATHS, feed

    runner = PATHS[path](problem, params, SGD(lr=1.0))  # never updated: any lr
    runner.fused = fused
    n = None if y is None else y.shape[-1]
    feed([runner], problem, x, y, n, problems.fits(problem, y))
    loss, grads = runner.gradients()
    return loss.detach(), {k: g.detach() for k, g in grads.items()}


def _loss_fn(problem, params, x, y):
    """The loss as a training step computes it (the manual path's, chunked for big data)."""
    return step_gradients("manual", problem, params, x, y)[0]


def _against_float64(problem, pts, x, y, got: dict) -> dict:
    """Each path's training-step gradients against the analytic formula in float64 on the same
    data: what float32 (and chunked sums) cost."""
    x64 = None if x is None else x.double()
    y64 = None if y is None else y.double()
    ref = torch.stack(
        [
            compare.flat(
                gradients.analytic(problem, {k: v.double() for k, v in p.items()}, x64, y64)
            )
            for p in pts
        ]
    )
    steps = list(range(1, len(pts) + 1))
    labels = compare.labels_for(pts[0])
    return {
        path: compare.pair_report(g.double(), ref, steps, steps, labels) for path, g in got.items()
    }


def _gradchecks(problem, pts, x, y) -> tuple[bool, bool, str]:
    """gradcheck and gradgradcheck of the formula, on the first ``GRADCHECK_ROWS`` samples (the
    formula is the same for every sample; the rest only cost time)."""
    names = tuple(problem.param_names)
    x64 = None if x is None else x[:GRADCHECK_ROWS].double()
    y64 = None if y is None else y[:GRADCHECK_ROWS].double()

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
    data=None,
    compile=False,
) -> dict:
    """Compare analytic, autograd and numerical gradients; returns the report (``ok`` inside).

    ``compile``: also the manual path's gradient from the kernel ``train --compile`` uses
    (``torchgd.fused``), against the formula in float64, for data bigger than one chunk."""
    problem = problems.get(problem) if isinstance(problem, str) else problem
    dtype = resolve_dtype(dtype)
    _check_arguments(problem, points, h, compile)
    x = y = ds = None
    if problem.needs_data:
        memory.keep_freed_memory()  # big data: reuse freed buffers (see torchgd.memory)
        data = "lecture" if data is None else data
        ds = datasets.get(data, dtype) if isinstance(data, str) else data
        x, y = ds.x.to(dtype=dtype), ds.y.to(dtype=dtype)
    elif data is not None:
        raise TorchgdError(f"problem '{problem.name}' takes no data; --data is for data problems")
    pts = _points(problem, points, seed, dtype, ds)
    labels = compare.labels_for(pts[0])
    g = _gradients(problem, pts, x, y, h)
    steps = list(range(1, len(pts) + 1))
    ab = compare.pair_report(g.A, g.B, steps, steps, labels)
    as_trained = {"manual": g.A, "autograd": g.B}
    kernel = fused.kernel_for(problem, pts[0], x, y) if compile else None
    if kernel is not None:
        as_trained["compiled"] = torch.stack(
            [compare.flat(step_gradients("manual", problem, p, x, y, kernel)[1]) for p in pts]
        )
    trained = _against_float64(problem, pts, x, y, as_trained)
    na = compare.pair_report(g.N, g.A, steps, steps, labels)
    num_bad = _numerical_disagrees(g, h, dtype)
    gc, ggc, gc_message = _gradchecks(problem, pts, x, y)

    over = _over_bound(g)
    worst = None if over is None else float(over.max())
    failures = _formula_failures(g, over, worst, ab, labels, pts, dtype)
    if bool(num_bad.any()):
        i, d = divmod(int(torch.nonzero(num_bad.reshape(-1))[0]), g.A.shape[1])
        failures.append(
            f"central differences (h={h}) disagree with the formula for d/d{labels[d]} at "
            f"{_where(pts[i])}: {g.N[i, d].item()!r} vs {g.A[i, d].item()!r}"
        )
    if not (gc and ggc):
        failures.append(gc_message or "gradcheck failed")
    failures += _trained_failures(trained, pts, dtype)
    report = _report(problem, pts, dtype, h, ab, na, trained, worst, compile, kernel)
    return {
        **report,
        "gradcheck": gc,
        "gradgradcheck": ggc,
        "ok": not failures,
        "failures": failures,
    }


def _check_arguments(problem, points, h, compile) -> None:
    if isinstance(points, bool) or not isinstance(points, int) or points < 0:
        raise TorchgdError(f"--points must be a whole number >= 0, got {points}")
    if h != "auto" and not (isinstance(h, float | int) and 0 < h < float("inf")):
        raise TorchgdError(f"--h must be a positive number or 'auto', got {h}")
    if compile:
        fused.check(problem)


def _gradients(problem, pts, x, y, h) -> SimpleNamespace:
    """Every gradient as a training step computes it (in chunks for big data), one row per
    point: A the formula (manual path), B autograd, N central differences; F each point's |loss|
    (for the rounding of N), BD the rounding bound of A (None where the problem has none)."""
    A, B, N, F, BD = [], [], [], [], []
    for p in pts:
        loss, grads = step_gradients("manual", problem, p, x, y)
        A.append(compare.flat(grads))
        F.append(loss.abs().max())
        B.append(compare.flat(step_gradients("autograd", problem, p, x, y)[1]))
        bound = problems.rounding_bound(problem, p, x, y)
        BD.append(None if bound is None else compare.flat(bound))
        N.append(compare.flat(gradients.numerical_params(problem, p, x, y, h, loss=_loss_fn)))
    return SimpleNamespace(A=torch.stack(A), B=torch.stack(B), N=torch.stack(N), F=F, BD=BD)


def _numerical_disagrees(g, h, dtype) -> torch.Tensor:
    """Where central differences are further from the formula than truncation and rounding
    of the step h explain."""
    atol, rtol = NUM_TOL[dtype]
    eps = torch.finfo(dtype).eps
    step = eps ** (1 / 3) if h == "auto" else h
    rounding = 4 * eps * torch.stack(g.F).reshape(-1, 1) / step
    return (g.N - g.A).abs() > atol + rtol * g.A.abs() + rounding


def _over_bound(g) -> torch.Tensor | None:
    """|formula - autograd| in units of the rounding bound of the summed terms (0 where they
    are equal), or None for a problem without a bound."""
    if not all(b is not None for b in g.BD):
        return None
    over = (g.A - g.B).abs() / torch.stack(g.BD)
    return torch.where(g.A == g.B, torch.zeros_like(over), over.nan_to_num(nan=float("inf")))


def _formula_failures(g, over, worst, ab, labels, pts, dtype) -> list[str]:
    """The formula against autograd: beyond the rounding bound (or, without one, beyond
    ``MAX_REL``), named at the worst point and parameter, with a hint when it is off by one
    factor everywhere."""
    bounded = over is not None
    if not ((bounded and worst > 1) or (not bounded and ab["max_rel"] > MAX_REL[dtype])):
        return []
    A, B, N = g.A, g.B, g.N
    if bounded:
        i, d = divmod(int(over.reshape(-1).argmax()), A.shape[1])
    else:
        at = ab["max_rel_at"]
        i, d = at["step"] - 1, labels.index(at["param"])
    ratio = (A[:, d] / B[:, d])[B[:, d] != 0]
    hint = ""
    if len(ratio) and torch.allclose(ratio, ratio[0].expand_as(ratio), rtol=1e-9):
        hint = f"; the formula is {ratio[0].item():.6g} times autograd's at every point"
    if bounded:
        hint += (
            f"; {over[i, d].item():.3g} times the most rounding can explain "
            f"({g.BD[i][d].item():.3g})"
        )
    return [
        f"analytic d/d{labels[d]} disagrees with autograd at {_where(pts[i])}: "
        f"formula gives {A[i, d].item()!r}, autograd {B[i, d].item()!r}, "
        f"central differences {N[i, d].item()!r}{hint}"
    ]


def _trained_failures(trained: dict, pts, dtype) -> list[str]:
    failures = []
    for name, rep in trained.items():
        if rep["max_rel"] > MAX_REL_FLOAT64_REF[dtype]:
            at = rep["max_rel_at"]
            failures.append(
                f"the {name} gradient is {rep['max_rel']:.3g} (relative) from the formula "
                f"in float64 at {_where(pts[at['step'] - 1])}, above the bound "
                f"{MAX_REL_FLOAT64_REF[dtype]:g}"
            )
    return failures


def _strip(r: dict, keys, pts) -> dict:
    """The ``keys`` of a pair report, a check's "step" shown as its point."""
    out = {}
    for k in keys:
        at = r[k]
        if k.endswith("_at") and at is not None:  # a check's "step" is a point
            at = {"point": at["step"], "param": at["param"], "at": _where(pts[at["step"] - 1])}
        out[k] = at
    return out


def _report(problem, pts, dtype, h, ab, na, trained, worst, compile, kernel) -> dict:
    """The report's measurements and tolerances (the verdict is added by the caller)."""
    return {
        "problem": problem.name,
        "points": len(pts),
        "dtype": dtype_name(dtype),
        "h": h,
        "analytic_vs_autograd": _strip(ab, ("max_abs", "max_rel", "max_ulp", "max_rel_at"), pts),
        "numerical_vs_analytic": _strip(na, ("max_abs", "max_rel", "max_abs_at"), pts),
        "as_trained_vs_float64": {
            name: _strip(rep, ("max_abs", "max_rel", "max_rel_at"), pts)
            for name, rep in trained.items()
        },
        "analytic_vs_autograd_of_bound": worst,
        "tolerances": {
            "analytic_vs_autograd": "rounding bound from the summed terms (problem.grad_bound)"
            if worst is not None
            else f"max rel {MAX_REL[dtype]:g}",
            "analytic_vs_autograd_max_rel": MAX_REL[dtype],
            "as_trained_vs_float64_max_rel": MAX_REL_FLOAT64_REF[dtype],
            "numerical_atol": NUM_TOL[dtype][0],
            "numerical_rtol": NUM_TOL[dtype][1],
            "numerical_rounding": "4 * eps * |f| / h",
        },
        "compiled": None if not compile else kernel is not None,
    }


def format_report(r: dict) -> str:
    def n(v):
        return "0" if v == 0 else f"{v:.3g}"

    av, na = r["analytic_vs_autograd"], r["numerical_vs_analytic"]
    lines = [
        f"check {r['problem']}: {r['points']} points, {r['dtype']}, central differences h={r['h']}",
        f"  {'compared':<23}  {'max abs':>9}  {'max rel':>9}  {'max ulp':>7}",
        f"  {'analytic ~ autograd':<23}  {n(av['max_abs']):>9}  {n(av['max_rel']):>9}  "
        f"{av['max_ulp']:>7}",
        f"  {'numerical ~ analytic':<23}  {n(na['max_abs']):>9}  {n(na['max_rel']):>9}  {'-':>7}",
        *(
            f"  {name + ' step ~ float64':<23}  {n(rep['max_abs']):>9}  {n(rep['max_rel']):>9}  "
            f"{'-':>7}"
            for name, rep in r["as_trained_vs_float64"].items()
        ),
        f"  gradcheck: {'passed' if r['gradcheck'] else 'FAILED'}; "
        f"gradgradcheck: {'passed' if r['gradgradcheck'] else 'FAILED'}",
    ]
    if r.get("compiled") is False:
        lines.append(f"  {fused.nothing_to_compile()}")
    lines += [f"  FAIL: {f}" for f in r["failures"]]
    lines.append("ok" if r["ok"] else "FAILED")
    return "\n".join(lines)
