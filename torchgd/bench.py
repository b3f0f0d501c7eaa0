"""``torchgd bench``: speed as ratios measured in one run, on this machine.

* numerical gradients: the lecture's per-point loop (numpy scalars, one Python call per point)
  on the lecture's 32 x 32 grid, against ``gradients.numerical`` on a 1000 x 1000 grid;
  the ratio of points per second (target: at least 30).
* per-sample SGD: the lecture's pure-Python loop against each torchgd path alone, steps per
  second and their ratio (torch's per-call overhead on 1-sample tensors is the price of a path).
* big N: full-batch gradient descent on N float32 samples (10 million by default), the time
  per epoch of each path alone as a ratio to one ``torch.dot(x, y)`` over the same data, timed
  in the same run (one pass over memory: the practical limit); targets 2 (manual) and 8
  (autograd, optim). Each path's first gradient is compared with the formula in float64.
* peak memory: a fresh process holds N float32 samples (100 million by default) and runs
  full-batch gradient descent with all three paths; the most memory it held beyond what it held
  before the data existed, as a ratio to the size of the data (target: under 1.5).
* start-up: wall time of ``torchgd --help`` and ``torchgd lecture`` in fresh processes.
"""

from __future__ import annotations

import math
import platform
import subprocess
import sys
import time

import numpy as np
import torch

from . import gradients
from .fitting import fit


def _best(fn, repeat: int, device=None) -> float:
    """The best wall time of ``repeat`` calls (on CUDA, waiting for the device's work)."""
    cuda = getattr(device, "type", device) == "cuda"
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        if cuda:
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t)
    return best


def lecture_numerical_loop(points: np.ndarray) -> np.ndarray:
    """The lecture's numerical_gradient, as written there (h = 1e-4, a loop over points)."""

    def f(x, y):
        return x**2 + y**2

    def grad_x(f, x, y):
        h = 1e-4
        return (f(x + h / 2, y) - f(x - h / 2, y)) / h

    def grad_y(f, x, y):
        h = 1e-4
        return (f(x, y + h / 2) - f(x, y - h / 2)) / h

    grad = np.zeros_like(points)
    for i in range(points[0].size):
        grad[0][i] = grad_x(f, points[0][i], points[1][i])
        grad[1][i] = grad_y(f, points[0][i], points[1][i])
    return grad


def bench_numerical(n: int = 1000, repeat: int = 3) -> dict:
    x = np.arange(-4, 4, 0.25)
    X, Y = np.meshgrid(x, x)
    P = np.array([X.flatten(), Y.flatten()])
    loop_s = _best(lambda: lecture_numerical_loop(P), repeat)
    loop_rate = P.shape[1] / loop_s
    g = torch.linspace(-4, 4, n, dtype=torch.float64)
    GX, GY = torch.meshgrid(g, g, indexing="xy")
    vec_s = _best(lambda: gradients.numerical(lambda a, b: a**2 + b**2, GX, GY), repeat)
    vec_rate = GX.numel() / vec_s
    return {
        "loop_points_per_s": loop_rate,
        "vectorized_points_per_s": vec_rate,
        "grid": f"{n}x{n}",
        "speedup": vec_rate / loop_rate,
        "target": 30,
    }


def lecture_sgd_python(epochs: int) -> float:
    w = 1.0
    for _ in range(epochs):
        for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
            w = w - 0.01 * (2 * x * (x * w - y))
    return w


X, Y, LR = [1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0], 0.01


def bare_manual(epochs: int, device="cpu") -> float:
    """The manual path's torch operations and nothing else: the lecture's SGD in torch."""
    x, y = (torch.tensor(v, dtype=torch.float64, device=device) for v in (X, Y))
    w = torch.tensor(1.0, dtype=torch.float64, device=device)
    for _ in range(epochs):
        for i in range(len(X)):
            xb, yb = x[i : i + 1], y[i : i + 1]
            loss = ((xb * w - yb) ** 2).sum(-1) / 1  # noqa: F841  (the path computes it too)
            grad = (2 * xb * (xb * w - yb)).sum(-1) / 1
            w -= LR * grad
    return w.item()


def bare_autograd(epochs: int, device="cpu") -> float:
    """The autograd path's torch operations: backward, then the same rule."""
    x, y = (torch.tensor(v, dtype=torch.float64, device=device) for v in (X, Y))
    w = torch.tensor(1.0, dtype=torch.float64, device=device, requires_grad=True)
    for _ in range(epochs):
        for i in range(len(X)):
            xb, yb = x[i : i + 1], y[i : i + 1]
            w.grad = None
            loss = ((xb * w - yb) ** 2).sum(-1) / 1
            loss.backward()
            with torch.no_grad():
                w -= LR * w.grad
    return w.item()


def bare_optim(epochs: int, device="cpu") -> float:
    """The optim path's torch operations: backward, then ``torch.optim.SGD.step()``."""
    x, y = (torch.tensor(v, dtype=torch.float64, device=device) for v in (X, Y))
    w = torch.tensor(1.0, dtype=torch.float64, device=device, requires_grad=True)
    opt = torch.optim.SGD([w], lr=LR)
    for _ in range(epochs):
        for i in range(len(X)):
            xb, yb = x[i : i + 1], y[i : i + 1]
            w.grad = None
            loss = ((xb * w - yb) ** 2).sum(-1) / 1
            loss.backward()
            opt.step()
    return w.item()


BARE = {"manual": bare_manual, "autograd": bare_autograd, "optim": bare_optim}
SGD_TARGETS = {"manual": 0.35, "autograd": 0.5, "optim": 0.5, "all": 0.6}


def bench_sgd(epochs: int = 2500, repeat: int = 3, device="cpu") -> dict:
    """The lecture's per-sample SGD: each path alone and all three in lockstep through torchgd
    (default options: agreement report, guard), against bare loops of the same torch
    operations, timed in turns in the same run (best of ``repeat``); ``all`` is compared with
    the three bare loops run one after another."""
    steps = 4 * epochs
    fit(batching="sgd", epochs=1, device=device)  # warm-up: torch.optim imports torch._dynamo
    bare_s = {p: math.inf for p in BARE}
    ours_s = {p: math.inf for p in (*BARE, "all")}

    def ours(paths):
        return _best(lambda: fit(batching="sgd", epochs=epochs, paths=paths, device=device), 1)

    for _ in range(repeat):  # in turns, so drift on a busy machine hits both alike
        for path, loop in BARE.items():
            bare_s[path] = min(bare_s[path], _best(lambda f=loop: f(epochs, device), 1, device))
            ours_s[path] = min(ours_s[path], ours((path,)))
        ours_s["all"] = min(ours_s["all"], ours(tuple(BARE)))
    bare_s["all"] = sum(bare_s[p] for p in BARE)
    bare = {p: steps / t for p, t in bare_s.items()}
    ours_rate = {p: steps / t for p, t in ours_s.items()}
    py_rate = steps / _best(lambda: lecture_sgd_python(epochs), repeat)
    return {
        "steps": steps,
        "device": str(device),
        "python_steps_per_s": py_rate,
        "bare": bare,
        "torchgd": ours_rate,
        "ratio": {p: ours_rate[p] / bare[p] for p in ours_rate},
        "target": SGD_TARGETS,
    }


def bench_logging(epochs: int = 2500, repeat: int = 3) -> dict:
    """Per-sample SGD, all three paths, with TensorBoard logging every step and without."""
    import shutil
    import tempfile

    from .callbacks.tensorboard import TensorBoard
    from .train import execute, plan

    p = plan(batching="sgd", epochs=epochs)
    steps = 4 * epochs
    plain, logged = float("inf"), float("inf")
    for _ in range(repeat):  # interleaved, so drift on a busy machine hits both alike
        plain = min(plain, _best(lambda: execute(p), 1))
        d = tempfile.mkdtemp(prefix="torchgd-bench-tb-")
        tb = TensorBoard(d, lr=p.hp.lr, total_steps=steps, log_every=1)
        logged = min(logged, _best(lambda tb=tb: execute(p, [tb]), 1))
        shutil.rmtree(d, ignore_errors=True)
    return {
        "steps": steps,
        "plain_s": plain,
        "logged_s": logged,
        "overhead": logged / plain - 1,
        "target": 0.1,
    }


def bench_sweep(k: int = 256, epochs: int = 100, repeat: int = 3) -> dict:
    """K learning rates on the lecture's per-sample SGD: one vectorized sweep against K
    separate runs of the same (manual) path."""
    from .sweep import sweep
    from .train import execute, plan

    lrs = torch.linspace(0.001, 0.2, k, dtype=torch.float64).tolist()
    vec = _best(lambda: sweep(batching="sgd", lrs=lrs, epochs=epochs), repeat)
    plans = [plan(batching="sgd", lr=lr, epochs=epochs, paths=("manual",)) for lr in lrs]
    separate = _best(lambda: [execute(p) for p in plans], 1)
    return {
        "k": k,
        "epochs": epochs,
        "vectorized_s": vec,
        "separate_s": separate,
        "speedup": separate / vec,
        "target": 50,
    }


def bench_big_n(
    n: int = 10_000_000, repeat: int = 5, epochs: int = 4, compile=False, device="cpu"
) -> dict:
    """Time per epoch of each path alone on N float32 samples, against ``torch.dot(x, y)``.

    An epoch's time is ``(t(1 + E epochs) - t(1 epoch)) / E``: what one more epoch costs, with
    the run's setup and report left out. Every timing is the best of ``repeat``, interleaved so
    that a busy machine slows the dot product and the paths alike. ``compile``: also time the
    manual path with ``--compile`` (and how long compiling took; an error is reported, not
    raised: the machine may have no C++ compiler)."""
    from . import data as datasets
    from .check import step_gradients
    from .errors import TorchgdError
    from .problems import Linear
    from .train import execute, plan

    ds = datasets.synthetic(n, noise=0.1, dtype=torch.float32)
    x, y = ds.x.to(device), ds.y.to(device)
    runs = {path: {"paths": (path,), "device": device} for path in ("manual", "autograd", "optim")}
    if compile:
        runs["manual --compile"] = {"paths": ("manual",), "compile": True, "device": device}
    plans, out = {}, {"n": n, "dtype": "float32", "device": str(device), "epochs": epochs}
    out["paths"] = {}
    for name, kw in runs.items():
        try:
            plans[name] = tuple(
                plan(data=ds, dtype="float32", epochs=e, lr=0.1, **kw) for e in (1, 1 + epochs)
            )
        except TorchgdError as exc:
            out["paths"][name] = {"error": str(exc)}
    for short, _ in plans.values():
        execute(short)  # warm-up
    dot = float("inf")
    short_s = dict.fromkeys(plans, float("inf"))
    long_s = dict.fromkeys(plans, float("inf"))
    for _ in range(repeat):
        dot = min(dot, _best(lambda: torch.dot(x, y), 3, device))
        for name, (short, long) in plans.items():
            short_s[name] = min(short_s[name], _best(lambda p=short: execute(p), 1, device))
            long_s[name] = min(long_s[name], _best(lambda p=long: execute(p), 1, device))
    w0 = {"w": torch.tensor(1.0, dtype=torch.float32, device=device)}
    problem = Linear()
    with torch.no_grad():
        ref = problem.grad({"w": w0["w"].double()}, x.double(), y.double())["w"].item()
    grads = {  # optim's gradient is autograd's (the same backward): computed once
        name: step_gradients(short.names[0], problem, w0, x, y, short.fused)[1]["w"].item()
        for name, (short, _) in plans.items()
        if name != "optim"
    }
    grads["optim"] = grads["autograd"]
    out["dot_s"] = dot
    for name, (short, _) in plans.items():
        per_epoch = max(long_s[name] - short_s[name], 0.0) / epochs
        path, g = short.names[0], grads[name]
        out["paths"][name] = {
            "epoch_s": per_epoch,
            "ratio_to_dot": per_epoch / dot,
            "target": 2 if path == "manual" else 8,
            "grad_rel_err": abs(g - ref) / abs(ref),
        }
        if short.fused is not None:
            out["paths"][name]["compile_s"] = short.fused.seconds
    out["paths"] = {k: out["paths"][k] for k in runs}  # in the order of runs
    out["grad_rel_err_target"] = 1e-5
    return out


MEMORY_CHILD = """
import json, sys, torch
from torchgd import data, fit, memory
fit(epochs=1)                        # import and warm up everything a run uses first
base = memory.rss()
ds = data.synthetic({n}, noise=0.1, dtype=torch.float32)
size = (ds.x.numel() + ds.y.numel()) * 4
memory.reset_peak()  # the run's peak, not the data generation's float64 scratch
r = fit(data=ds, dtype="float32", epochs={epochs}, lr=0.1)
print(json.dumps({{"base": base, "peak": memory.peak_rss(), "data": size, "status": r.status}}))
"""


def bench_memory(n: int = 100_000_000, epochs: int = 2, repeat: int = 2) -> dict:
    """Peak memory of full-batch gradient descent, all three paths, on N float32 samples held
    in memory, in a fresh process: (peak - before the data) / size of the data. The smallest
    of ``repeat`` fresh processes, as timings take the fastest: a process's resident memory
    also depends on how glibc spread its allocations over arenas, which a busy machine's
    thread contention multiplies (once 1.63 in a loaded test run against 1.21-1.35 alone)."""
    import json

    runs = []
    for _ in range(repeat):
        proc = subprocess.run(
            [sys.executable, "-c", MEMORY_CHILD.format(n=n, epochs=epochs)],
            capture_output=True,
            text=True,
            check=True,
        )
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    ratios = [(r["peak"] - r["base"]) / r["data"] for r in runs]
    r = runs[ratios.index(min(ratios))]
    return {
        "n": n,
        "epochs": epochs,
        "data_bytes": r["data"],
        "base_bytes": r["base"],
        "peak_bytes": r["peak"],
        "ratio": min(ratios),
        "ratios": ratios,
        "status": r["status"],
        "target": 1.5,
    }


def bench_startup(repeat: int = 3) -> dict:
    def wall(args):
        return _best(
            lambda: subprocess.run(
                [sys.executable, "-m", "torchgd", *args], capture_output=True, check=True
            ),
            1,
        )

    def py(code):
        return _best(lambda: subprocess.run([sys.executable, "-c", code], check=True), 1)

    floor, lecture = float("inf"), float("inf")
    for _ in range(repeat):  # interleaved: a busy moment hits both alike
        floor = min(floor, py("import torch, torch._dynamo"))
        lecture = min(lecture, wall(["lecture", "--quiet", "--logdir", _tmpdir()]))
    return {
        "help_s": wall(["--help"]),
        "lecture_s": lecture,
        "import_torch_s": py("import torch"),
        "import_torch_and_dynamo_s": floor,
        "lecture_ratio": lecture / floor,  # torch.optim imposes the floor: the lecture steps it
        "lecture_target": 1.3,
    }


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="torchgd-bench-")


SECTIONS = ("numerical", "sgd", "logging", "sweep", "big_n", "memory", "startup")


def run(
    quick: bool = False,
    only=SECTIONS,
    big_n: int | None = None,
    memory_n=None,
    compile=None,
    device="cpu",
) -> dict:
    """The benchmark sections named in ``only``; ``quick``: CI-sized runs. ``compile``: time
    the manual path with ``--compile`` in big N too (default: in full runs, not quick ones).
    ``device``: where the per-sample SGD and big-N rows run (the GPU rows with ``cuda``)."""
    compile = not quick if compile is None else compile
    repeat = 1 if quick else 3
    big_n = big_n or (1_000_000 if quick else 10_000_000)
    memory_n = memory_n or (10_000_000 if quick else 100_000_000)
    sections = {
        "numerical": lambda: bench_numerical(300 if quick else 1000, repeat),
        "sgd": lambda: bench_sgd(100 if quick else 2500, repeat, device),
        "logging": lambda: bench_logging(100 if quick else 2500, 1 if quick else 5),
        "sweep": lambda: bench_sweep(32 if quick else 256, 100, repeat),
        "big_n": lambda: bench_big_n(big_n, 2 if quick else 5, compile=compile, device=device),
        "memory": lambda: bench_memory(memory_n),
        "startup": lambda: bench_startup(1 if quick else 3),
    }
    report = {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "quick": quick,
    }
    for name in SECTIONS:
        if name in only:
            report[name] = sections[name]()
    return report


from .bench_table import FORMATS, format_table  # noqa: E402, F401  (bench.format_table)
