"""Manual (analytic) vs autograd gradients of the lecture's model, for all inputs.

The bound, derived. Both compute the same residuals r_n = fl(fl(x_n*w) - y_n) (the same forward
expression). The formula then sums t_n = 2*x_n*r_n and divides by N; autograd sums
fl(fl(1/N * 2*r_n) * x_n). Multiplying by 2 is exact, so the only differences are where 1/N and
the products are rounded and the summation error. With unit roundoff u and
gamma_k = k*u / (1 - k*u), each side is within gamma_{N+2} * S of the exact value, where
S = sum|t_n| / N, so  |analytic - autograd| <= 2 * gamma_{N+2} * S  +  (sum|x_n| + 2N + 2) * eta,
where the last term (eta = the smallest subnormal) covers rounding below the normal range, where
relative bounds fail: there each product is off by at most eta/2 absolutely, and autograd
multiplies its rounded 2*r_n/N by x_n afterwards, which scales that error by |x_n| (hypothesis
found x = 32, y = eta, N = 3 in float32: 11 eta apart, beyond the 2(N+2) eta this bound first
had). When N is a power of two 1/N is exact and, as long as nothing on the way
(2*r_n/N, the terms, their partial sums) falls into the subnormal range, where scaling by 1/N
rounds, the two are equal bit for bit (hypothesis found x = 2, y = 1.65e-38 in float32: the
terms are normal, but autograd's 2*r_n/N is not).
"""

import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

from torchgd import gradients, problems

LINEAR = problems.PROBLEMS["linear"]
finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@example(  # found by hypothesis: autograd's 2*r_n/N is subnormal though the terms are not
    data=[(0.0, 0.0)] * 3 + [(2.0, 1.650836221256105e-38)], w=0.0, dtype=torch.float32
)
@example(  # found by hypothesis: a subnormal rounding error, then multiplied by x_n = 32
    data=[(0.0, 0.0)] * 2 + [(32.0, 1.401298464324817e-45)], w=0.0, dtype=torch.float32
)
@example(  # found by hypothesis: autograd's terms 2*r_n/N * x_n, half the smallest subnormal,
    # round to 0 (the formula's -eta is right); in float32 they had looked like a normal 0
    data=[(1.401298464324817e-45, 0.5)] * 2,
    w=0.0,
    dtype=torch.float32,
)
@example(data=[(5e-324, 0.5)] * 2, w=0.0, dtype=torch.float64)  # the same, in float64
@given(
    data=st.lists(st.tuples(finite, finite), min_size=1, max_size=9),
    w=finite,
    dtype=st.sampled_from([torch.float64, torch.float32]),
)
def test_manual_and_autograd_gradients_agree_within_the_derived_bound(data, w, dtype):
    x = torch.tensor([d[0] for d in data], dtype=dtype)
    y = torch.tensor([d[1] for d in data], dtype=dtype)
    params = {"w": torch.tensor(w, dtype=dtype)}
    manual = gradients.analytic(LINEAR, params, x, y)["w"]
    _, auto = gradients.autograd(LINEAR, params, x, y)
    n = len(data)
    u = torch.finfo(dtype).eps / 2
    gamma = (n + 2) * u / (1 - (n + 2) * u)
    s = (2 * x.double() * (x * params["w"] - y).double()).abs().sum().item() / n
    info = torch.finfo(dtype)
    eta = info.smallest_normal * info.eps  # the smallest subnormal
    slack = (x.double().abs().sum().item() + 2 * n + 2) * eta  # below the normal range
    assert abs(manual.item() - auto["w"].item()) <= 2 * gamma * s + slack
    r = x * params["w"] - y
    if n & (n - 1) == 0 and _normal_on_the_way(x, r, n, info):
        assert manual.item() == auto["w"].item()


def _normal_on_the_way(x: torch.Tensor, r: torch.Tensor, n: int, info) -> bool:
    """Whether autograd's 2*r_n/N, its terms 2*x_n*r_n/N and every partial sum of them (in any
    order: a partial sum is the sum of a subset) stay out of the subnormal range, where scaling
    by 1/N is no longer exact. All are taken in float64 (exact for float32's residuals), the
    subset sums with a factor 2 of room for the rounding of the real partial sums; a value that
    is 0 though none of its factors is has rounded below the subnormals and is not normal."""
    scaled, t = 2 * r.double() / n, 2 * x.double() * r.double() / n
    if bool(((scaled == 0) & (r != 0)).any() or ((t == 0) & (x != 0) & (r != 0)).any()):
        return False
    subsets = torch.tensor(
        [[(k >> i) & 1 for i in range(len(t))] for k in range(1, 1 << len(t))], dtype=t.dtype
    )
    sums = (subsets @ t).abs()
    tiny = info.smallest_normal
    return bool(((scaled == 0) | (scaled.abs() >= tiny)).all()) and bool(
        ((sums == 0) | (sums >= 2 * tiny)).all()
    )


def test_the_case_hypothesis_found_rounds_below_the_normal_range_in_autograd_only():
    # N = 4, w = 0: the formula's term -4 * 1.65e-38 and its quarter are normal floats, but
    # autograd first forms 1/4 * 2 * r = -8.25e-39, a subnormal, and loses bits there
    x = torch.tensor([0.0, 0.0, 0.0, 2.0])
    y = torch.tensor([0.0, 0.0, 0.0, 1.650836221256105e-38])
    params = {"w": torch.tensor(0.0)}
    manual = gradients.analytic(LINEAR, params, x, y)["w"]
    _, auto = gradients.autograd(LINEAR, params, x, y)
    info = torch.finfo(torch.float32)
    assert 0 < abs(2 * y[3].item() / 4) < info.smallest_normal
    assert manual.item() != auto["w"].item()
    r = x * params["w"] - y
    assert not _normal_on_the_way(x, r, 4, info)
