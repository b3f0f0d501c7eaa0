"""The lecture's stochastic gradient descent (one step per sample), through torchgd.

    loss(w) = (x * w - y)^2          grad = 2 * x * (x * w - y)          w = w - 0.01 * grad

torchgd runs it three ways in lockstep -- the formula by hand, autograd, and torch.optim.SGD --
and checks every step. Run:  .venv/bin/python scripts/lecture_sgd.py
"""

import torchgd

x_data = [1.0, 2.0, 3.0, 4.0]
y_data = [2.0, 4.0, 6.0, 8.0]
data = torchgd.datasets.from_values(x_data, y_data, name="lecture")

print("Predict (before training) input: 5, forward:", 5 * 1.0)

result = torchgd.fit(
    "linear",
    data,
    batching="sgd",  # one update per sample, in data order
    lr=0.01,
    epochs=100,
    init={"w": 1.0},
    paths=("manual", "autograd", "optim"),
    dtype="float64",
)

# the manual path: the lecture's own formula and update rule
history = result.paths["manual"]["history"]
for epoch, (w, loss) in enumerate(zip(history["w"], history["loss"]), start=1):
    if epoch % 10 == 0:
        print(f"Progress: epoch={epoch}, w={w}, loss={loss}")

w = result.params("manual")["w"]
print(f"Predict (after training) input: 5, forward: {5 * w}")

# the other two paths, compared at every one of the 400 steps
for path in ("autograd", "optim"):
    print(f"{path:>8}: w = {result.params(path)['w']!r}")
print("largest difference between any two paths:", result.agreement["max_ulp"], "ulp")
for reason in result.agreement["reasons"]:
    print("why:", reason["reason"])
