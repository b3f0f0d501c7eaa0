"""The lecture's (batch) gradient descent, through torchgd.

    cost(w) = 1/N sum (x_n * w - y_n)^2                    (eq. 3)
    d cost / dw = 1/N sum 2 * x_n * (x_n * w - y_n)        (eq. 4)
    w = w - 0.01 * d cost / dw                             (eq. 5)

The error w - 2 shrinks by |1 - 2 * lr * mean(x^2)| = 0.85 per epoch, so after 100 epochs
w = 2 - 0.85**100. Run:  .venv/bin/python scripts/lecture_gd.py
"""

import torchgd

x_data = [1.0, 2.0, 3.0, 4.0]
y_data = [2.0, 4.0, 6.0, 8.0]
data = torchgd.datasets.from_values(x_data, y_data, name="lecture")

result = torchgd.fit("linear", data, batching="batch", lr=0.01, epochs=100, init={"w": 1.0})

history = result.paths["manual"]["history"]
for epoch, (w, cost) in enumerate(zip(history["w"], history["loss"]), start=1):
    if epoch % 10 == 0 or epoch == 1:
        # cost is measured before the epoch's update, as in the course's code
        print(f"Epoch: {epoch}, w={w}, cost={cost}")

w = result.params("manual")["w"]
print(f"final w = {w!r}; theory: 2 - 0.85**100 = {2 - 0.85**100!r}")
print(f"Predict (after training) input: 4, forward: {4 * w}")
print("paths agree:", result.agreement["bit_identical"], f"({result.agreement['max_ulp']} ulp)")
