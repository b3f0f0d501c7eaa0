"""The d2l.ai optimization chapter's 2-D examples, out of torchgd's rules.

The chapter (12.6 momentum, 12.7 Adagrad, 12.8 RMSProp) runs f = 0.1 x1^2 + 2 x2^2 (torchgd's
``ravine``) from (-5, -2) for 20 steps with its own code, copied below as the book writes it
(plain Python floats). Its Adagrad and RMSProp put eps = 1e-6 **inside** the square root,
``eta / sqrt(s + eps) * g``; torch.optim puts it outside, ``g / (sqrt(s) + eps)``.

The difference that placement explains is derived, not guessed: the book's code run once more
with only the eps moved outside (``outside``). Then

* torchgd's ``textbook`` spelling (eps inside, like the book) is the book's trajectory, up to
  rounding;
* its ``torch-exact`` spelling (torch's operations, eps outside) differs from the book's by the
  placement's difference, up to rounding: ``|(torchgd - book) - (outside - book)|`` is within
  rounding, while the placement's difference itself is millions of times larger.

Rounding budget, derived: a step does at most four roundings per coordinate (the gradient, the
accumulated square, the root-and-quotient, the update), each at most u = 2^-53 times a value no
larger than the start's 5 (these iterations shrink toward the minimum); over 20 steps that is
20 * 4 * u * 5 = 4.4e-14 in absolute terms.
"""

import math

import pytest
import torch

import torchgd

STEPS = 20
BUDGET = STEPS * 4 * 2.0**-53 * 5


def train_2d(trainer, steps=STEPS):
    """d2l.ai's ``train_2d``: (x1, x2) after each step, from (-5, -2) with zero state."""
    x1, x2, s1, s2 = -5, -2, 0, 0
    results = []
    for _ in range(steps):
        x1, x2, s1, s2 = trainer(x1, x2, s1, s2)
        results.append((x1, x2))
    return results


def gd_2d(eta):
    def trainer(x1, x2, s1, s2):
        return (x1 - eta * 0.2 * x1, x2 - eta * 4 * x2, 0, 0)

    return trainer


def momentum_2d(eta, beta):
    def trainer(x1, x2, v1, v2):
        v1 = beta * v1 + 0.2 * x1
        v2 = beta * v2 + 4 * x2
        return x1 - eta * v1, x2 - eta * v2, v1, v2

    return trainer


def root(s, eps, inside):
    return math.sqrt(s + eps) if inside else math.sqrt(s) + eps


def adagrad_2d(eta, inside=True):
    def trainer(x1, x2, s1, s2):
        eps = 1e-6
        g1, g2 = 0.2 * x1, 4 * x2
        s1 += g1**2
        s2 += g2**2
        x1 -= eta / root(s1, eps, inside) * g1
        x2 -= eta / root(s2, eps, inside) * g2
        return x1, x2, s1, s2

    return trainer


def rmsprop_2d(eta, gamma, inside=True):
    def trainer(x1, x2, s1, s2):
        g1, g2, eps = 0.2 * x1, 4 * x2, 1e-6
        s1 = gamma * s1 + (1 - gamma) * g1**2
        s2 = gamma * s2 + (1 - gamma) * g2**2
        x1 -= eta / root(s1, eps, inside) * g1
        x2 -= eta / root(s2, eps, inside) * g2
        return x1, x2, s1, s2

    return trainer


# (the chapter's example, the book's trainer, the same with eps outside, torchgd's options)
EXAMPLES = [
    ("gd eta=0.4", gd_2d(0.4), gd_2d(0.4), dict(optimizer="sgd", lr=0.4)),
    ("momentum eta=0.6 beta=0.5", *[momentum_2d(0.6, 0.5)] * 2, dict(lr=0.6, momentum=0.5)),
    ("momentum eta=0.6 beta=0.25", *[momentum_2d(0.6, 0.25)] * 2, dict(lr=0.6, momentum=0.25)),
    (
        "adagrad eta=0.4",
        adagrad_2d(0.4),
        adagrad_2d(0.4, inside=False),
        dict(optimizer="adagrad", lr=0.4, eps=1e-6),
    ),
    (
        "adagrad eta=2",
        adagrad_2d(2),
        adagrad_2d(2, inside=False),
        dict(optimizer="adagrad", lr=2.0, eps=1e-6),
    ),
    (
        "rmsprop eta=0.4 gamma=0.9",
        rmsprop_2d(0.4, 0.9),
        rmsprop_2d(0.4, 0.9, inside=False),
        dict(optimizer="rmsprop", lr=0.4, alpha=0.9, eps=1e-6),
    ),
]


def torchgd_run(rule, options):
    r = torchgd.fit(
        "ravine", epochs=STEPS, spelling=rule, paths=("manual", "optim"), guard=False, **options
    )
    h = r.paths["manual"]["history"]
    return torch.tensor(list(zip(h["x"], h["y"])), dtype=torch.float64), r


@pytest.mark.parametrize("name,book,outside,options", EXAMPLES, ids=[e[0] for e in EXAMPLES])
def test_the_chapters_2d_examples_within_the_difference_eps_placement_explains(
    name, book, outside, options
):
    B = torch.tensor(train_2d(book), dtype=torch.float64)
    O = torch.tensor(train_2d(outside), dtype=torch.float64)
    placement = (O - B).abs().max().item()
    textbook, _ = torchgd_run("textbook", options)
    exact, r = torchgd_run("torch-exact", options)
    assert (textbook - B).abs().max().item() <= BUDGET  # the book, up to rounding
    assert ((exact - B) - (O - B)).abs().max().item() <= BUDGET  # the book moved by placement
    if "eps" in options:  # the placement is a real difference, far beyond rounding
        assert placement > 1e6 * BUDGET
        assert (exact - B).abs().max().item() > 1e6 * BUDGET
    else:
        assert placement == 0
    # and torch-exact is torch.optim itself, bit for bit
    assert r.agreement["params"]["manual~optim"]["max_ulp"] == 0


def test_the_examples_converge_as_the_chapter_says():
    # momentum at eta=0.6 converges where gradient descent at the same eta diverges in x2
    gd = train_2d(gd_2d(0.6))
    mom = train_2d(momentum_2d(0.6, 0.5))
    assert abs(gd[-1][1]) > 2 and abs(mom[-1][1]) < 1e-2
    # Adagrad at eta=2 gets close to the minimum in 20 steps, at eta=0.4 it is still far
    x_far, _ = torchgd_run("torch-exact", dict(optimizer="adagrad", lr=0.4, eps=1e-6))
    x_near, _ = torchgd_run("torch-exact", dict(optimizer="adagrad", lr=2.0, eps=1e-6))
    assert x_near[-1].abs().max() < 0.1 < x_far[-1].abs().max()
