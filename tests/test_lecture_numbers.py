"""The lecture's printed numbers, by every path alone and all together, in both dtypes."""

import pytest

import torchgd
from torchgd.train import PATH_NAMES

LECTURE_SGD_W = 1.9999999999999998
LECTURE_SGD_LOSS = 7.888609052210118e-31
LECTURE_BATCH_W = 2 - 0.85**100  # the error shrinks by |1 - 2*lr*mean(x^2)| = 0.85 per epoch


def lecture_sgd_in_plain_python():
    """The lecture's own code, verbatim in spirit: Python floats, no torch."""
    w = 1.0
    for _ in range(100):
        for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
            w = w - 0.01 * (2 * x * (x * w - y))
        loss = (x * w - y) ** 2
    return w, loss


def course_batch_in_plain_python():
    w, xs, ys = 1.0, [1.0, 2.0, 3.0], [2.0, 4.0, 6.0]
    for _ in range(100):
        grad = 0
        for x, y in zip(xs, ys):
            grad += 2 * x * (x * w - y)
        w = w - 0.01 * (grad / len(xs))
    return w


def test_plain_python_reference_prints_the_lectures_numbers():
    assert lecture_sgd_in_plain_python() == (LECTURE_SGD_W, LECTURE_SGD_LOSS)
    assert LECTURE_BATCH_W == 1.9999999125232637
    assert course_batch_in_plain_python() == 1.9999444396553017


@pytest.mark.parametrize("paths", [(p,) for p in PATH_NAMES] + [PATH_NAMES])
def test_sgd_reproduces_the_lecture_bit_for_bit(paths):
    r = torchgd.fit("linear", "lecture", batching="sgd", lr=0.01, epochs=100, paths=paths)
    for p in paths:
        assert r.paths[p]["params"]["w"] == LECTURE_SGD_W
        assert r.paths[p]["loss"] == LECTURE_SGD_LOSS
        assert len(r.paths[p]["history"]["loss"]) == 100
    assert r.agreement["max_ulp"] == 0
    assert r.steps == 400


@pytest.mark.parametrize("paths", [(p,) for p in PATH_NAMES] + [PATH_NAMES])
def test_batch_reproduces_two_minus_085_to_the_100(paths):
    r = torchgd.fit("linear", "lecture", batching="batch", lr=0.01, epochs=100, paths=paths)
    for p in paths:
        assert r.paths[p]["params"]["w"] == LECTURE_BATCH_W
    assert r.agreement["max_ulp"] == 0
    assert r.steps == 100


def test_batch_loss_is_the_cost_before_the_update():
    r = torchgd.fit("linear", "lecture", batching="batch", epochs=3, paths=("manual",))
    h = r.paths["manual"]["history"]
    # before the first update w = 1: cost = mean((x - 2x)^2) = mean(x^2) = 7.5
    assert h["loss"][0] == 7.5
    w1 = h["w"][0]
    assert h["loss"][1] == sum((x * w1 - 2 * x) ** 2 for x in [1.0, 2.0, 3.0, 4.0]) / 4


def test_course_data_batch_matches_the_course_code():
    r = torchgd.fit("linear", "course", batching="batch", lr=0.01, epochs=100)
    for p in PATH_NAMES:
        assert r.paths[p]["params"]["w"] == course_batch_in_plain_python() == 1.9999444396553017


@pytest.mark.parametrize("batching", ["batch", "sgd", "minibatch:3"])
def test_float32_every_path_within_1e6_of_2_and_differences_reported(batching):
    r = torchgd.fit("linear", "lecture", batching=batching, lr=0.01, epochs=200, dtype="float32")
    for p in PATH_NAMES:
        assert abs(r.paths[p]["params"]["w"] - 2) <= 1e-6
    ref = r.agreement["float64_reference"]
    assert set(ref) == set(PATH_NAMES)
    assert any(reason["kind"] == "dtype" for reason in r.agreement["reasons"])
    assert all(v["max_abs"] > 0 for v in ref.values())  # float32 is not float64, and it says so


@pytest.mark.parametrize("batching", ["batch", "sgd", "minibatch:1", "minibatch:4"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_float64_lecture_runs_of_every_schedule_agree_across_paths(batching, shuffle):
    r = torchgd.fit("linear", "lecture", batching=batching, shuffle=shuffle, seed=7, epochs=100)
    assert r.agreement["max_ulp"] == 0
    assert r.agreement["grad"]["max_ulp"] == 0
    assert r.agreement["reasons"] == []
    assert abs(r.params()["w"] - 2) < 1e-6


def test_minibatch_of_two_differs_only_by_update_rounding_which_torch_exact_removes():
    textbook = torchgd.fit("linear", "lecture", batching="minibatch:2", epochs=100)
    a = textbook.agreement
    assert a["grad"]["max_ulp"] == 0 and a["params"]["manual~autograd"]["max_ulp"] == 0
    assert a["params"]["manual~optim"]["max_ulp"] > 0
    assert {r["kind"] for r in a["reasons"]} == {"update rule"}
    exact = torchgd.fit(
        "linear", "lecture", batching="minibatch:2", epochs=100, spelling="torch-exact"
    )
    assert exact.agreement["max_ulp"] == 0 and exact.agreement["bit_identical"]


def test_minibatch_of_three_gradients_differ_by_the_rounded_one_third():
    r = torchgd.fit("linear", "lecture", batching="minibatch:3", epochs=100, spelling="torch-exact")
    grad_reasons = [x for x in r.agreement["reasons"] if x["kind"] == "gradient"]
    assert r.agreement["grad"]["max_ulp"] > 0
    assert "1/N is not exact in binary for N = 3" in grad_reasons[0]["reason"]


def test_minibatch_steps_per_epoch_include_a_smaller_last_batch():
    r = torchgd.fit("linear", "lecture", batching="minibatch:3", epochs=5)
    assert r.steps == 10  # 4 samples in batches of 3 and 1


def test_shuffled_runs_repeat_with_the_same_seed_and_differ_with_another():
    def w(seed):
        return torchgd.fit(
            "linear",
            "lecture",
            batching="sgd",
            shuffle=True,
            seed=seed,
            epochs=3,
            paths=("manual",),
        ).paths["manual"]["history"]["w"]

    assert w(1) == w(1)
    assert w(1) != w(2)


def test_history_steps_keeps_every_step_as_the_lectures_loop_computes_it():
    """history="steps": per step the sample's loss before the update, w after it and the
    gradient used, equal to the lecture's SGD loop in Python floats."""
    result = torchgd.fit("linear", "lecture", batching="sgd", epochs=3, history="steps")
    w, expected = 1.0, {"loss": [], "w": [], "grad": []}
    for _ in range(3):
        for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
            expected["loss"].append((x * w - y) ** 2)
            expected["grad"].append(2 * x * (x * w - y))
            w = w - 0.01 * expected["grad"][-1]
            expected["w"].append(w)
    for path in ("manual", "autograd", "optim"):
        steps = result.history[path]["steps"]
        assert steps["step"] == list(range(1, 13)) and steps["epoch"] == [1] * 4 + [2] * 4 + [3] * 4
        assert steps["loss"] == expected["loss"] and steps["w"] == expected["w"]
        assert steps["grad"]["w"] == expected["grad"]
        assert len(result.history[path]["loss"]) == 3  # the epochs' history as before
