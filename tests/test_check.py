"""Gradient checks: analytic vs autograd vs central differences, gradcheck, a wrong formula."""

import json

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchgd import check, gradients, problems

BUILTIN = list(problems.PROBLEMS)


@pytest.mark.parametrize("name", BUILTIN)
def test_every_builtin_problem_passes_check_in_float64(name):
    r = check.check_gradients(name)
    assert r["ok"], r["failures"]
    assert r["analytic_vs_autograd"]["max_rel"] <= 1e-12
    assert r["gradcheck"] is True and r["gradgradcheck"] is True
    assert r["points"] >= 17


def test_numerical_gradient_of_the_lectures_paraboloid_on_its_grid_in_one_call():
    x = torch.arange(-4, 4, 0.25, dtype=torch.float64)
    X, Y = torch.meshgrid(x, x, indexing="xy")
    assert X.numel() == 1024
    gx, gy = gradients.numerical(lambda a, b: a**2 + b**2, X, Y)  # one call, whole grid
    assert (gx - 2 * X).abs().max() <= 1e-6
    assert (gy - 2 * Y).abs().max() <= 1e-6


def test_numerical_gradient_matches_the_lectures_per_point_loop_bit_for_bit():
    def f(x, y):
        return x**2 + y**2

    def grad_x(x, y, h=1e-4):  # the lecture's code, per point, in Python floats
        return (f(x + h / 2, y) - f(x - h / 2, y)) / h

    pts = [(-4.0, 3.75), (0.25, -1.5), (2.0, 2.0)]
    X = torch.tensor([p[0] for p in pts], dtype=torch.float64)
    Y = torch.tensor([p[1] for p in pts], dtype=torch.float64)
    gx, _ = gradients.numerical(f, X, Y)
    assert gx.tolist() == [grad_x(x, y) for x, y in pts]


def test_auto_step_is_more_accurate_than_the_fixed_step_in_float32():
    p = problems.PROBLEMS["xcos"]
    x = torch.linspace(-12, 12, 201, dtype=torch.float32)
    exact = p.df(x.double())[0]
    fixed = gradients.numerical(p.f, x, h=1e-4)[0].double()
    auto = gradients.numerical(p.f, x, h="auto")[0].double()
    assert (auto - exact).abs().max() < (fixed - exact).abs().max() / 10


def wrong_problem():
    return problems.FunctionProblem(
        "wrong",
        ("x", "y"),
        f=lambda x, y: x**2 + y**2,
        df=lambda x, y: (x, y),
        start={"x": 1.0, "y": 1.0},
        description="f = x^2 + y^2 with the factor 2 forgotten",
    )


def test_a_formula_missing_the_factor_two_fails_and_says_where():
    r = check.check_gradients(wrong_problem())
    assert not r["ok"] and r["gradcheck"] is False
    first = r["failures"][0]
    assert first.startswith(("analytic d/dx disagrees", "analytic d/dy disagrees")), first
    assert " with autograd at (x=" in first
    assert "the formula is 0.5 times autograd's at every point" in first


def test_check_cli_on_a_wrong_formula_file_exits_1_and_says_where(cli, tmp_path):
    (tmp_path / "mine.py").write_text(
        "from torchgd.problems import FunctionProblem\n"
        "problem = FunctionProblem('mine', ('x', 'y'), f=lambda x, y: x**2 + y**2,\n"
        "    df=lambda x, y: (x, y), start={'x': 1.0, 'y': 1.0}, description='oops')\n"
    )
    proc = cli("check", "--problem", "mine.py:problem")
    assert proc.returncode == 1
    assert "disagrees with autograd at (x=" in proc.stdout and "FAIL: analytic d/d" in proc.stdout
    assert proc.stdout.strip().endswith("FAILED")


def test_a_problem_file_runs_once_per_process_until_it_changes(tmp_path):
    from torchgd import problems

    runs = tmp_path / "runs.txt"
    source = (
        f"open({str(runs)!r}, 'a').write('ran\\n')\n"
        "from torchgd.problems import FunctionProblem\n"
        "p = FunctionProblem('mine', ('x',), f=lambda x: x**2, df=lambda x: (2 * x,),\n"
        "    start={'x': 1.0}, description='{}')\n"
    )
    (tmp_path / "mine.py").write_text(source.replace("{}", "one"))
    spec = f"{tmp_path / 'mine.py'}:p"
    first, again = problems.get(spec), problems.get(spec)  # as --distributed's check, then plan
    assert first is again and runs.read_text() == "ran\n"
    (tmp_path / "mine.py").write_text(source.replace("{}", "edited"))
    assert problems.get(spec).description == "edited" and runs.read_text() == "ran\nran\n"


@pytest.mark.parametrize("name", ["paraboloid", "rosenbrock", "linear"])
def test_check_cli_json_reports_ok(cli, main_cli, name):
    # one through a real process, the others in this one
    proc = (cli if name == "paraboloid" else main_cli)("check", "--problem", name, "--json")
    assert proc.returncode == 0, proc.stderr
    r = json.loads(proc.stdout)
    assert r["ok"] is True and r["gradcheck"] is True and r["problem"] == name
    assert set(r) >= {"points", "analytic_vs_autograd", "numerical_vs_analytic"}
    assert r["analytic_vs_autograd"]["max_rel"] <= 1e-12


@pytest.mark.parametrize(
    "args,message",
    [
        (["--problem", "missing.py:p"], "does not exist"),
        (["--problem", "torchgd.problems:nothing"], "is not a problem"),
        (["--h", "tiny"], "--h must be a positive number"),
        (["--h", "-1"], "--h must be a positive number"),
    ],
)
def test_check_bad_input_is_one_line_exit_2(main_cli, args, message):
    proc = main_cli("check", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3000),
    st.integers(1, 4),
    st.sampled_from(["float32", "float64"]),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_the_cheap_lower_estimate_of_the_rounding_bound_never_exceeds_it(n, d, dtype, seed, bias):
    """train._bounds skips the bound's extra pass where |A - G| <= 2 (N+4) u |A|: valid only
    if that is never more than the bound itself, near the optimum (cancelling terms) too."""
    g = torch.Generator().manual_seed(seed)
    dt = getattr(torch, dtype)
    x = torch.randn(n, d, generator=g, dtype=torch.float64)
    w_true = torch.randn(d, generator=g, dtype=torch.float64)
    y = x @ w_true + 0.1 * torch.randn(n, generator=g, dtype=torch.float64)
    x, y = (x if d > 1 else x[:, 0]).to(dt), y.to(dt)
    lin = problems.Linear(bias=bias)
    scale = 10.0 ** torch.randint(-8, 1, (1,), generator=g).item()  # near the optimum, or not
    w = (w_true + scale * torch.randn(d, generator=g, dtype=torch.float64)).to(dt)
    params = {"w": w if d > 1 else w[0]}
    if bias:
        params["b"] = torch.tensor(0.05, dtype=dt)
    formula, bound = lin.grad(params, x, y), lin.grad_bound(params, x, y)
    k = (n + 4) * torch.finfo(dt).eps / 2
    for name in formula:
        low = 2 * k * formula[name].double().abs()
        assert (low <= bound[name].double()).all(), (name, low, bound[name])


# -- near an optimum: the claims issue (a right formula passes there, a wrong one fails elsewhere)


def _data_with_optimum_at_one(path):
    """One feature, noisy, whose least-squares optimum is exactly w = 1.0 (the start): y = x + e
    with integer noise e orthogonal to x (sum x_n e_n = 0 exactly)."""
    import numpy as np

    rng = np.random.default_rng(1)
    x = rng.integers(1, 30, 50).astype(float)
    e = rng.integers(-9, 10, 50).astype(float)
    x[-1] = 1.0
    e[-1] = -float(x[:-1] @ e[:-1])
    y = x + e
    assert float(x @ (x - y)) == 0.0 and float(x @ y) / float(x @ x) == 1.0  # w* = x.y / x.x
    path.write_text("x,y\n" + "".join(f"{a},{b}\n" for a, b in zip(x, y)))
    return path


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_right_formula_passes_at_the_least_squares_optimum_of_noisy_data(tmp_path, dtype):
    data = str(_data_with_optimum_at_one(tmp_path / "d.csv"))
    r = check.check_gradients("linear", data=data, dtype=dtype)
    assert r["ok"], r["failures"]
    # the gradient at the optimum is rounding noise: relative differences of 1 are expected there,
    # and every difference is within the rounding bound
    assert r["analytic_vs_autograd_of_bound"] <= 1
    for rep in r["as_trained_vs_float64"].values():
        assert rep["of_bound"] <= 1


def test_check_and_train_agree_on_the_same_gradient_at_the_optimum(tmp_path, main_cli):
    data = str(_data_with_optimum_at_one(tmp_path / "d.csv"))
    checked = main_cli("check", "--problem", "linear", "--data", data, "--json")
    trained = main_cli("train", "--data", data, "--epochs", "2", "--json", "--no-plots")
    assert checked.returncode == 0 and trained.returncode == 0, checked.stdout + trained.stderr
    agreement = json.loads(trained.stdout)["agreement"]
    assert "different formula" not in " ".join(agreement["reasons"])
    assert json.loads(checked.stdout)["ok"] is True


USER_LINEAR = """
import torch
from torchgd.problems import Linear


class FromOptimum:
    '''y_hat = x @ (w* + d) + (b* + c): three features and a bias, counted from the optimum.'''

    name = "from_optimum"
    param_names = ("d", "c")
    needs_data = True
    factor = FACTOR

    def __init__(self, w_star, b_star):
        self.w_star, self.b_star = w_star, b_star
        self.start = {"d": [0.0, 0.0, 0.0], "c": 0.0}
        self.lin = Linear(bias=True)

    def _params(self, p):
        return {"w": self.w_star.to(p["d"].dtype) + p["d"], "b": self.b_star + p["c"]}

    def loss(self, p, x, y):
        return self.lin.loss(self._params(p), x, y)

    def grad(self, p, x, y):
        g = self.lin.grad(self._params(p), x, y)
        return {"d": g["w"] * self.factor, "c": g["b"]}

    def grad_bound(self, p, x, y, n=None):
        b = self.lin.grad_bound(self._params(p), x, y, n)
        return {"d": b["w"], "c": b["b"]}
"""


def _user_linear(tmp_path, factor):
    """A user's own linear model with a bias on noisy three-feature data, its parameters counted
    from the optimum (numpy's least squares), its formula scaled by ``factor``."""
    import numpy as np

    rng = np.random.default_rng(7)
    x = rng.normal(size=(200, 3))
    y = x @ np.array([1.5, -2.0, 0.5]) + 0.3 + 0.5 * rng.normal(size=200)
    a = np.hstack([x, np.ones((200, 1))])
    sol = np.linalg.lstsq(a, y, rcond=None)[0]
    np.save(tmp_path / "d.npy", np.hstack([x, y[:, None]]))
    source = USER_LINEAR.replace("FACTOR", repr(factor))
    source += f"problem = FromOptimum(torch.tensor({sol[:3].tolist()!r}), {float(sol[3])!r})\n"
    (tmp_path / "mine.py").write_text(source)
    return f"{tmp_path / 'mine.py'}:problem", str(tmp_path / "d.npy")


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_users_right_formula_with_a_bound_passes_at_its_optimum(tmp_path, dtype):
    spec, data = _user_linear(tmp_path, 1.0)
    r = check.check_gradients(spec, data=data, dtype=dtype)
    assert r["ok"], r["failures"]
    assert r["analytic_vs_autograd_of_bound"] <= 1


def _wrong_linear(tmp_path, kind):
    (tmp_path / "wrong.py").write_text(
        "from torchgd.problems import Linear\n"
        "class Off(Linear):\n"
        "    def __init__(self, kind):\n"
        "        super().__init__()\n"
        "        self.kind, self.name = kind, 'off'\n"
        "    def grad(self, params, x, y):\n"
        "        g = super().grad(params, x, y)['w']\n"
        "        r = x * params['w'] - y\n"
        "        return {'w': {'slight': 1.001 * g, 'half': 0.5 * g, 'sign': -g,\n"
        "                      'constant': g + 0.25, 'term': (2 * r).sum() / len(y)}[self.kind]}\n"
        f"problem = Off({kind!r})\n"
    )
    return f"{tmp_path / 'wrong.py'}:problem"


@pytest.mark.parametrize(
    "kind,words",
    [
        ("slight", "the formula is 1.001 times autograd's at every point"),
        ("half", "the formula is 0.5 times autograd's at every point"),
        ("sign", "the formula has the wrong sign"),
        ("constant", "autograd's plus a constant 0.25 at every point"),
        ("term", "varies from point to point, not by one factor or one constant"),
    ],
)
def test_a_wrong_formula_fails_where_the_difference_is_real_and_says_how(tmp_path, kind, words):
    data = str(_data_with_optimum_at_one(tmp_path / "d.csv"))
    r = check.check_gradients(_wrong_linear(tmp_path, kind), data=data)
    assert not r["ok"]
    first = r["failures"][0]
    assert first.startswith("analytic d/dw disagrees with autograd at (w="), first
    assert words in first, first
    times = float(first.split("; ")[-1].split(" times the most rounding")[0])
    assert times > check.CLEARLY  # far beyond what rounding can do, and it says by how much
    if kind != "constant":  # a wrong factor or term is rounding noise at the optimum (w = 1)
        assert not any("(w=1.0)" in f for f in r["failures"]), r["failures"]


BROKEN = """
import torch
from torchgd.problems import FunctionProblem


def raises(x, y):
    raise ValueError("no gradient here")


grad_raises = FunctionProblem("g", ("x", "y"), f=lambda x, y: x**2 + y**2, df=raises,
                              start={"x": 1.0, "y": 1.0})
wrong_shape = FunctionProblem("s", ("x", "y"), f=lambda x, y: x**2 + y**2,
                              df=lambda x, y: (torch.stack([x, x]), 2 * y),
                              start={"x": 1.0, "y": 1.0})
loss_string = FunctionProblem("l", ("x", "y"), f=lambda x, y: "cost",
                              df=lambda x, y: (2 * x, 2 * y), start={"x": 1.0, "y": 1.0})
"""


@pytest.mark.parametrize(
    "name,words",
    [
        ("grad_raises", "its grad raised ValueError: no gradient here (broken.py:"),
        ("wrong_shape", "grad's x is shape (2,), the parameter has shape ()"),
        ("loss_string", "loss must return a tensor of one floating-point value"),
    ],
)
@pytest.mark.parametrize("command", ["check", "train"])
def test_a_broken_problem_file_is_one_line_exit_2_in_check_and_train(
    cli_once, tmp_path, name, words, command
):
    (tmp_path / "broken.py").write_text(BROKEN)
    proc = cli_once(command, "--problem", f"broken.py:{name}")
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
    assert words in proc.stderr, proc.stderr
    assert not (tmp_path / "runs").exists()  # nothing written


def test_a_gradcheck_failure_is_said_in_full_on_one_line():
    r = check.check_gradients(wrong_problem())
    message = next(f for f in r["failures"] if f.startswith("gradcheck failed"))
    assert "\n" not in message and not message.rstrip().endswith(",")
    assert "numerical:" in message and "analytical:" in message


def test_the_rounding_bound_of_a_huge_float32_batch_is_positive_and_counts_its_chunks():
    """gamma_(N+4) is negative past N u = 1 (N = 1e8 in float32 said "-3.5e-08 of the bound"):
    a chunked sum has at most a chunk's additions plus one per chunk."""
    lin = problems.Linear()
    x = torch.linspace(-1, 1, problems.CHUNK_ROWS, dtype=torch.float32)
    y = 2 * x
    params = {"w": torch.tensor(1.5, dtype=torch.float32)}
    n = 10**8
    assert problems.terms_summed(n) == problems.CHUNK_ROWS + 191 + 4
    assert problems.terms_summed(1000) == 1004  # one chunk: as before
    share = lin.grad_bound(params, x, y, n)["w"]
    assert torch.isfinite(share) and share > 0
    u = torch.finfo(torch.float32).eps / 2
    assert problems.terms_summed(n) * u < 0.05  # far from the 1 where gamma_k breaks down
