"""``torchgd bench``: speed as ratios measured in one run, on this machine.

* numerical gradients: the lecture's per-point loop (numpy scalars, one Python call per point)
  on the lecture's 32 x 32 grid, against ``gradients.numerical`` on a 1000 x 1000 grid;
  the ratio of points per second (target: at least 30).
* per-sample SGD: the lecture's pure-Python loop against each torchgd path alone, steps per
  second and their ratio (torch's per-call overhead on 1-sample tensors is the price of a path).
* start-up: wall time of ``torchgd --help`` and ``torchgd lecture`` in fresh processes.
"""

from __future__ import annotations

import platform
import subprocess
import sys
import time

import numpy as np
import torch

from . import gradients
from .train import fit


def _best(fn, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
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


def bench_sgd(epochs: int = 2500, repeat: int = 3) -> dict:
    steps = 4 * epochs
    py_rate = steps / _best(lambda: lecture_sgd_python(epochs), repeat)
    out = {"steps": steps, "python_steps_per_s": py_rate, "paths": {}}
    fit(schedule="sgd", epochs=1)  # warm-up: torch.optim imports torch._dynamo on first use
    for path in ("manual", "autograd", "optim"):
        s = _best(lambda p=path: fit(schedule="sgd", epochs=epochs, paths=(p,)), repeat)
        out["paths"][path] = {"steps_per_s": steps / s, "ratio_to_python": steps / s / py_rate}
    s = _best(lambda: fit(schedule="sgd", epochs=epochs), repeat)
    out["all_three_in_lockstep"] = {
        "steps_per_s": steps / s,
        "ratio_to_python": steps / s / py_rate,
    }
    return out


def bench_logging(epochs: int = 2500, repeat: int = 3) -> dict:
    """Per-sample SGD, all three paths, with TensorBoard logging every step and without."""
    import shutil
    import tempfile

    from .callbacks.tensorboard import TensorBoard
    from .train import execute, plan

    p = plan(schedule="sgd", epochs=epochs)
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
        "target": 0.5,
    }


def bench_sweep(k: int = 256, epochs: int = 100, repeat: int = 3) -> dict:
    """K learning rates on the lecture's per-sample SGD: one vectorized sweep against K
    separate runs of the same (manual) path."""
    from .sweep import sweep
    from .train import execute, plan

    lrs = torch.linspace(0.001, 0.2, k, dtype=torch.float64).tolist()
    vec = _best(lambda: sweep(schedule="sgd", lrs=lrs, epochs=epochs), repeat)
    plans = [plan(schedule="sgd", lr=lr, epochs=epochs, paths=("manual",)) for lr in lrs]
    separate = _best(lambda: [execute(p) for p in plans], 1)
    return {
        "k": k,
        "epochs": epochs,
        "vectorized_s": vec,
        "separate_s": separate,
        "speedup": separate / vec,
        "target": 50,
    }


def bench_startup(repeat: int = 3) -> dict:
    def wall(args):
        return _best(
            lambda: subprocess.run(
                [sys.executable, "-m", "torchgd", *args], capture_output=True, check=True
            ),
            repeat,
        )

    def py(code):
        return _best(lambda: subprocess.run([sys.executable, "-c", code], check=True), repeat)

    return {
        "help_s": wall(["--help"]),
        "lecture_s": wall(["lecture", "--quiet", "--logdir", _tmpdir()]),
        "import_torch_s": py("import torch"),
        "import_torch_and_dynamo_s": py("import torch, torch._dynamo"),
    }


def _tmpdir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="torchgd-bench-")


def run(quick: bool = False) -> dict:
    repeat = 1 if quick else 3
    return {
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": torch.get_num_threads(),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
        "quick": quick,
        "numerical": bench_numerical(300 if quick else 1000, repeat),
        "sgd": bench_sgd(100 if quick else 2500, repeat),
        "logging": bench_logging(100 if quick else 2500, repeat),
        "sweep": bench_sweep(32 if quick else 256, 100, repeat),
        "startup": bench_startup(1 if quick else 3),
    }


def format_table(r: dict) -> str:
    num, sgd, st = r["numerical"], r["sgd"], r["startup"]
    m = r["machine"]
    lines = [
        f"torchgd bench ({'quick' if r['quick'] else 'full'}) on {m['cpu']}, {m['cores']} "
        f"threads, Python {m['python']}, torch {m['torch']}",
        f"  numerical gradient, lecture loop      {num['loop_points_per_s']:>14,.0f} points/s",
        f"  numerical gradient, vectorized {num['grid']:>9} "
        f"{num['vectorized_points_per_s']:>11,.0f} points/s  speed-up {num['speedup']:.1f}x "
        f"(target >= {num['target']})",
        f"  per-sample SGD, lecture pure Python   {sgd['python_steps_per_s']:>14,.0f} steps/s",
    ]
    for name, p in [*sgd["paths"].items(), ("all three", sgd["all_three_in_lockstep"])]:
        lines.append(
            f"  per-sample SGD, {name:<21} {p['steps_per_s']:>14,.0f} steps/s  "
            f"{p['ratio_to_python']:.3f}x of pure Python"
        )
    lg = r["logging"]
    lines.append(
        f"  TensorBoard every step, {lg['steps']} SGD steps x 3 paths: "
        f"{lg['plain_s']:.2f} s -> {lg['logged_s']:.2f} s, overhead "
        f"{100 * lg['overhead']:.0f}% (target <= {100 * lg['target']:.0f}%)"
    )
    sw = r["sweep"]
    lines.append(
        f"  sweep of {sw['k']} lrs, per-sample SGD, {sw['epochs']} epochs: "
        f"{sw['separate_s']:.2f} s separately -> {sw['vectorized_s']:.3f} s vectorized, "
        f"speed-up {sw['speedup']:.0f}x (target >= {sw['target']})"
    )
    lines += [
        f"  torchgd --help                        {st['help_s']:>13.3f} s",
        f"  torchgd lecture                       {st['lecture_s']:>13.3f} s",
        f"  python -c 'import torch'              {st['import_torch_s']:>13.3f} s",
        f"  ... and torch._dynamo (torch.optim)   {st['import_torch_and_dynamo_s']:>13.3f} s",
    ]
    return "\n".join(lines)
