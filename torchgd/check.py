"""``torchgd check``: is the hand-written gradient right?

At seeded random points in the problem's box plus its special points, compare

* the analytic formula with autograd (abs, rel, ulp): they must agree to rounding, judged
  against the problem's rounding bound (``grad_bound``: from the magnitudes of the summed
  terms, so a gradient that is nearly zero, at an optimum, is not a wrong formula), or, for a
  problem without one, to 1e-12 (float64) or 1e-5 (float32) of the largest gradient seen;
* central differences with the analytic formula (abs, rel): they must agree to the
  truncation and rounding error of the step h;
* each gradient as a training step computes it (float32, chunked sums) with the same
  gradient computed in float64 on the same data (the formula's with the formula, autograd's
  with autograd), judged against the same rounding bound: what the dtype and the chunks cost.

``train`` judges the same differences by the same bound, so the two never disagree. A wrong
formula fails at the point where its difference is furthest beyond rounding, and says how it
is wrong (a factor, a sign, a constant, a term that varies), and it runs
``torch.autograd.gradcheck`` and ``gradgradcheck`` on the loss whose backward is the formula.
"""

from __future__ import annotations

from types import SimpleNamespace

import torch

from . import compare, fused, gradients, memory, problems
from . import data as datasets
from .device import dtype_name, resolve_dtype
from .errors import TorchgdError
from .interfaces import optional

# without a rounding bound (a user's problem without grad_bound): a difference of this much of
# the largest |gradient| seen at any point, per parameter (a relative test alone fails every
# correct formula at an optimum, where the gradient is rounding noise)
MAX_REL = {torch.float64: 1e-12, torch.float32: 1e-5}
GRADCHECK_ROWS = 10_000
CLEARLY = 100  # a difference this many times the bound is the formula's, not rounding's
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


def _against_float64(problem, pts, x, y, got: dict, bounds) -> dict:
    """Each path's training-step gradients against the same gradient computed in float64 on
    the same data (the formula's with the formula, autograd's with autograd): what float32 and
    chunked sums cost. Each report gets ``over``, every difference in units of ``bounds``."""
    x64 = None if x is None else x.double()
    y64 = None if y is None else y.double()
    p64 = [{k: v.double() for k, v in p.items()} for p in pts]
    formula = torch.stack([compare.flat(gradients.analytic(problem, p, x64, y64)) for p in p64])
    steps = list(range(1, len(pts) + 1))
    labels = compare.labels_for(pts[0])
    out = {}
    for path, g in got.items():
        ref = formula
        if path == "autograd":
            ref = torch.stack(
                [compare.flat(gradients.autograd(problem, p, x64, y64)[1]) for p in p64]
            )
        rep = compare.pair_report(g.double(), ref, steps, steps, labels)
        rep["over"] = _in_bounds(g.double(), ref, bounds(ref))
        out[path] = rep
    return out


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
                text = " ".join(str(exc).split()) or type(exc).__name__  # every line, one line
                message = message or f"{check.__name__} failed at {_where(p)}: {text}"
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
    from .planning import builtin_problem, try_problem

    if not builtin_problem(problem):
        try_problem(problem, pts[-1], ds)  # a user's problem: tried once, one line if broken
    try:
        report = _measure(problem, pts, x, y, h, dtype, compile)
    except TorchgdError:
        raise
    except Exception as exc:  # a user's formula that breaks at some point: one line
        from .errors import failure

        raise TorchgdError(f"problem '{problem.name}' raised {failure(exc)}") from exc
    return report


def _measure(problem, pts, x, y, h, dtype, compile) -> dict:
    """Every comparison of ``check_gradients`` at the points ``pts``; the report."""
    labels = compare.labels_for(pts[0])
    g = _gradients(problem, pts, x, y, h)
    bounded = g.BD is not None
    steps = list(range(1, len(pts) + 1))
    ab = compare.pair_report(g.A, g.B, steps, steps, labels)
    as_trained = {"manual": g.A, "autograd": g.B}
    kernel = fused.kernel_for(problem, pts[0], x, y) if compile else None
    if kernel is not None:
        as_trained["compiled"] = torch.stack(
            [compare.flat(step_gradients("manual", problem, p, x, y, kernel)[1]) for p in pts]
        )

    def bounds(ref):
        return g.BD + g.BD64 if bounded else _scale_bound(ref, dtype)

    trained = _against_float64(problem, pts, x, y, as_trained, bounds)
    na = compare.pair_report(g.N, g.A, steps, steps, labels)
    num_bad = _numerical_disagrees(g, h, dtype)
    gc, ggc, gc_message = _gradchecks(problem, pts, x, y)

    over = _in_bounds(g.A.double(), g.B.double(), g.BD if bounded else _scale_bound(g.B, dtype))
    failures = _formula_failures(g, over, bounded, labels, pts)
    if bool(num_bad.any()):
        i, d = divmod(int(torch.nonzero(num_bad.reshape(-1))[0]), g.A.shape[1])
        failures.append(
            f"central differences (h={h}) disagree with the formula for d/d{labels[d]} at "
            f"{_where(pts[i])}: {g.N[i, d].item()!r} vs {g.A[i, d].item()!r}"
        )
    if not (gc and ggc):
        failures.append(gc_message or "gradcheck failed")
    failures += _trained_failures(trained, pts)
    worst = float(over.max()) if len(over) else 0.0
    report = _report(problem, pts, dtype, h, ab, na, trained, worst, bounded, compile, kernel)
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
    (for the rounding of N); BD the rounding bound of A and B in the check's dtype and BD64 that
    of the same gradients in float64 (both None where the problem has no bound)."""
    A, B, N, F, BD, BD64 = [], [], [], [], [], []
    x64 = None if x is None else x.double()
    y64 = None if y is None else y.double()
    for p in pts:
        loss, grads = step_gradients("manual", problem, p, x, y)
        A.append(compare.flat(grads))
        F.append(loss.abs().max())
        B.append(compare.flat(step_gradients("autograd", problem, p, x, y)[1]))
        N.append(compare.flat(gradients.numerical_params(problem, p, x, y, h, loss=_loss_fn)))
        bound = problems.rounding_bound(problem, p, x, y)
        BD.append(None if bound is None else compare.flat(bound).double())
        p64 = {k: v.double() for k, v in p.items()}
        bound = problems.rounding_bound(problem, p64, x64, y64) if bound is not None else None
        BD64.append(None if bound is None else compare.flat(bound))
    bounded = all(b is not None for b in BD + BD64)
    return SimpleNamespace(
        A=torch.stack(A),
        B=torch.stack(B),
        N=torch.stack(N),
        F=F,
        BD=torch.stack(BD) if bounded else None,
        BD64=torch.stack(BD64) if bounded else None,
    )


def _numerical_disagrees(g, h, dtype) -> torch.Tensor:
    """Where central differences are further from the formula than truncation and rounding
    of the step h explain."""
    atol, rtol = NUM_TOL[dtype]
    eps = torch.finfo(dtype).eps
    step = eps ** (1 / 3) if h == "auto" else h
    rounding = 4 * eps * torch.stack(g.F).reshape(-1, 1) / step
    return (g.N - g.A).abs() > atol + rtol * g.A.abs() + rounding


def _scale_bound(ref: torch.Tensor, dtype) -> torch.Tensor:
    """Without a rounding bound: ``MAX_REL`` of the largest |gradient| of each parameter over
    all points (plus a subnormal), the same at every point."""
    info = torch.finfo(dtype)
    top = ref.double().abs().amax(0, keepdim=True) if len(ref) else ref.double()
    return (MAX_REL[dtype] * top + info.smallest_normal * info.eps).expand_as(ref)


def _in_bounds(got: torch.Tensor, ref: torch.Tensor, bound: torch.Tensor) -> torch.Tensor:
    """|got - ref| in units of ``bound`` (0 where they are equal, inf where not finite)."""
    over = (got - ref).abs() / bound
    return torch.where(got == ref, torch.zeros_like(over), over.nan_to_num(nan=float("inf")))


def _formula_failures(g, over, bounded, labels, pts) -> list[str]:
    """The formula against autograd beyond rounding (the bound, or ``_scale_bound``), named at
    the point and parameter where it is furthest beyond it, with how it is wrong."""
    if not bool((over > 1).any()):
        return []
    A, B, N = g.A, g.B, g.N
    i, d = divmod(int(over.reshape(-1).argmax()), A.shape[1])
    bound = (g.BD if bounded else _scale_bound(B, A.dtype))[i, d].item()
    return [
        f"analytic d/d{labels[d]} disagrees with autograd at {_where(pts[i])}: "
        f"formula gives {A[i, d].item()!r}, autograd {B[i, d].item()!r}, "
        f"central differences {N[i, d].item()!r}; {how_wrong(A[:, d], B[:, d], over[:, d], i)}; "
        f"{over[i, d].item():.3g} times the most rounding can explain ({bound:.3g})"
    ]


def how_wrong(a: torch.Tensor, b: torch.Tensor, over: torch.Tensor, i: int) -> str:
    """How the formula ``a`` differs from autograd's ``b`` over the points where the difference
    is clearly beyond rounding (``over`` > ``CLEARLY``): one factor, a flipped sign, one
    constant, or a difference that varies (a missing or wrong term); at point ``i`` otherwise."""
    real = over > CLEARLY
    a, b = a.double(), b.double()
    if int(real.sum()) >= 2 and bool((b[real] != 0).all()):
        ratio = a[real] / b[real]
        r0 = ratio.median().item()
        if (ratio - r0).abs().max().item() <= 0.01 * abs(r0 - 1):
            if abs(r0 + 1) <= 1e-6:
                return (
                    "the formula has the wrong sign (-1 times autograd's at every point where "
                    "they differ beyond rounding)"
                )
            return (
                f"the formula is {r0:.6g} times autograd's at every point where they differ "
                "beyond rounding"
            )
    if int(real.sum()) >= 2:
        diff = a[real] - b[real]
        c0 = diff.median().item()
        if (diff - c0).abs().max().item() <= 0.01 * abs(c0):
            return (
                f"the formula is autograd's plus a constant {c0:.6g} at every point where they "
                "differ beyond rounding (an extra or missing constant term)"
            )
        return (
            f"the formula minus autograd's is {(a[i] - b[i]).item():.6g} here and varies from "
            "point to point, not by one factor or one constant (a missing or wrong term)"
        )
    ratio = "" if b[i] == 0 else f", {(a[i] / b[i]).item():.6g} times autograd's"
    return f"the formula minus autograd's is {(a[i] - b[i]).item():.6g} here{ratio}"


def _trained_failures(trained: dict, pts) -> list[str]:
    """Each path's training-step gradient against its float64 self, beyond rounding."""
    failures = []
    for name, rep in trained.items():
        over = rep["over"]
        if bool((over > 1).any()):
            i, d = divmod(int(over.reshape(-1).argmax()), over.shape[1])
            failures.append(
                f"the {name} gradient as a training step computes it is {over[i, d].item():.3g} "
                f"times the most rounding can explain from the same gradient in float64 at "
                f"{_where(pts[i])} (d/d{compare.labels_for(pts[0])[d]})"
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


def _report(problem, pts, dtype, h, ab, na, trained, worst, bounded, compile, kernel) -> dict:
    """The report's measurements and tolerances (the verdict is added by the caller)."""
    scale = f"{MAX_REL[dtype]:g} of the largest |gradient| over the points (no grad_bound)"
    bound = "rounding bound from the summed terms (problem.grad_bound)" if bounded else scale
    return {
        "problem": problem.name,
        "points": len(pts),
        "dtype": dtype_name(dtype),
        "h": h,
        "analytic_vs_autograd": _strip(ab, ("max_abs", "max_rel", "max_ulp", "max_rel_at"), pts),
        "numerical_vs_analytic": _strip(na, ("max_abs", "max_rel", "max_abs_at"), pts),
        "as_trained_vs_float64": {
            name: {
                **_strip(rep, ("max_abs", "max_rel", "max_rel_at"), pts),
                "of_bound": float(rep["over"].max()) if rep["over"].numel() else 0.0,
            }
            for name, rep in trained.items()
        },
        "analytic_vs_autograd_of_bound": worst,
        "tolerances": {
            "analytic_vs_autograd": bound,
            "as_trained_vs_float64": bound + ", float64's added",
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
        f"  {'compared':<23}  {'max abs':>9}  {'max rel':>9}  {'max ulp':>7}  {'of bound':>8}",
        f"  {'analytic ~ autograd':<23}  {n(av['max_abs']):>9}  {n(av['max_rel']):>9}  "
        f"{av['max_ulp']:>7}  {n(r['analytic_vs_autograd_of_bound']):>8}",
        f"  {'numerical ~ analytic':<23}  {n(na['max_abs']):>9}  {n(na['max_rel']):>9}  {'-':>7}"
        f"  {'-':>8}",
        *(
            f"  {name + ' step ~ float64':<23}  {n(rep['max_abs']):>9}  {n(rep['max_rel']):>9}  "
            f"{'-':>7}  {n(rep['of_bound']):>8}"
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
