"""Saddle points and noise: gradient descent on f(x, y) = x^2 - y^2 (the lecture's section 2).

Started exactly on the stable axis (y = 0), plain gradient descent walks straight into the
saddle point (0, 0) and stays there: the gradient (2x, -2y) never gets a y component. A little
noise in the gradient (as SGD's sampling gives) pushes y off 0, and the unstable direction then
grows it by a factor (1 + 2*lr) per step: the run escapes. Run:
    .venv/bin/python scripts/saddle.py            (draws runs/saddle.png)
"""

from pathlib import Path

import torchgd
from torchgd import plots

START, LR, STEPS = {"x": -3.0, "y": 0.0}, 0.1, 150


def steps_to_escape(history_y, threshold=1.0):
    """The first step at which |y| > threshold, or None."""
    return next((i + 1 for i, y in enumerate(history_y) if abs(y) > threshold), None)


plain = torchgd.fit("saddle", init=START, lr=LR, epochs=STEPS, paths=("manual",))
x, y = plain.params("manual")["x"], plain.params("manual")["y"]
print(f"no noise:  after {STEPS} steps x = {x:.3g}, y = {y!r}  (stuck at the saddle point)")

print(f"{'noise sigma':>12} {'seed':>5} {'steps to |y| > 1':>17}")
for sigma in (1e-8, 1e-4, 1e-1):
    for seed in (0, 1, 2):
        run = torchgd.fit(
            "saddle", init=START, lr=LR, epochs=STEPS, noise=sigma, seed=seed, paths=("manual",)
        )
        escaped = steps_to_escape(run.paths["manual"]["history"]["y"])
        print(f"{sigma:>12g} {seed:>5} {escaped if escaped else 'never':>17}")

noisy = torchgd.fit("saddle", init=START, lr=LR, epochs=75, noise=1e-4, seed=0)
Path("runs").mkdir(exist_ok=True)
plots.trajectory(noisy, path="runs/saddle.png")
print("trajectory with noise 1e-4: runs/saddle.png")
