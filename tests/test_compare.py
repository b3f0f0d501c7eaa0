"""ulp distances and pair reports, against what the IEEE 754 format says they must be."""

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from torchgd.compare import pair_report, ulp_distance


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_adjacent_floats_are_one_ulp_apart(dtype):
    a = torch.tensor([1.0, -3.5, 1e-30, 0.0, 1e30], dtype=dtype)
    b = torch.nextafter(a, torch.full_like(a, math.inf))
    assert ulp_distance(a, b).tolist() == [1] * 5
    assert ulp_distance(b, a).tolist() == [1] * 5


def test_signed_zeros_are_equal_and_smallest_numbers_straddle_zero():
    z = torch.tensor([0.0, -0.0], dtype=torch.float64)
    assert ulp_distance(z[:1], z[1:]).item() == 0
    tiny = torch.tensor([5e-324], dtype=torch.float64)
    assert ulp_distance(tiny, -tiny).item() == 2


def test_nan_is_far_from_everything_but_nan():
    nan = torch.tensor([math.nan], dtype=torch.float64)
    one = torch.tensor([1.0], dtype=torch.float64)
    assert ulp_distance(nan, one).item() == torch.iinfo(torch.int64).max
    assert ulp_distance(nan, nan).item() == 0


def test_the_lectures_final_w_is_one_ulp_below_two():
    a = torch.tensor([1.9999999999999998], dtype=torch.float64)
    assert ulp_distance(a, torch.tensor([2.0], dtype=torch.float64)).item() == 1


@given(st.floats(allow_nan=False, allow_infinity=False, width=64), st.integers(0, 50))
def test_stepping_k_times_with_nextafter_is_k_ulp(x, k):
    a = torch.tensor([x], dtype=torch.float64)
    b = a.clone()
    for _ in range(k):
        b = torch.nextafter(b, torch.tensor([math.inf], dtype=torch.float64))
    if math.isinf(b.item()) and not math.isinf(x):
        return  # stepped off the end of the format
    assert ulp_distance(a, b).item() == k


def test_pair_report_finds_the_step_and_parameter_of_each_maximum():
    a = torch.tensor([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]], dtype=torch.float64)
    b = a.clone()
    b[1, 1] = 4.5  # the largest absolute difference, at step 20, parameter "y"
    b[2, 0] = torch.nextafter(b[2, 0], torch.tensor(10.0, dtype=torch.float64))
    r = pair_report(a, b, steps=[10, 20, 30], epochs=[1, 2, 3], labels=["x", "y"])
    assert r["max_abs"] == 0.5
    assert r["max_abs_at"] == {"step": 20, "epoch": 2, "param": "y"}
    assert r["first_difference"] == {"step": 20, "epoch": 2, "param": "y"}
    assert r["max_ulp_at"]["param"] == "y"
