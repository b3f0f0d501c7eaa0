"""Data files: every good format loads, every bad file in tests/data_corpus/ is refused with one
line naming the file (and the line and column where there is one), through the real CLI too."""

import json
import math
import re
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import torchgd
from torchgd import data
from torchgd.errors import TorchgdError

CORPUS = Path(__file__).parent / "data_corpus"
GOOD = sorted(p.name for p in CORPUS.glob("good*"))
BAD = {
    "empty.csv": "holds no data rows",
    "header_only.csv": "holds no data rows",
    "ragged.csv": "line 3: 3 columns where the others have 2",
    "non_numeric.csv": "line 3, column 2: 'four' is not a number",
    "nan.csv": "line 3, column 1: nan is not a finite number",
    "inf.csv": "line 3, column 2: inf is not a finite number",
    "one_column.csv": "need at least two columns",
    "not_utf8.csv": "is not UTF-8 text",
    "one_d.npy": "need a 2-D array",
    "strings.npy": "must hold numbers",
    "objects.npy": "pickled objects are refused",
    "garbage.npy": "is not a valid .npy file",
    "missing_y.npz": "needs arrays named x and y (missing y",
    "length_mismatch.npz": "x has 3 samples but y has 2",
    "nan.npz": "x has a NaN or infinite value at sample 2",
    "y_2d.npz": "y 1-D, got shapes (2,) and (2, 1)",
    "list_y.pt": "'y' is a list; the file may hold only tensors",
    "extra_string.pt": "'note' is a str; the file may hold only tensors",
    "not_a_dict.pt": "must hold a dict with tensors 'x' and 'y'",
    "bool_y.pt": "y has dtype torch.bool, not numbers",
    "length_mismatch.pt": "x has 2 samples but y has 3",
    "truncated.pt": "it is truncated or not a torch file",
    "pickle_code.pt": "it holds Python objects, not only tensors",
}


def test_the_corpus_has_a_test_for_every_file():
    assert {p.name for p in CORPUS.iterdir()} == set(GOOD) | set(BAD)


@pytest.mark.parametrize("name", GOOD)
def test_good_files_load(name):
    d = data.load(str(CORPUS / name))
    assert d.y.dtype == torch.float64 and len(d) == 4
    if "features" in name:
        assert d.x.shape == (4, 3) and d.y.tolist() == [3.0, 4.0, 5.0, 6.0]
    else:  # the lecture's data in every format
        assert d.x.tolist() == [1.0, 2.0, 3.0, 4.0] and d.y.tolist() == [2.0, 4.0, 6.0, 8.0]


@pytest.mark.parametrize("name,message", sorted(BAD.items()))
def test_bad_files_are_refused_with_file_and_place(name, message):
    with pytest.raises(TorchgdError) as err:
        data.load(str(CORPUS / name))
    assert f"'{CORPUS / name}'" in str(err.value) and message in str(err.value)


@pytest.mark.parametrize("name", ["ragged.csv", "pickle_code.pt", "truncated.pt", "nan.npz"])
def test_bad_files_through_the_cli_are_one_line_exit_2(cli_once, tmp_path, name):
    proc = cli_once("train", "--data", CORPUS / name, "--logdir", tmp_path / "runs")
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert BAD[name] in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "runs").exists()


def test_missing_file_and_unknown_type(tmp_path):
    with pytest.raises(TorchgdError, match="does not exist"):
        data.get(str(tmp_path / "nope.csv"))
    (tmp_path / "d.xlsx").write_text("1,2")
    with pytest.raises(TorchgdError, match="unknown type '.xlsx'"):
        data.load(str(tmp_path / "d.xlsx"))


def test_the_lecture_from_a_csv_file_gives_the_lectures_numbers(main_cli, tmp_path):
    proc = main_cli(
        "train",
        "--data",
        CORPUS / "good_header.csv",
        "--batching",
        "sgd",
        "--json",
        "--logdir",
        tmp_path,
    )
    out = json.loads(proc.stdout)
    assert out["paths"]["optim"]["params"]["w"] == 1.9999999999999998


def _floats(row):
    try:
        return [float(c) for c in row]
    except ValueError:
        return None


cells = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.text(alphabet="0123456789.-e+abc ", max_size=6),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.lists(cells, min_size=1, max_size=4), max_size=6))
def test_csv_reader_loads_exactly_what_is_there_or_refuses_in_one_line(tmp_path_factory, rows):
    path = tmp_path_factory.mktemp("fuzz") / "f.csv"
    path.write_text("\n".join(",".join(r) for r in rows))
    try:
        d = data.load(str(path))
    except TorchgdError as exc:
        assert "\n" not in str(exc) and str(path) in str(exc)
        return
    kept = [r for r in rows if any(c.strip() for c in r)]
    parsed = [_floats(r) for r in kept]
    if parsed and parsed[0] is None:
        parsed = parsed[1:]  # a first row that is not numbers is a header
    # loaded: every row numeric, finite, equally wide (>= 2), and read exactly
    assert parsed and all(p is not None for p in parsed)
    assert all(math.isfinite(v) for p in parsed for v in p)
    assert d.y.tolist() == [p[-1] for p in parsed]
    x = d.x.reshape(len(parsed), -1).tolist()
    assert x == [p[:-1] for p in parsed]


def test_synthetic_data_records_its_true_weights_and_training_finds_them():
    r = torchgd.fit(
        "linear", "synthetic:256,d=3,seed=4", batching="minibatch:32", lr=0.05, epochs=40, bias=True
    )
    true = r.config["data_meta"]["true_w"]
    assert r.params()["w"] == pytest.approx(true, abs=1e-9)
    assert abs(r.params()["b"]) < 1e-9
    assert r.agreement["grad"]["max_rel"] < 1e-12 or r.agreement["grad"]["max_abs"] < 1e-14


def test_one_feature_synthetic_is_the_lectures_model():
    d = data.get("synthetic:10,seed=2")
    assert d.x.dim() == 1
    r = torchgd.fit("linear", d, batching="sgd", epochs=50, lr=0.05)
    assert r.params()["w"] == pytest.approx(d.meta["true_w"][0], rel=1e-9)


@pytest.mark.parametrize(
    "spec,message",
    [
        ("synthetic:", "bad data 'synthetic:'"),
        ("synthetic:0", "N and d must be >= 1"),
        ("synthetic:10,d=0", "N and d must be >= 1"),
        ("synthetic:10,k=3", "unknown option 'k=3'"),
        ("synthetic:10,noise=-1", "noise must be a finite number >= 0"),
    ],
)
def test_bad_synthetic_specs(spec, message):
    with pytest.raises(TorchgdError) as err:
        data.get(spec)
    assert message in str(err.value)


def test_many_features_pass_the_gradient_check():
    r = torchgd.check_gradients(torchgd.problems.Linear(bias=True), data="synthetic:64,d=4,noise=1")
    assert r["ok"] and r["gradcheck"] and r["analytic_vs_autograd"]["max_rel"] <= 1e-12


@pytest.mark.parametrize(
    "data,words",
    [
        (([1, 2], [[1, 2], [3, 4]]), "y must be one number per sample (1-D), got shape (2, 2)"),
        ((["a", "b"], [1, 2]), "x and y must be numbers"),
        (([1, 2, 3], [1, 2]), "equally long, got 3 and 2"),
        (([[[1.0]]], [1.0]), "x must be 1-D or rows of features (2-D)"),
    ],
)
def test_data_given_from_python_says_what_is_wrong_with_it(data, words):
    import torchgd

    with pytest.raises(torchgd.TorchgdError, match=re.escape(words)):
        torchgd.fit(data=data, epochs=1)


@pytest.mark.parametrize(
    "kwargs,words",
    [
        ({"epochs": -1}, "epochs= must be a whole number >= 1, got -1"),
        ({"init": "q=1"}, "init= names 'q', but problem 'linear' has parameters w"),
        ({"noise": -1.0}, "noise= must be a finite number >= 0"),
    ],
)
@pytest.mark.parametrize("call", ["fit", "plan"])
def test_python_errors_name_the_python_argument_not_the_flag(kwargs, words, call):
    import torchgd

    with pytest.raises(torchgd.TorchgdError) as caught:
        getattr(torchgd, call)(**kwargs)
    assert str(caught.value) == words or str(caught.value).startswith(words)
    assert "--" not in str(caught.value)
