"""Big data: chunked full-batch epochs, data in the run's dtype, memory, and the big-N bench.

Chunking is exercised on small data by lowering ``Linear.chunk_rows``: the code path is the one
10 million samples take, at a size a test can afford.
"""

import resource

import numpy as np
import pytest
import torch

import torchgd
from torchgd import bench, check, memory, problems, theory, train
from torchgd import data as datasets
from torchgd.batching import Batching, parse_batching
from torchgd.cli import main


@pytest.fixture
def small_chunks(monkeypatch):
    monkeypatch.setattr(problems.Linear, "chunk_rows", 512)
    return 512


CASES = {"one feature": (1, False), "three features": (3, False), "bias": (2, True)}


@pytest.mark.parametrize("d,bias", CASES.values(), ids=CASES)
def test_chunk_sums_add_up_to_the_lecture_formulas(d, bias):
    ds = datasets.synthetic(3000, d=d, noise=0.3, seed=1, bias=0.5)
    lin = problems.Linear(bias=bias)
    params = {"w": torch.linspace(-1, 2, d, dtype=torch.float64).reshape(ds.x.shape[1:])}
    if bias:
        params["b"] = torch.tensor(0.25, dtype=torch.float64)
    parts = [lin.sums(params, xc, yc) for xc, yc in zip(ds.x.split(700), ds.y.split(700))]
    n = len(ds)
    loss = sum(s for s, _ in parts) / n
    grads = {k: sum(g[k] for _, g in parts) / n for k in params}
    assert loss.item() == pytest.approx(lin.loss(params, ds.x, ds.y).item(), rel=1e-13)
    for k, g in lin.grad(params, ds.x, ds.y).items():
        torch.testing.assert_close(grads[k], g, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("d,bias", CASES.values(), ids=CASES)
def test_a_chunks_loss_share_and_formula_sums_match_autograd_over_the_whole_batch(d, bias):
    ds = datasets.synthetic(2000, d=d, noise=0.1, seed=2)
    lin = problems.Linear(bias=bias)
    w = torch.full(ds.x.shape[1:], 0.5, dtype=torch.float64, requires_grad=True)
    params = {"w": w, "b": torch.tensor(0.1, dtype=torch.float64, requires_grad=True)}
    params = {k: params[k] for k in lin.param_names}
    total, sums = 0.0, []
    for xc, yc in zip(ds.x.split(300), ds.y.split(300)):
        part, s = lin.chunk(params, xc, yc, len(ds))
        part.backward()  # .grad adds up chunk after chunk
        total = total + part.detach()
        sums.append(s)
    assert total.item() == pytest.approx(lin.loss(params, ds.x, ds.y).item(), rel=1e-13)
    whole = torch.autograd.grad(lin.loss(params, ds.x, ds.y), list(params.values()))
    for (name, t), g in zip(params.items(), whole):
        torch.testing.assert_close(t.grad, g, rtol=1e-12, atol=1e-14)
        formula = sum(s[name] for s in sums) / len(ds)
        torch.testing.assert_close(formula, g, rtol=1e-12, atol=1e-14)


def _run(data, **kw):
    return torchgd.fit(data=data, lr=0.05, epochs=6, **kw)


@pytest.mark.parametrize("batching", ["batch", "minibatch:1500"])
def test_a_chunked_run_ends_where_the_whole_batch_run_ends(small_chunks, monkeypatch, batching):
    ds = datasets.synthetic(4000, d=2, noise=0.2, seed=3, bias=1.0)
    chunked = _run(ds, batching=batching, bias=True)
    monkeypatch.setattr(problems.Linear, "chunk_rows", 10**9)
    whole = _run(ds, batching=batching, bias=True)
    assert chunked.steps == whole.steps
    for path in train.PATH_NAMES:
        for k, v in whole.params(path).items():
            np.testing.assert_allclose(chunked.params(path)[k], v, rtol=1e-12, atol=1e-14)
    # every step of the autograd paths was checked against the formula, chunk by chunk
    grad = chunked.agreement["grad"]
    assert set(grad["pairs"]) == {"analytic~autograd", "analytic~optim"}
    assert 0 < grad["max_rel"] < 1e-12


def test_float32_chunked_gradients_stay_within_1e_5_of_float64(small_chunks):
    r = check.check_gradients(
        problem="linear", data="synthetic:200000,d=2,noise=0.1", dtype="float32", points=3
    )
    assert r["ok"], r["failures"]
    for name in ("manual", "autograd"):
        rel = r["as_trained_vs_float64"][name]["max_rel"]
        assert 0 < rel <= 1e-5
        assert 0 < r["as_trained_vs_float64"][name]["of_bound"] <= 1  # within rounding's bound


def test_many_feature_float32_gradients_with_real_chunks_stay_within_1e_5_of_float64():
    # 600,000 rows: a whole chunk of 524,288 and a rest. X^T r as one matrix-vector product ran
    # down each column sequentially: 2e-5 (formula) and 3e-5 (autograd's backward) off here
    r = check.check_gradients(
        problem="linear", data="synthetic:600000,d=2,noise=0.1", dtype="float32", points=3
    )
    assert r["ok"], r["failures"]
    for name in ("manual", "autograd"):
        assert r["as_trained_vs_float64"][name]["max_rel"] <= 1e-6
    assert r["analytic_vs_autograd"]["max_rel"] <= 1e-6


def test_block_sums_are_x_transpose_r_and_x_w():
    x = torch.randn(3 * problems.XT_BLOCK + 5, 3, dtype=torch.float64)
    r, w = torch.randn(len(x), dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    torch.testing.assert_close(problems.xt(x, r), x.T @ r, rtol=1e-13, atol=1e-12)
    torch.testing.assert_close(problems.xw(x, w), x @ w, rtol=1e-13, atol=1e-12)
    small = x[:7]  # fewer rows than a block: the plain products
    assert torch.equal(problems.xt(small, r[:7]), small.T @ r[:7])


def test_a_float32_check_flags_a_gradient_far_from_float64(monkeypatch):
    real = problems.Linear.grad

    def off(self, params, x, y):  # in float32 only: 1e-2 off, beyond what float32's rounding
        grads = real(self, params, x, y)  # of 1,000 terms can do at worst (gamma_1004: 6e-5)
        if y.dtype == torch.float64:
            return grads
        return {k: g * (1 + 1e-2) for k, g in grads.items()}

    monkeypatch.setattr(problems.Linear, "grad", off)
    r = check.check_gradients(problem="linear", data="synthetic:1000", dtype="float32", points=2)
    assert not r["ok"]
    assert r["as_trained_vs_float64"]["manual"]["of_bound"] > 1
    assert r["as_trained_vs_float64"]["autograd"]["of_bound"] <= 1  # autograd: still rounding
    assert any(
        f.startswith("the manual gradient as a training step computes it")
        and "from the same gradient in float64" in f
        for f in r["failures"]
    ), r["failures"]


def test_float32_data_are_the_float64_data_rounded_and_never_held_twice():
    d64 = datasets.synthetic(5000, d=2, noise=0.1, seed=4)
    d32 = datasets.get("synthetic:5000,d=2,noise=0.1,seed=4", torch.float32)
    assert d32.x.dtype == d32.y.dtype == torch.float32
    assert torch.equal(d32.x, d64.x.float()) and torch.equal(d32.y, d64.y.float())
    assert d32.meta["true_w"] == d64.meta["true_w"]


def test_a_float32_npz_file_loads_without_a_float64_copy(tmp_path):
    x = np.random.default_rng(0).standard_normal(1000).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=2 * x)
    ds = datasets.load(str(tmp_path / "d.npz"), torch.float32)
    assert ds.x.dtype == torch.float32 and np.array_equal(ds.x.numpy(), x)
    assert datasets.load(str(tmp_path / "d.npz")).x.dtype == torch.float64


def test_values_too_large_for_float32_are_refused_naming_the_file(tmp_path):
    np.save(tmp_path / "big.npy", np.array([[1e300, 1.0], [2.0, 3.0]]))
    with pytest.raises(Exception, match=r"big.npy' has values too large for float32"):
        datasets.load(str(tmp_path / "big.npy"), torch.float32)


def test_the_float64_shadow_runs_for_small_float32_data_only(monkeypatch):
    assert train.plan(dtype="float32").config["shadow"] is True
    assert train.plan(dtype="float64").config["shadow"] is False
    import torchgd.planning

    monkeypatch.setattr(torchgd.planning, "SHADOW_MAX_VALUES", 10)
    p = train.plan(data="synthetic:100", dtype="float32")
    assert p.config["shadow"] is False
    assert "float64_reference" not in train.execute(p).agreement
    forced = torchgd.fit(data="synthetic:100", dtype="float32", epochs=3, shadow=True)
    assert forced.agreement["float64_reference"]["manual"]["max_abs"] > 0


def test_slices_are_computed_on_demand():
    s = Batching("minibatch", 3).slices(10)
    assert len(s) == 4 and list(s) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert s[-1] == (9, 10)
    with pytest.raises(IndexError):
        s[4]
    assert len(Batching("sgd").slices(10**12)) == 10**12  # no list of 10^12 pairs


def test_theory_reads_big_data_in_chunks_and_skips_epochs_of_too_many_batches(monkeypatch):
    x = datasets.lecture().x
    monkeypatch.setattr(theory, "CHUNK", 3)  # chunks of 3 rows: the same Gram matrix
    assert theory.batch_critical_lr(theory.least_squares(x, 2 * x)) == 1 / 7.5
    monkeypatch.setattr(theory, "MAX_BATCHES", 3)
    big = datasets.from_values(torch.ones(4), torch.ones(4))
    cfg = {"problem": "linear", "data": "x"}
    assert theory.analyse(cfg, big, parse_batching("sgd")) is None  # 4 batches: not analysed
    assert theory.analyse(cfg, big, parse_batching("batch")).critical_lr == 1.0


def test_freed_chunk_buffers_are_reused_not_faulted_in_again():
    assert memory.keep_freed_memory() is True  # glibc Linux, as CI runs
    x = torch.randn(4 << 20)
    for _ in range(3):  # warm up the heap to this size
        [x[i << 19 : (i + 1) << 19] * 2 for i in range(8)]
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(20):
        [x[i << 19 : (i + 1) << 19] * 2 for i in range(8)]  # 160 buffers of 2 MiB
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
    assert faults < 160 * 512 // 10  # fresh pages each time would be 512 faults per buffer


def test_a_gradient_that_is_the_parameter_itself_is_recorded_before_the_update():
    half_square = problems.FunctionProblem(
        "half",
        ("x",),
        f=lambda x: x * x / 2,
        df=lambda x: (x,),
        start={"x": 10.0},
        description="x^2/2",
    )
    r = torchgd.fit(half_square, epochs=1, lr=0.5, paths=("manual",))
    assert r.params()["x"] == 5.0
    assert r.agreement["steps"] == 1


def test_peak_memory_of_a_full_batch_run_stays_under_one_and_a_half_times_the_data():
    # a real process, 160 MB of data, all three paths; about 40 MB are fixed costs (chunk
    # buffers, float64 scratch of the data's generation), 4% of the data at the 100M
    r = bench.bench_memory(n=20_000_000, epochs=2)
    assert r["status"] == "completed"
    assert r["data_bytes"] == 20_000_000 * 2 * 4
    assert r["ratio"] < r["target"] == 1.5


def test_the_big_n_bench_times_every_path_against_the_dot_product(small_chunks):
    r = bench.run(quick=True, only=("big_n",), big_n=20_000)["big_n"]
    assert r["n"] == 20_000 and r["dot_s"] > 0
    assert set(r["paths"]) == {"manual", "autograd", "optim"}
    for p in r["paths"].values():  # an epoch estimate may be 0 under load: see test_compile
        assert p["epoch_s"] >= 0 and p["ratio_to_dot"] == p["epoch_s"] / r["dot_s"]
        assert p["grad_rel_err"] <= r["grad_rel_err_target"]
    assert "x the dot product" in bench.format_table({**_machine(), "big_n": r})


def _machine():
    return {"machine": {"cpu": "x", "cores": 2, "python": "3", "torch": "2"}, "quick": True}


@pytest.mark.parametrize(
    "args,message",
    [
        (["--only", "speed"], "unknown bench section 'speed'"),
        (["--big-n", "0"], "--big-n must be a whole number >= 1"),
    ],
)
def test_bad_bench_options_give_one_line_and_exit_code_2(capsys, tmp_path, args, message):
    code = main(["bench", *args, "--logdir", str(tmp_path / "runs")])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and len(err.splitlines()) == 1 and message in err
    assert not (tmp_path / "runs").exists()


def test_a_sweep_too_big_to_hold_is_refused_before_anything_is_written(
    main_cli, tmp_path, monkeypatch
):
    from torchgd import sweep

    monkeypatch.setattr(sweep, "MAX_LANE_VALUES", 130)  # 32 lanes x 4 samples fit, 50 x 3 not
    assert main_cli("sweep", "--lr", "0.01:0.1:32", "--no-plots", "--logdir", "a").returncode == 0
    proc = main_cli("sweep", "--data", "course", "--lr", "0.01:0.1:50", "--logdir", "b")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "a sweep of 50 learning rates on batches of 3 samples holds 50 x 3 values" in proc.stderr
    assert not (tmp_path / "b").exists()


def test_a_sweep_whose_records_would_not_fit_is_refused_before_anything_is_written(
    main_cli, tmp_path
):
    # every lane keeps its loss, cost and w each epoch: 100,000 x 1,001 x 3 values > 2^28
    proc = main_cli("sweep", "--lr", "0.01:0.5:100000", "--epochs", "1000", "--logdir", "a")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "keeps every lane's loss, cost and parameters each epoch: 300,300,000 values" in (
        proc.stderr
    )
    proc = main_cli("sweep", "--lr", "0.01:0.5:100000000", "--logdir", "a")  # not even listed
    assert proc.returncode == 2 and "K = 100,000,000 learning rates; at most 100,000" in (
        proc.stderr
    )
    with pytest.raises(torchgd.TorchgdError, match="^lrs: K = 100,001 learning rates"):
        torchgd.sweep.sweep(lrs=[0.01] * 100_001)
    assert not (tmp_path / "a").exists()
