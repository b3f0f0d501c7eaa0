"""The hand-written SGD against torch.optim.SGD: every option, both dtypes, step by step.

Bounds, derived:
* ``torch-exact`` uses the same operations in the same order as torch's single-tensor SGD, so it
  matches bit for bit (0 ulp), for every option.
* ``textbook`` rounds ``lr * g`` before subtracting where torch fuses ``w + (-lr) * g`` into one
  rounding. With unit roundoff u = eps/2, one step from the same w and g: the product's rounding
  is at most u*|lr*g| and each result's final rounding at most u*|w_new|, so
  ``|textbook - torch| <= u*|lr*g| + 2u*|w_new| <= eps * (|lr*g| + |w_new|)``. In ulps of w_new
  that is 1 when |lr*g| is small against |w_new|, more when the subtraction cancels.
"""

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchgd
from torchgd import rules
from torchgd.compare import ulp_distance
from torchgd.errors import TorchgdError

OPTIONS = [
    dict(momentum=m, dampening=d, nesterov=n, weight_decay=wd, maximize=mx)
    for m, d, n, wd, mx in itertools.product(
        [0.0, 0.9], [0.0, 0.3], [False, True], [0.0, 0.01], [False, True]
    )
    if not (n and (m == 0 or d != 0))
]


def run_both(options, dtype, rule, steps=25, seed=0):
    g = torch.Generator().manual_seed(seed)
    w0 = torch.randn(5, generator=g, dtype=torch.float64).to(dtype)
    grads = [torch.randn(5, generator=g, dtype=torch.float64).to(dtype) for _ in range(steps)]
    hp = rules.SGD(lr=0.05, **options)
    mine, state = {"w": w0.clone()}, {}
    theirs = w0.clone().requires_grad_(True)
    opt = torch.optim.SGD([theirs], lr=0.05, **options)
    worst = 0
    for grad in grads:
        with torch.no_grad():
            rules.sgd_(mine, {"w": grad}, state, hp, rule)
        theirs.grad = grad.clone()
        opt.step()
        worst = max(worst, int(ulp_distance(mine["w"], theirs.detach()).max()))
    return worst, mine["w"], theirs.detach()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if v)
)
def test_torch_exact_rule_matches_torch_optim_sgd_bit_for_bit(options, dtype):
    worst, _, _ = run_both(options, dtype, "torch-exact")
    assert worst == 0


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(
    "options", OPTIONS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items() if v)
)
def test_textbook_rule_stays_close_to_torch_optim_sgd(options, dtype):
    worst, mine, theirs = run_both(options, dtype, "textbook")
    eps = torch.finfo(dtype).eps
    # 25 steps of at most a few roundings each: relative distance within 100 eps
    assert torch.allclose(mine, theirs, rtol=100 * eps, atol=100 * eps)


@settings(max_examples=200, deadline=None)
@given(
    w=st.floats(-1e3, 1e3),
    g=st.floats(-1e3, 1e3),
    lr=st.floats(1e-4, 1.0),
    dtype=st.sampled_from([torch.float64, torch.float32]),
)
def test_one_textbook_step_is_within_the_derived_bound_and_torch_exact_is_identical(
    w, g, lr, dtype
):
    wt, gt = torch.tensor(w, dtype=dtype), torch.tensor(g, dtype=dtype)
    hp = rules.SGD(lr=lr)
    results = {}
    for rule in ("textbook", "torch-exact"):
        p = {"w": wt.clone()}
        rules.sgd_(p, {"w": gt}, {}, hp, rule)
        results[rule] = p["w"]
    theirs = wt.clone().requires_grad_(True)
    theirs.grad = gt.clone()
    torch.optim.SGD([theirs], lr=lr).step()
    assert ulp_distance(results["torch-exact"], theirs.detach()).item() == 0
    eps = torch.finfo(dtype).eps
    bound = eps * (abs(lr * gt.item()) + abs(theirs.item()))
    assert abs(results["textbook"].item() - theirs.item()) <= bound
    if abs(lr * gt.item()) <= 2**-4 * abs(theirs.item()):  # no cancellation: within 1 ulp
        assert ulp_distance(results["textbook"], theirs.detach()).item() <= 1


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(lr=float("nan")), "--lr must be a finite number"),  # torch takes nan: torchgd not
        (dict(lr=float("inf")), "--lr must be a finite number"),
        (dict(momentum="fast"), "--momentum must be a finite number"),
    ],
)
def test_what_torch_takes_but_cannot_run_is_refused_too(kwargs, message):
    with pytest.raises(TorchgdError, match=message):
        rules.SGD(**{"lr": 0.01, **kwargs})


def test_an_option_refused_in_torchgds_words_is_named_once():
    with pytest.raises(TorchgdError) as caught:
        torchgd.plan(lr="fast")
    assert str(caught.value) == "lr= must be a finite number, got fast"
    with pytest.raises(TorchgdError) as caught:
        torchgd.plan(momentum=float("inf"))
    assert str(caught.value) == "momentum= must be a finite number, got inf"
    with pytest.raises(TorchgdError) as caught:  # torch's words name no option: torchgd does
        torchgd.plan(momentum=-1.0)
    assert str(caught.value).startswith("momentum= -1.0: Invalid momentum value: -1.0")
