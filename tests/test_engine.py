"""The engine: Run, its blocks on the device, the declared interfaces, rules as plug-ins."""

import json
from dataclasses import fields

import pytest
import torch

import torchgd
from torchgd import bench, interfaces, records, rules, runconfig, train
from torchgd.callbacks import Callback
from torchgd.errors import TorchgdError
from torchgd.planning import plan, plan_from_config
from torchgd.run import Run

NOISY = dict(data="synthetic:300,d=3,noise=0.5", batching="minibatch:32", shuffle=True, lr=0.05)


# -- no step waits for the device -------------------------------------------------------------

READS = ("item", "tolist", "numpy", "__bool__", "__float__", "__int__", "__index__")


@pytest.fixture
def reads_between_boundaries(monkeypatch):
    """Every read of a tensor's value made inside Run.step / Run.end_epoch but outside the
    loop's declared sync points (``records.sync_allowed``): on a GPU each would wait."""
    import torchgd.run as run_module

    state = {"in_step": 0, "allowed": 0}
    seen = []

    for name in READS:
        real = getattr(torch.Tensor, name)

        def read(self, *args, _real=real, _name=name, **kwargs):
            if state["in_step"] and not state["allowed"]:
                seen.append(_name)
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)

    real_allowed = records.sync_allowed

    class Allowed:
        def __init__(self, device):
            self.inner = real_allowed(device)

        def __enter__(self):
            state["allowed"] += 1
            return self.inner.__enter__()

        def __exit__(self, *exc):
            state["allowed"] -= 1
            return self.inner.__exit__(*exc)

    monkeypatch.setattr(run_module, "sync_allowed", Allowed)
    for method in ("step", "end_epoch"):
        real = getattr(Run, method)

        def wrapped(self, *args, _real=real, **kwargs):
            state["in_step"] += 1
            try:
                return _real(self, *args, **kwargs)
            finally:
                state["in_step"] -= 1

        monkeypatch.setattr(Run, method, wrapped)
    return seen


@pytest.mark.parametrize(
    "kw",
    [
        dict(batching="sgd", epochs=30),  # the lecture, all three paths
        dict(NOISY, epochs=4, momentum=0.9, weight_decay=0.01, dtype="float32"),  # shadow, bufs
        dict(problem="rosenbrock", lr=0.001, epochs=50),  # a function: bounds at fold time
    ],
    ids=["lecture sgd", "noisy minibatch momentum float32", "rosenbrock"],
)
def test_no_step_reads_a_value_from_the_device_outside_block_boundaries(
    reads_between_boundaries, kw
):
    explain_block = 16  # several blocks fold during the run
    import torchgd.explain as explain

    old, explain.BLOCK = explain.BLOCK, explain_block
    try:
        r = torchgd.fit(guard=False, **kw)
    finally:
        explain.BLOCK = old
    assert r.steps > explain_block and r.status == "completed"
    assert reads_between_boundaries == []


def test_the_guard_reads_the_device_once_per_epoch_inside_its_sync_point(
    reads_between_boundaries,
):
    r = torchgd.fit(batching="sgd", epochs=20)  # the guard on: its verdict is read per epoch
    assert r.status == "completed" and reads_between_boundaries == []


def test_a_block_is_written_as_one_row_per_step_and_read_back_in_path_order():
    p = plan(**NOISY, epochs=1, momentum=0.5)
    got = []

    class Blocks(Callback):
        def on_block(self, block):
            got.append(block)

    r = train.execute(p, [Blocks()])
    block = got[0]
    T, P, D = len(block), len(p.names), 3
    assert block.params.shape == (T, P, D) == block.grads.shape == block.bufs.shape
    assert block.formulas.shape == (T, 2, D) and block.losses.shape == (T, P)
    assert block.steps == list(range(1, T + 1))
    last = torch.tensor(r.paths["optim"]["params"]["w"], dtype=torch.float64)
    assert torch.equal(block.params[-1, 2], last)  # the last step's params are the result's


# -- Run ------------------------------------------------------------------------------------------


def test_a_run_resumed_from_its_state_dict_mid_epoch_ends_bit_for_bit_like_one_run():
    p = plan(**NOISY, epochs=3, momentum=0.9, dtype="float32")
    whole = train.execute(p)
    first = Run(p)
    first.start()
    stop_at = 5
    for j, batch in first.batches(1):
        first.step(1, j, batch)
        if j + 1 == stop_at:
            break
    state = first.state_dict(1, stop_at)
    assert state["position"] == {"step": stop_at, "epoch": 1, "batch": stop_at}
    resumed = train.execute(plan(**NOISY, epochs=3, momentum=0.9, dtype="float32"), resume=state)
    assert resumed.to_json()["paths"] == whole.to_json()["paths"]
    assert resumed.agreement == whole.agreement


def test_no_module_in_the_package_is_over_500_lines():
    """Small, flat modules: one that grows past 500 lines is split by what it does."""
    from pathlib import Path

    root = Path(torchgd.__file__).parent
    long = {
        str(f.relative_to(root)): n
        for f in root.rglob("*.py")
        if (n := len(f.read_text().splitlines())) > 500
    }
    assert long == {}


def test_every_function_in_the_package_fits_a_screen():
    """About 60 lines of code a function (its docstring not counted), the loop included."""
    import ast
    from pathlib import Path

    root = Path(torchgd.__file__).parent
    long = []
    for f in root.rglob("*.py"):
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                doc = node.body[0]
                if isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                    n -= doc.end_lineno - doc.lineno + 1
                if n > 60:
                    long.append(f"{f.relative_to(root)}:{node.name} ({n} lines)")
    assert long == []
    loop = train._loop
    assert loop.__code__.co_firstlineno  # the loop a student reads top to bottom:
    import inspect

    assert len(inspect.getsource(loop).splitlines()) <= 50


def imports_of_every_module() -> dict:
    """``{module: {torchgd modules it imports}}``, from the source: imports at the top and
    inside functions alike (a function-level import is a cycle put off, not avoided)."""
    import ast
    from pathlib import Path

    root = Path(torchgd.__file__).parent
    files = {}
    for f in root.rglob("*.py"):
        parts = ("torchgd", *f.relative_to(root).with_suffix("").parts)
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    graph = {}
    for name, f in files.items():
        package = name if f.name == "__init__.py" else name.rpartition(".")[0]
        found = set()
        for node in ast.walk(ast.parse(f.read_text())):
            if isinstance(node, ast.Import):
                found |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom):
                base = package
                for _ in range(node.level - 1):
                    base = base.rpartition(".")[0]
                module = (
                    node.module if not node.level else ".".join(filter(None, [base, node.module]))
                )
                found |= {f"{module}.{a.name}" if f"{module}.{a.name}" in files else module
                          for a in node.names}  # fmt: skip
        graph[name] = {m for m in found if m in files and m != name}
    return graph


def test_no_module_imports_itself_back_even_through_a_function():
    """The modules form layers: no import cycle, at the top of a file or inside a function
    (the loop imports nothing that draws; a figure that needs a run asks the loop for one)."""
    graph = imports_of_every_module()
    assert len(graph) > 60 and "torchgd.train" in graph["torchgd.fitting"]
    cycles = []
    for start in graph:  # a path from a module back to itself, found depth first
        stack, seen = [(start, [start])], set()
        while stack:
            at, path = stack.pop()
            for nxt in graph[at]:
                if nxt == start:
                    cycles.append(" -> ".join([*path, start]))
                elif nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*path, nxt]))
    assert cycles == []


# -- interfaces ---------------------------------------------------------------------------------

MINIMAL = '''
import torch

class Bowl:
    """f(a) = (a - 3)^2: name, param_names, start, loss, grad, and nothing else."""
    name = "bowl"
    param_names = ("a",)
    start = {"a": 0.0}

    def loss(self, params, x, y):
        return (params["a"] - 3) ** 2

    def grad(self, params, x, y):
        return {"a": 2 * (params["a"] - 3)}

P = Bowl()

class NoGrad:
    name = "nograd"
    param_names = ("a",)
    start = {"a": 0.0}

    def loss(self, params, x, y):
        return params["a"] ** 2

Q = NoGrad()
'''


@pytest.fixture
def minimal(tmp_path):
    f = tmp_path / "mine.py"
    f.write_text(MINIMAL)
    return f


@pytest.mark.parametrize(
    "command",
    [
        ["train", "--epochs", "30", "--lr", "0.1"],
        ["check"],
        ["sweep", "--lr", "0.01:0.5:4", "--epochs", "20"],
        ["plot", "trajectory", "--lr", "0.1", "--epochs", "10"],
    ],
    ids=lambda c: c[0],
)
def test_a_minimal_problem_works_in_every_command(main_cli, tmp_path, minimal, command):
    extra = ["--logdir", tmp_path / "runs"] if command[0] in ("train", "sweep") else []
    if command[0] == "plot":
        extra = ["--out", tmp_path / "fig.png"]
    proc = main_cli(*command, "--problem", f"{minimal}:P", *extra)
    assert proc.returncode in (0, 1), proc.stderr  # check: 1 only if a check failed
    assert "Traceback" not in proc.stderr
    if command[0] == "train":
        summary = json.loads(next((tmp_path / "runs").glob("*/summary.json")).read_text())
        assert abs(summary["paths"]["manual"]["params"]["a"] - 3) < 1e-2


def test_a_problem_missing_a_required_member_is_one_line_and_nothing_is_written(
    cli, tmp_path, minimal
):
    proc = cli("train", "--problem", f"{minimal}:Q", "--logdir", tmp_path / "runs")
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "grad" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_a_problem_object_is_checked_when_the_plan_is_made():
    class Half:
        name, param_names, start = "half", ("a",), {"a": 1.0}

        def loss(self, params, x, y):
            return params["a"] ** 2

    with pytest.raises(TorchgdError, match="lacks grad"):
        plan(Half())


def test_optional_problem_members_have_their_documented_defaults():
    class Bare:
        name, param_names, start = "bare", ("a",), {"a": 1.0}
        loss = grad = staticmethod(lambda params, x, y: None)

    p = interfaces.as_problem(Bare())
    assert p.needs_data is False and p.description == "bare"
    for member, default in interfaces.PROBLEM_DEFAULTS.items():
        if member not in ("f", "gradient_words"):  # functions made for the problem
            assert interfaces.optional(p, member) == default(p)
    assert p.f(torch.tensor([2.0, 3.0])) is None  # the loss at each point, as f(a)
    words = p.gradient_words([4], torch.float32, 3e-8)
    assert "through f (bare)" in words and "rounded to float32" in words


def test_a_problem_explains_its_own_gradient_in_the_report():
    """The agreement report asks the problem why its formula and autograd differ
    (``gradient_words``): the lecture's model says it in its terms, a user's problem in its
    own, any other gets the general words."""

    class Plain:  # a user's problem, as a file of theirs holds it
        name, param_names, start = "cube", ("x",), {"x": 1.3}

        def loss(self, p, x, y):
            return p["x"] ** 3 / 3 + p["x"] * p["x"].sin()

        def grad(self, p, x, y):
            return {"x": p["x"] ** 2 + p["x"].sin() + p["x"] * p["x"].cos()}

    class Cube(Plain):
        def gradient_words(self, batch_sizes, dtype, max_rel):
            return f"my cube's derivative x^2 against autograd's, {max_rel:.1g} apart"

    for problem, says in [(Cube(), "my cube's derivative"), (Plain(), "through f (cube)")]:
        r = torchgd.fit(problem, lr=0.01, epochs=30, dtype="float32", paths=("manual", "autograd"))
        why = [x["reason"] for x in r.agreement["reasons"] if x["kind"] == "gradient"]
        assert r.agreement["grad"]["max_ulp"] > 0 and says in why[-1], why
    linear = torchgd.fit(data="synthetic:120,d=3,noise=0.5,seed=3", bias=True,
                         batching="minibatch:7", epochs=2).agreement["reasons"]  # fmt: skip
    assert any("the formula sums 2*x_n*(x_n.w + b - y_n)" in x["reason"] for x in linear)


def test_a_callback_with_a_hook_that_cannot_be_called_is_refused_before_the_run():
    class Broken(Callback):
        on_epoch = 3

    with pytest.raises(TorchgdError, match="Broken.on_epoch is not callable"):
        torchgd.fit(epochs=2, callbacks=[Broken()])


def test_interfaces_are_protocols_that_the_real_parts_satisfy():
    from torchgd.callbacks.console import Console
    from torchgd.paths import PATHS

    p = plan()
    for cls in PATHS.values():
        assert isinstance(cls(p.problem, p.params0, p.hp), interfaces.Path)
    assert isinstance(p.problem, interfaces.Problem)
    assert isinstance(Console(p.problem, "manual", 1), interfaces.Callback)


# -- rules as plug-ins ---------------------------------------------------------------------------


def test_every_rule_module_declares_the_plug_in_interface():
    assert "sgd" in rules.ALL
    for name, module in rules.ALL.items():
        assert module.NAME == name
        assert hasattr(torch.optim, module.TORCH_CLASS)
        for member in rules.REQUIRED:
            assert hasattr(module, member)
        assert isinstance(module, interfaces.Rule)
        for f in fields(module.Hyper):
            assert f.metadata.get("help"), f"{name}.{f.name} has no help text"


def test_the_cli_options_and_config_keys_come_from_the_rules_fields(cli, tmp_path):
    text = " ".join(cli("train", "--help").stdout.split())
    top = " ".join(cli("--help").stdout.split())
    for name, module in rules.ALL.items():
        assert f" {module.TORCH_CLASS}" in top  # torchgd --help names every rule's class
        assert name in text  # --optimizer lists it
        hp = module.Hyper()
        for f in fields(module.Hyper):
            flag = "--" + f.name.replace("_", "-")
            assert flag in text
            if f.name != "lr":  # --lr has its own forms (one value, or a sweep's range)
                assert f"{flag} " in text and name in text
        # the config records every field, and plan_from_config rebuilds the same Hyper
        p = plan(optimizer=name, epochs=1)
        assert {f.name for f in fields(module.Hyper)} <= set(p.config)
        assert p.config["optimizer"] == name and plan_from_config(p.config).hp == hp
    assert runconfig.FIELDS["lr"].metadata["required"]  # config.json holds the lr


def test_an_unknown_rule_option_is_one_clear_error():
    with pytest.raises(TorchgdError, match="unknown argument 'momentom': did you mean 'momentum'"):
        torchgd.fit(momentom=0.9)
    with pytest.raises(TorchgdError, match="unknown argument 'epoch': did you mean 'epochs'"):
        torchgd.fit(epoch=10)
    having = ", ".join(n for n, m in rules.ALL.items() if "betas" in m.Hyper.__dataclass_fields__)
    assert having.startswith("adam, adamw, ")  # and every later rule that has them
    with pytest.raises(
        TorchgdError, match=rf"betas \(--betas\) is an option of {having}, not of sgd"
    ):
        torchgd.fit(betas=(0.9, 0.99))


@pytest.mark.parametrize(
    "bad",
    [
        dict(momentum=-1.0),
        dict(weight_decay=-1.0),
        dict(nesterov=True),
        dict(nesterov=True, momentum=0.9, dampening=0.5),
        dict(lr=-0.1),
    ],
)
def test_the_rule_refuses_what_torch_optim_refuses(bad):
    kw = {"lr": 0.1, **bad}
    with pytest.raises(ValueError):
        torch.optim.SGD([torch.zeros(1, requires_grad=True)], **kw)
    with pytest.raises(TorchgdError):
        rules.SGD(**kw)


# -- bench ----------------------------------------------------------------------------------------


def test_bench_json_reports_per_sample_sgd_against_bare_loops():
    r = bench.run(quick=True, only=("sgd",))["sgd"]
    names = {"manual", "autograd", "optim", "all"}
    assert set(r["bare"]) == set(r["torchgd"]) == set(r["ratio"]) == set(r["target"]) == names
    for name in names:
        assert r["ratio"][name] == pytest.approx(r["torchgd"][name] / r["bare"][name])
        assert r["bare"][name] > 0 and r["torchgd"][name] > 0
    combined = 1 / sum(1 / r["bare"][p] for p in ("manual", "autograd", "optim"))
    assert r["bare"]["all"] == pytest.approx(combined)


def test_the_bare_loops_compute_what_the_paths_compute():
    # each bare loop runs the lecture's SGD: its w must be the path's w, bit for bit
    ours = torchgd.fit(batching="sgd", epochs=7).paths
    for name, loop in bench.BARE.items():
        assert loop(7) == ours[name]["params"]["w"]


def test_a_callback_with_only_some_hooks_is_called_on_those():
    class OnlyStep:  # no base class, no on_start / on_end / close
        def __init__(self):
            self.steps = 0

        def on_step(self, step):
            self.steps += 1

    cb = OnlyStep()
    r = torchgd.fit(batching="sgd", epochs=3, callbacks=[cb])
    assert cb.steps == r.steps == 12


def test_the_bench_table_says_whether_each_target_was_met_on_the_unrounded_value():
    sgd = {
        "python_steps_per_s": 1000.0,
        "torchgd": {"manual": 497.0, "all": 700.0},
        "bare": {"manual": 1000.0, "all": 1000.0},
        "ratio": {"manual": 0.497, "all": 0.7},
        "target": {"manual": 0.5, "all": 0.6},
    }
    rows = bench.FORMATS["sgd"](sgd)
    assert "0.497 of it (target >= 0.5: MISSED)" in rows[1]
    assert "0.7 of it (target >= 0.6: met)" in rows[2]
    me = {"n": 10, "data_bytes": 2**20, "peak_bytes": 3 * 2**20, "base_bytes": 2**20,
          "ratio": 1.5, "target": 1.5}  # fmt: skip
    assert "1.5x the data (target < 1.5: MISSED)" in bench.FORMATS["memory"](me)[0]


def test_every_run_option_is_one_field_that_plan_config_json_and_the_cli_derive_from(
    monkeypatch, capsys, main_cli
):
    """plan's keywords, its docstring, config.json, plan_from_config and the command line's
    reader all come from torchgd.runconfig.RunConfig: a run option added there (here, by a
    test) is taken by plan, recorded, rebuilt and read from the command line, no other edit."""
    import argparse
    import dataclasses
    import inspect

    from torchgd.cli import build_parser

    sig = inspect.signature(torchgd.plan).parameters
    for name, f in runconfig.FIELDS.items():
        assert sig[name].default == f.default and sig[name].kind is sig[name].KEYWORD_ONLY
        assert f"``{name}``" in torchgd.plan.__doc__
    p = plan(batching="sgd", optimizer="adam", epochs=3, scheduler="step:step_size=2")
    recorded = {n for n, f in runconfig.FIELDS.items() if f.metadata["required"] is not None}
    assert recorded <= set(p.config)
    assert plan_from_config(p.config).config == p.config
    args = build_parser().parse_args(["train", "--no-guard", "--batching", "sgd"])
    read = runconfig.from_args(args, epochs=3)
    assert set(read) == set(runconfig.FIELDS) - {"hyper_at"}  # train takes every run option
    assert read["guard"] is False and read["batching"] == "sgd"

    extra = runconfig.option(7, "a new ``option``", required=False)
    switch = runconfig.option(False, "a new switch", required=False)
    tri = runconfig.option(None, "on, off or 100% unset", required=False)
    fields = [("extra", int, extra), ("switch", bool, switch), ("tri", bool | None, tri)]
    new = dataclasses.make_dataclass("RunConfig", fields, bases=(runconfig.RunConfig,),
                                     frozen=True)  # fmt: skip
    monkeypatch.setattr(runconfig, "RunConfig", new)
    monkeypatch.setattr(runconfig, "FIELDS", {f.name: f for f in dataclasses.fields(new)})
    q = plan(epochs=3, extra=11)
    assert q.config["extra"] == 11 and plan_from_config(q.config).config["extra"] == 11
    assert plan_from_config({**q.config, "extra": 5}).config["extra"] == 5
    assert runconfig.from_args(argparse.Namespace(extra=4))["extra"] == 4
    # and the command line has a flag for each, made from the field
    args = build_parser().parse_args(["train", "--extra", "4", "--switch"])
    read = runconfig.from_args(args, epochs=3)
    assert read["extra"] == 4 and read["switch"] is True
    assert build_parser().parse_args(["train"]).extra == 7
    with pytest.raises(SystemExit):
        build_parser().parse_args(["train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "--extra EXTRA a new option (default 7)" in shown
    assert "--switch, --no-switch a new switch (default off)" in shown
    assert "--tri, --no-tri on, off or 100% unset (default unset)" in shown
    assert build_parser().parse_args(["train", "--no-tri"]).tri is False
    run = main_cli("train", "--extra", "12", "--epochs", "2", "--no-plots", "--json")
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["config"]["extra"] == 12  # recorded in config.json too


def test_torchgd_plan_stays_the_function_after_a_run():
    """The module that holds plan() is torchgd.planning: a module torchgd.plan, imported by
    the first run, used to replace the function, so a script's torchgd.plan(...) after a
    torchgd.fit(...) said "'module' object is not callable"."""
    torchgd.fit(epochs=1)
    assert callable(torchgd.plan) and torchgd.plan(epochs=2).epochs == 2


@pytest.mark.parametrize(
    "option,value",
    [
        ("seed", "a"),
        ("bias", "no"),
        ("shuffle", "no"),
        ("guard", "off"),
        ("seed", True),
        ("seed", -1),
    ],
)
def test_a_run_option_of_the_wrong_type_is_one_clear_error(option, value):
    """A string where True/False or a whole number is meant is refused when the plan is made,
    not taken as true (bias="no" added a bias) or met deep in numpy (seed="a", seed=-1)."""
    with pytest.raises(torchgd.TorchgdError, match=f"^{option}=? must be "):
        torchgd.plan(**{option: value})


def test_a_numpy_whole_number_is_a_seed():
    import numpy as np

    p = torchgd.plan(seed=np.int64(3), batching="minibatch:2")
    assert p.config["seed"] == 3 and type(p.config["seed"]) is int  # config.json can hold it
