"""Every figure renders without a display into a valid, non-blank image of the expected size."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

import torchgd
from torchgd import plots


def check_png(path, size):
    with Image.open(path) as im:
        im.verify()  # a valid PNG
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == size
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.std() > 10  # not blank: lines, text and fills
    assert (pixels < 128).mean() > 0.005  # some dark ink


@pytest.fixture(scope="module")
def lecture_sgd():
    return torchgd.fit("linear", "lecture", schedule="sgd", epochs=100).to_json()


def test_field_is_the_lectures_surface_and_quiver(tmp_path):
    check_png(plots.field(tmp_path / "field.png"), (1200, 500))


def test_cost_marks_each_paths_iterates(tmp_path, lecture_sgd):
    check_png(plots.cost(tmp_path / "cost.png", lecture_sgd), (800, 500))


def test_loss_uses_a_log_scale_across_decades(tmp_path, lecture_sgd):
    check_png(plots.loss(tmp_path / "loss.png", lecture_sgd), (800, 500))


def test_schedules_compares_batch_sgd_and_minibatch(tmp_path):
    check_png(plots.schedules(tmp_path / "s.png", epochs=10), (1200, 500))


@pytest.mark.parametrize("problem,lr", [("elliptic", 0.1), ("rosenbrock", 0.001), ("xcos", 2.0)])
def test_trajectory_draws_2d_and_1d_problems(tmp_path, problem, lr):
    summary = torchgd.fit(problem, epochs=20, lr=lr).to_json()
    check_png(plots.trajectory(tmp_path / "t.png", summary), (800, 500))


def test_smoothing_is_the_bias_corrected_moving_average():
    assert plots.smooth([4.0]) == [4.0]  # bias correction: the first value is itself
    s = plots.smooth([2.0, 4.0], beta=0.5)
    assert s == [2.0, (0.25 * 2.0 + 0.5 * 4.0) / 0.75]


@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_other_formats(tmp_path, fmt, magic):
    path = plots.field(tmp_path / f"field.{fmt}")
    assert path.read_bytes().startswith(magic)


def test_plot_command_from_a_saved_run(cli, main_cli, tmp_path):
    main_cli(
        "train",
        "--problem",
        "elliptic",
        "--lr",
        "0.1",
        "--epochs",
        "15",
        "--quiet",
        "--no-plots",
        "--logdir",
        tmp_path,
        "--name",
        "e",
    )
    proc = cli("plot", "trajectory", "--run", tmp_path / "e", "--out", tmp_path / "t.png")
    assert proc.returncode == 0, proc.stderr
    check_png(tmp_path / "t.png", (800, 500))
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["config"]["problem"] == "elliptic"


@pytest.mark.parametrize(
    "args,message",
    [
        (["cost", "--problem", "elliptic"], "plot cost needs a run of the linear model"),
        (["field", "--problem", "linear"], "plot field needs a 2-D function problem"),
        (["loss", "--run", "nowhere"], "cannot read run summary"),
    ],
)
def test_plot_bad_input_is_one_line_exit_2(main_cli, tmp_path, args, message):
    proc = main_cli("plot", *args)
    assert proc.returncode == 2 and message in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


def test_the_cost_curve_is_the_lectures_cost_without_a_grid_by_samples_tensor():
    from torchgd import data as datasets
    from torchgd import problems

    ds = datasets.synthetic(3_000_000, noise=0.5, seed=5)  # three chunks of a million
    curve = plots.cost_curve(ds.x, ds.y)
    lin = problems.Linear()
    for w in (-3.0, 0.0, ds.meta["true_w"][0], 4.0):
        exact = lin.loss({"w": torch.tensor(w, dtype=torch.float64)}, ds.x, ds.y).item()
        assert curve(torch.tensor([w], dtype=torch.float64)).item() == pytest.approx(
            exact, rel=1e-9
        )
