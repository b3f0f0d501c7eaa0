"""A problem of your own: a function, its gradient written by hand, and where to start.

    torchgd train --problem examples/my_problem.py:bowl --lr 0.1 --steps 50
    torchgd check --problem examples/my_problem.py:bowl
    torchgd check --problem examples/my_problem.py:forgot_the_two      (fails, and says how)

Why an *instance* (``bowl = FunctionProblem(...)``) and not a class? A problem is a value: its
name, its formula, its start. torchgd is handed that value (``FILE.py:NAME`` names it), the way
``torch.optim.SGD`` is handed parameters; a class would still need its arguments.
"""

from torchgd.problems import FunctionProblem

# f(x, y) = (x - 1)^2 + 2 (y + 0.5)^2: a bowl whose lowest point is (1, -0.5).
# Its gradient, by hand: df/dx = 2 (x - 1), df/dy = 4 (y + 0.5).
bowl = FunctionProblem(
    "bowl",
    ("x", "y"),
    f=lambda x, y: (x - 1) ** 2 + 2 * (y + 0.5) ** 2,
    df=lambda x, y: (2 * (x - 1), 4 * (y + 0.5)),
    start={"x": -2.0, "y": 2.0},
    description="f = (x-1)^2 + 2(y+0.5)^2",
    minimum=(1.0, -0.5),
)

# The same bowl with the most common slip: the power rule's factor forgotten in df/dx.
forgot_the_two = FunctionProblem(
    "forgot_the_two",
    ("x", "y"),
    f=lambda x, y: (x - 1) ** 2 + 2 * (y + 0.5) ** 2,
    df=lambda x, y: (x - 1, 4 * (y + 0.5)),
    start={"x": -2.0, "y": 2.0},
    description="the bowl, with the 2 of d/dx (x-1)^2 forgotten",
)
