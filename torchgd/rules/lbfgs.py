r"""L-BFGS (Liu & Nocedal, 1989), as ``torch.optim.LBFGS`` runs it: a quasi-Newton method that
keeps the last ``history_size`` pairs of steps and gradient changes and from them builds a
direction that approximates the inverse Hessian times the gradient. One step of a path is up to
``max_iter`` iterations on the same batch, each evaluating the loss and the gradient again
(stopping once ``max_eval`` evaluations are done: a test after each iteration, as torch's, so a
step may go past it; the report counts them).

All parameters are taken as one flat vector :math:`\theta` (torch's order). With gradient
:math:`g`, the pairs :math:`s_i = t_i d_i` (steps) and :math:`y_i = g_{i+1} - g_i` (gradient
changes) kept where :math:`y_i^T s_i > 10^{-10}`, :math:`\rho_i = 1 / y_i^T s_i`, one
iteration is::

    the first iteration ever:  d = -g,  t = min(1, 1 / ||g||_1) * lr
    else (the two-loop recursion):                                             t = lr
        q = -g
        for i = newest .. oldest:   a_i = rho_i s_i^T q;   q = q - a_i y_i
        r = H0 q,   H0 = y^T s / y^T y   (the newest pair)
        for i = oldest .. newest:   b = rho_i y_i^T r;     r = r + (a_i - b) s_i
        d = r
    stop if g^T d > -tolerance_change
    line_search_fn None:           theta = theta + t d, then evaluate again
    line_search_fn strong_wolfe:   t from a line search that meets the strong Wolfe
                                   conditions (cubic interpolation, c1 = 1e-4, c2 = 0.9)
    stop after max_iter iterations, max_eval evaluations, max|g| <= tolerance_grad,
    max|t d| <= tolerance_change, or |loss - last loss| < tolerance_change

Two spellings, which differ only in the two-loop recursion:

* ``textbook``: as written above, each product rounded on its own (``q - a_i * y_i``).
* ``torch-exact``: torch's operations, ``q.add_(y_i, alpha=-a_i)`` and
  ``r.add_(s_i, alpha=a_i - b)`` (one kernel that multiplies and adds); bit for bit.

The line search, the first step and the stopping tests are the same in both (torch's). The
state is the whole method's, not one per parameter (torch keeps it under the first parameter):
the report compares the parameters and counts the evaluations; a sweep (lanes of stacked
parameters) cannot run it, and each step needs the whole batch again (no gradient noise, no
torchrun).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ._base import Base, help_, invalid

NAME = "lbfgs"
TORCH_CLASS = "LBFGS"
STATE = ()  # the method's state is one flat history, not shaped like a parameter
FORMULAS: dict = {}
LANES = False  # every step reads the whole parameter vector
WHOLE = "dot products over all of it, and a line search"  # in the sweep's refusal
EVALUATES = True  # update() takes evaluate(): the loss and gradient again, on the same batch


def count(text) -> int:
    """An option that is a count (``--max-iter 20``)."""
    try:
        value = float(text)
        if value != int(value):
            raise ValueError
    except (ValueError, OverflowError):
        raise invalid(f"takes a whole number >= 1, got '{text}'") from None
    return int(value)


def count_or_none(text):
    """``--max-eval N`` or ``None`` (torch's default: max_iter * 5 // 4)."""
    return None if str(text).strip() == "None" else count(text)


def search(text):
    """``--line-search-fn strong_wolfe`` or ``None``."""
    text = str(text).strip()
    if text in ("None", "none"):
        return None
    if text != "strong_wolfe":
        raise invalid(f"only 'strong_wolfe' is supported as a line search, got '{text}'")
    return text


@dataclass(frozen=True)
class Hyper(Base):
    """Hyperparameters with ``torch.optim.LBFGS``'s defaults and checks (same words)."""

    lr: float = field(default=1.0, metadata=help_("learning rate: L-BFGS's step length", other=0.5))
    max_iter: int = field(
        default=20,
        metadata=help_("L-BFGS: iterations per step", metavar="N", parse=count, other=4),
    )
    max_eval: int | None = field(
        default=None,
        metadata=help_(
            "L-BFGS: a step's iterations stop once this many evaluations are done (checked "
            "after each; None: max_iter * 5 // 4)", metavar="N",
            parse=count_or_none, other=3,
        ),
    )  # fmt: skip
    tolerance_grad: float = field(
        default=1e-7, metadata=help_("L-BFGS: stop when max|grad| <= this", other=1e-3)
    )
    tolerance_change: float = field(
        default=1e-9,
        metadata=help_("L-BFGS: stop when the loss or the step changes less", other=1e-4),
    )
    history_size: int = field(
        default=100,
        metadata=help_("L-BFGS: pairs of steps kept", metavar="N", parse=count, other=2),
    )
    line_search_fn: str | None = field(
        default=None,
        metadata=help_(
            "L-BFGS: None or strong_wolfe", metavar="FN", parse=search, other="strong_wolfe"
        ),
    )

    def __post_init__(self):
        self.numbers("lr", "tolerance_grad", "tolerance_change")
        for name in ("max_iter", "history_size", "max_eval"):
            value = getattr(self, name)
            if value is None and name == "max_eval":
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise invalid(f"--{name.replace('_', '-')} takes a whole number >= 1, got {value}")
        object.__setattr__(self, "line_search_fn", search(self.line_search_fn))
        if not 0.0 <= self.lr:
            raise invalid(f"Invalid learning rate: {self.lr}")
        self.finite("lr", "tolerance_grad", "tolerance_change")

    def torch_kwargs(self) -> dict:
        """torch's keyword arguments, ``max_eval`` resolved as torch resolves it (so that a
        scheduler's update of ``param_groups`` does not put None back)."""
        return {**self.asdict(), "max_eval": self.evaluations}

    @property
    def evaluations(self) -> int:
        """torch's ``max_eval``: a step's iterations stop once it has made this many
        evaluations (a test after each iteration, so a step may go past it)."""
        return self.max_iter * 5 // 4 if self.max_eval is None else self.max_eval


def init(params: dict, hp: Hyper) -> dict:
    """Nothing yet: the history begins at the first step."""
    return {}


class Flat:
    """The parameters as one vector, as torch's LBFGS sees them (its ``_gather_flat_grad``,
    ``_add_grad``, ``_clone_param``, ``_set_param``)."""

    def __init__(self, params: dict):
        self.params = list(params.values())

    def cat(self, grads: dict):
        import torch

        return torch.cat([g.reshape(-1) for g in grads.values()], 0)

    def add_(self, t, d) -> None:
        """theta = theta + t d."""
        offset = 0
        for p in self.params:
            p.add_(d[offset : offset + p.numel()].view_as(p), alpha=t)
            offset += p.numel()

    def copy(self) -> list:
        import torch

        return [p.clone(memory_format=torch.contiguous_format) for p in self.params]

    def set_(self, values) -> None:
        for p, v in zip(self.params, values):
            p.copy_(v)


def update(params, grads, state, hp: Hyper, spelling="textbook", evaluate=None) -> None:
    """One L-BFGS step on ``params`` in place: up to ``max_iter`` iterations, each calling
    ``evaluate()`` (the loss and the gradients at the current parameters, on this step's
    batch). ``grads`` is not used: the step evaluates its own, as torch's ``step(closure)``."""
    import torch

    if evaluate is None:
        raise invalid("lbfgs evaluates the loss several times a step: update needs evaluate=")
    flat = Flat(params)
    st = state.setdefault(next(iter(params)), {})  # torch's: under the first parameter
    st.setdefault("func_evals", 0)
    st.setdefault("n_iter", 0)

    def f():
        loss, g = evaluate()
        return float(loss), flat.cat(g)

    with torch.no_grad():
        loss, g = f()
        st["func_evals"] += 1
        if g.abs().max() <= hp.tolerance_grad:
            return
        _iterate(flat, f, st, hp, loss, g, spelling)


def _iterate(flat, f, st, hp, loss, g, spelling) -> None:
    """torch's loop of iterations (its ``step`` after the first evaluation)."""
    two_loop = _torch_two_loop if spelling == "torch-exact" else _textbook_two_loop
    evals, n = 1, 0
    while n < hp.max_iter:
        n += 1
        st["n_iter"] += 1
        d = _direction(st, g, hp, two_loop)
        if st.get("prev_flat_grad") is None:
            st["prev_flat_grad"] = g.clone()
        else:
            st["prev_flat_grad"].copy_(g)
        st["prev_loss"] = loss
        t = min(1.0, 1.0 / g.abs().sum()) * hp.lr if st["n_iter"] == 1 else hp.lr
        gtd = g.dot(d)
        if gtd > -hp.tolerance_change:
            st["t"] = t
            break
        if hp.line_search_fn is not None:
            x0 = flat.copy()
            loss, g, t, more = strong_wolfe(
                lambda x, t, d: _at(flat, f, x, t, d), x0, t, d, loss, g, gtd,
                tolerance_change=1e-9, max_ls=hp.evaluations - evals,
            )  # fmt: skip
            flat.add_(t, d)
        else:
            flat.add_(t, d)
            more = 0
            if n != hp.max_iter:  # the last iteration's point is not evaluated (as torch)
                loss, g = f()
                more = 1
        st["t"] = t
        evals += more
        st["func_evals"] += more
        if _stop(st, hp, n, evals, g, d, t, loss):
            break


def _stop(st, hp, n, evals, g, d, t, loss) -> bool:
    return (
        n == hp.max_iter
        or evals >= hp.evaluations
        or bool(g.abs().max() <= hp.tolerance_grad)
        or bool(d.mul(t).abs().max() <= hp.tolerance_change)
        or abs(loss - st["prev_loss"]) < hp.tolerance_change
    )


def _at(flat, f, x, t, d):
    """The loss and gradient at x + t d (the parameters put back to x after)."""
    flat.add_(t, d)
    out = f()
    flat.set_(x)
    return out


def _direction(st, g, hp, two_loop):
    """The iteration's direction d; the history updated with the last step (torch's names:
    ``old_dirs`` the gradient changes y, ``old_stps`` the steps s, ``ro`` 1 / y^T s)."""
    if st["n_iter"] == 1:
        st.update(old_dirs=[], old_stps=[], ro=[], H_diag=1)
        st["d"] = g.neg()
        return st["d"]
    y = g.sub(st["prev_flat_grad"])
    s = st["d"].mul(st["t"])
    ys = y.dot(s)
    if ys > 1e-10:
        if len(st["old_dirs"]) == hp.history_size:
            for name in ("old_dirs", "old_stps", "ro"):
                st[name].pop(0)
        st["old_dirs"].append(y)
        st["old_stps"].append(s)
        st["ro"].append(1.0 / ys)
        st["H_diag"] = ys / y.dot(y)
    if "al" not in st:
        st["al"] = [None] * hp.history_size
    st["d"] = two_loop(g, st)
    return st["d"]


def _torch_two_loop(g, st):
    """torch's spelling: one buffer, ``add_`` with ``alpha``."""
    import torch

    ys, ss, ro, al = st["old_dirs"], st["old_stps"], st["ro"], st["al"]
    q = g.neg()
    for i in range(len(ys) - 1, -1, -1):
        al[i] = ss[i].dot(q) * ro[i]
        q.add_(ys[i], alpha=-al[i])
    r = torch.mul(q, st["H_diag"])
    for i in range(len(ys)):
        be_i = ys[i].dot(r) * ro[i]
        r.add_(ss[i], alpha=al[i] - be_i)
    return r


def _textbook_two_loop(g, st):
    """Nocedal & Wright's Algorithm 7.4, each product rounded on its own."""
    ys, ss, ro, al = st["old_dirs"], st["old_stps"], st["ro"], st["al"]
    q = -g
    for i in reversed(range(len(ys))):
        al[i] = ro[i] * ss[i].dot(q)
        q = q - al[i] * ys[i]
    r = st["H_diag"] * q
    for i in range(len(ys)):
        b = ro[i] * ys[i].dot(r)
        r = r + (al[i] - b) * ss[i]
    return r


# -- the strong Wolfe line search (More & Thuente's bracketing and zoom, as torch runs it) ------


def cubic_min(x1, f1, g1, x2, f2, g2, bounds=None):
    """The minimiser of the cubic through (x1, f1) and (x2, f2) with slopes g1 and g2, kept
    within ``bounds`` (default: between x1 and x2); their middle where the cubic has none."""
    lo, hi = bounds if bounds is not None else ((x1, x2) if x1 <= x2 else (x2, x1))
    d1 = g1 + g2 - 3 * (f1 - f2) / (x1 - x2)
    d2_square = d1**2 - g1 * g2
    if d2_square < 0:
        return (lo + hi) / 2.0
    d2 = d2_square.sqrt()
    if x1 <= x2:
        at = x2 - (x2 - x1) * ((g2 + d2 - d1) / (g2 - g1 + 2 * d2))
    else:
        at = x1 - (x1 - x2) * ((g1 + d2 - d1) / (g1 - g2 + 2 * d2))
    return min(max(at, lo), hi)


def strong_wolfe(phi, x, t, d, f, g, gtd, c1=1e-4, c2=0.9, tolerance_change=1e-9, max_ls=25):
    """A step length t along d from x meeting the strong Wolfe conditions::

        f(x + t d) <= f + c1 t g^T d        (sufficient decrease)
        |g(x + t d)^T d| <= -c2 g^T d      (curvature)

    ``phi(x, t, d)``: the loss and flat gradient at x + t d. Returns the loss, gradient and t
    found and the number of evaluations."""
    d_norm = d.abs().max()
    g = g.clone()
    f_new, g_new = phi(x, t, d)
    gtd_new = g_new.dot(d)
    evals = 1
    b = _Bracket([0, f, g, gtd])
    done = False
    while evals - 1 < max_ls:  # bracket an interval that holds a Wolfe point
        if f_new > (f + c1 * t * gtd) or (evals > 2 and f_new >= b.prev[1]):
            b.set(b.prev, [t, f_new, g_new.clone(), gtd_new])
            break
        if abs(gtd_new) <= -c2 * gtd:
            b.set([t, f_new, g_new, gtd_new])
            done = True
            break
        if gtd_new >= 0:
            b.set(b.prev, [t, f_new, g_new.clone(), gtd_new])
            break
        low, high = t + 0.01 * (t - b.prev[0]), t * 10
        t_was = t
        t = cubic_min(b.prev[0], b.prev[1], b.prev[3], t, f_new, gtd_new, bounds=(low, high))
        b.prev = [t_was, f_new, g_new.clone(), gtd_new]
        f_new, g_new = phi(x, t, d)
        gtd_new = g_new.dot(d)
        evals += 1
    if evals - 1 == max_ls:
        b.set([0, f, g, None], [t, f_new, g_new, None])
    evals = _zoom(phi, x, d, f, gtd, b, done, evals, max_ls, c1, c2, tolerance_change, d_norm)
    t, f_new, g_new, _ = b.points[b.low]
    return f_new, g_new, t, evals


class _Bracket:
    """The points (t, f, g, g^T d) that bracket the step, and the last point tried."""

    def __init__(self, prev):
        self.prev, self.points, self.low, self.high = prev, [], 0, 1

    def set(self, *points) -> None:
        self.points = [list(p) for p in points]
        self.order()

    def order(self) -> None:
        fs = [p[1] for p in self.points]
        self.low, self.high = (0, 1) if fs[0] <= fs[-1] else (1, 0)


def _zoom(phi, x, d, f, gtd, b, done, evals, max_ls, c1, c2, tolerance_change, d_norm) -> int:
    """Shrink the bracket until a point meets the strong Wolfe conditions (torch's zoom)."""
    insufficient = False
    pts = b.points
    while not done and evals - 1 < max_ls:
        if abs(pts[1][0] - pts[0][0]) * d_norm < tolerance_change:
            break
        t = cubic_min(*pts[0][:2], pts[0][3], *pts[1][:2], pts[1][3])
        ts = [pts[0][0], pts[1][0]]
        eps = 0.1 * (max(ts) - min(ts))
        if min(max(ts) - t, t - min(ts)) < eps:  # too close to an end
            if insufficient or t >= max(ts) or t <= min(ts):
                t = max(ts) - eps if abs(t - max(ts)) < abs(t - min(ts)) else min(ts) + eps
                insufficient = False
            else:
                insufficient = True
        else:
            insufficient = False
        f_new, g_new = phi(x, t, d)
        gtd_new = g_new.dot(d)
        evals += 1
        new = [t, f_new, g_new.clone(), gtd_new]
        if f_new > (f + c1 * t * gtd) or f_new >= pts[b.low][1]:
            pts[b.high] = new
            b.order()
        else:
            if abs(gtd_new) <= -c2 * gtd:
                done = True
            elif gtd_new * (pts[b.high][0] - pts[b.low][0]) >= 0:
                pts[b.high] = pts[b.low]
            pts[b.low] = new
    return evals


def explain_update(hp: Hyper, w, g) -> str:
    return (
        "the textbook's two-loop recursion rounds each product a_i * y_i and (a_i - b) * s_i "
        "before it adds it, where torch's add_(y, alpha=-a) multiplies and adds in one kernel "
        "(a fused multiply-add where the CPU has one); the directions start a few ulp apart, "
        "and L-BFGS amplifies that: the step length, the pairs kept and the line search's "
        "choices all follow the direction, so the paths part by far more than rounding"
    )


def explain_state(hp: Hyper) -> str:
    return "the history of steps and gradient changes is built from directions a few ulp apart"
