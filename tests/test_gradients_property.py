"""Manual (analytic) vs autograd gradients of the lecture's model, for all inputs.

The bound, derived. Both compute the same residuals r_n = fl(fl(x_n*w) - y_n) (the same forward
expression). The formula then sums t_n = 2*x_n*r_n and divides by N; autograd sums
fl(fl(1/N * 2*r_n) * x_n). Multiplying by 2 is exact, so the only differences are where 1/N and
the products are rounded and the summation error. With unit roundoff u and
gamma_k = k*u / (1 - k*u), each side is within gamma_{N+2} * S of the exact value, where
S = sum|t_n| / N, so  |analytic - autograd| <= 2 * gamma_{N+2} * S  +  2 * (N+2) * eta,
where the last term (eta = the smallest subnormal) covers rounding below the normal range, where
relative bounds fail. When N is a power of two 1/N is exact and, away from the subnormal range,
the two are equal bit for bit.
"""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from torchgd import gradients, problems

LINEAR = problems.PROBLEMS["linear"]
finite = st.floats(-100, 100, allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
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
    assert abs(manual.item() - auto["w"].item()) <= 2 * gamma * s + 2 * (n + 2) * eta
    terms = (2 * x * (x * params["w"] - y)).abs()
    if n & (n - 1) == 0 and bool(((terms == 0) | (terms >= n * info.smallest_normal)).all()):
        assert manual.item() == auto["w"].item()
