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
    assert first.startswith("analytic d/dx disagrees with autograd at (x=")
    assert "the formula is 0.5 times autograd's at every point" in first


def test_check_cli_on_a_wrong_formula_file_exits_1_and_says_where(cli, tmp_path):
    (tmp_path / "mine.py").write_text(
        "from torchgd.problems import FunctionProblem\n"
        "problem = FunctionProblem('mine', ('x', 'y'), f=lambda x, y: x**2 + y**2,\n"
        "    df=lambda x, y: (x, y), start={'x': 1.0, 'y': 1.0}, description='oops')\n"
    )
    proc = cli("check", "--problem", "mine.py:problem")
    assert proc.returncode == 1
    assert "FAIL: analytic d/dx disagrees with autograd at (x=" in proc.stdout
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
def test_check_bad_input_is_one_line_exit_2(cli, args, message):
    proc = cli("check", *args)
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
