"""A training script on torchgd's Python API: the lecture's SGD, then your own data.

    python examples/train_script.py

It writes two run directories under runs/ (config.json, summary.json, TensorBoard's event files
and the figures), as ``torchgd train`` does; look at them with ``tensorboard --logdir runs``.
"""

import torchgd

# 1. The lecture: y = w*x on x = 1..4, per-sample SGD, lr 0.01, 100 epochs, three paths.
lecture = torchgd.fit(batching="sgd", lr=0.01, epochs=100, logdir="runs")  # runs/fit-<time>
print(lecture)  # one line: status, w, and whether the three paths agree
print("w =", lecture.params("manual")["w"])  # 1.9999999999999998, as the lecture prints
print("the paths differ by at most", lecture.agreement["max_ulp"], "ulp")

# 2. Your own numbers, given as (x, y): hours studied and exam scores, with a bias, y = w*x + b.
hours = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0]
score = [52.0, 61.0, 67.0, 71.0, 80.0, 86.0, 91.0, 97.0]
mine = torchgd.fit(data=(hours, score), bias=True, lr=0.03, epochs=1500, logdir="runs")
w, b = mine.params("manual")["w"], mine.params("manual")["b"]
print(f"score = {w:.3f} * hours + {b:.3f}")
print("run directories:", lecture.run_dir, mine.run_dir)
print("files:", sorted(p.name for p in mine.run_dir.iterdir()))
