"""Saddle points and noise: gradient descent on f(x, y) = x^2 - y^2 (the lecture's section 2).

Started exactly on the stable axis (y = 0), plain gradient descent walks straight into the
saddle point (0, 0) and stays there: the gradient (2x, -2y) never gets a y component. A little
noise in the gradient (as SGD's sampling gives) pushes y off 0, and the unstable direction then
grows it by a factor (1 + 2*lr) per step: the run escapes.

How soon: the noise enters through the step, lr * sigma each time, so after t steps y is a sum
of Gaussians, y_t ~ N(0, (lr*sigma)^2 * sum_j 1.2^(2j)), about lr*sigma*1.81*1.2^t*|Z| with Z
standard normal, and |y| passes 1 after log(1 / (lr*sigma*1.81*|Z|)) / log(1.2) steps. The
mean of log(1/|Z|) (0.635) nearly cancels log(1.81) (0.593): on average the run escapes after

    log(1 / (lr * sigma)) / log(1.2) steps,

give or take 6 (the spread of log|Z| / log 1.2); tests/test_beyond_sgd.py checks the mean of
20 seeds against it. Run:
    .venv/bin/python scripts/saddle.py            (draws runs/saddle.png)
"""

import math
from pathlib import Path

import torchgd
from torchgd import plots

START, LR, STEPS = {"x": -3.0, "y": 0.0}, 0.1, 150


def steps_to_escape(history_y, threshold=1.0):
    """The first step at which |y| > threshold, or None."""
    return next((i + 1 for i, y in enumerate(history_y) if abs(y) > threshold), None)


def predicted_escape(sigma, lr=LR):
    """The mean number of steps to |y| > 1: log(1 / (lr * sigma)) / log(1 + 2 lr)."""
    return math.log(1 / (lr * sigma)) / math.log(1 + 2 * lr)


def stuck():
    plain = torchgd.fit("saddle", init=START, lr=LR, epochs=STEPS, paths=("manual",))
    x, y = plain.params("manual")["x"], plain.params("manual")["y"]
    print(f"no noise:  after {STEPS} steps x = {x:.3g}, y = {y!r}  (stuck at the saddle point)")


if __name__ == "__main__":
    stuck()
    print(f"{'noise sigma':>12} {'seeds':>5} {'steps to |y| > 1':>24} {'mean':>6} {'predicted':>9}")
    for sigma in (1e-8, 1e-4, 1e-1):
        steps = []
        for seed in range(5):
            run = torchgd.fit(
                "saddle", init=START, lr=LR, epochs=STEPS, noise=sigma, seed=seed, paths=("manual",)
            )
            steps.append(steps_to_escape(run.paths["manual"]["history"]["y"]))
        shown = " ".join(str(s) if s else "never" for s in steps)
        mean = sum(steps) / len(steps) if all(steps) else float("nan")
        print(f"{sigma:>12g} {'0-4':>5} {shown:>24} {mean:>6.1f} {predicted_escape(sigma):>9.1f}")

    noisy = torchgd.fit("saddle", init=START, lr=LR, epochs=75, noise=1e-4, seed=0)
    Path("runs").mkdir(exist_ok=True)
    plots.trajectory(noisy, path="runs/saddle.png")
    print("trajectory with noise 1e-4: runs/saddle.png")
