"""Figures: each claim checked on the returned Figure (its axes, lines, markers and title), the
files checked to be valid images of the expected size, and `torchgd plot`'s options."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from PIL import Image

import torchgd
from conftest import ROOT
from torchgd import plots
from torchgd.errors import TorchgdError


def check_png(path, size):
    with Image.open(path) as im:
        im.verify()  # a valid PNG
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == size
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.std() > 10  # not blank: lines, text and fills
    assert (pixels < 128).mean() > 0.005  # some dark ink


def title(ax) -> str:
    """The title's text, its wrapped lines joined by spaces."""
    return " ".join(ax.get_title().split())


def labelled(ax, start: str):
    """The lines of ``ax`` whose legend label starts with ``start``."""
    return [line for line in ax.get_lines() if line.get_label().startswith(start)]


def raw_lines(ax):
    return [line for line in ax.get_lines() if "smoothed" not in line.get_label()]


def summary_with(losses: dict, problem="linear") -> dict:
    """A hand-made run summary: one loss series per path, nothing else needed by ``loss``."""
    n = len(next(iter(losses.values())))
    config = {"problem": problem, "data": "lecture", "batching": "batch", "lr": 0.01, "epochs": n}
    paths = {p: {"history": {"loss": list(v)}} for p, v in losses.items()}
    return {"config": config, "status": "completed", "epochs": n, "paths": paths}


@pytest.fixture(scope="module")
def lecture_sgd():
    return torchgd.fit("linear", "lecture", batching="sgd", epochs=100).to_json()


@pytest.fixture(scope="module")
def noisy_minibatch():
    return torchgd.fit(
        "linear", "synthetic:200,noise=0.5,seed=1", batching="minibatch:8", epochs=40,
        paths=("manual",),
    ).to_json()  # fmt: skip


def test_field_is_the_lectures_surface_and_quiver(tmp_path):
    fig = plots.field(path=tmp_path / "field.png")
    surface, arrows = fig.axes
    assert surface.name == "3d" and surface.collections  # the surface
    assert title(surface) == "f = x^2 + y^2 (the lecture's first section)"
    (quiver,) = arrows.collections
    assert type(quiver).__name__ == "Quiver"
    u = np.asarray(quiver.U)  # the numerical gradient 2x on the lecture's grid, in [-2, 2]
    assert np.allclose(u, 2 * np.asarray(quiver.X), atol=1e-6)
    check_png(tmp_path / "field.png", (1200, 500))


def test_cost_marks_each_paths_iterates(tmp_path, lecture_sgd):
    fig = plots.cost(lecture_sgd, path=tmp_path / "cost.png")
    (ax,) = fig.axes
    for p in ("manual", "autograd", "optim"):
        (line,) = labelled(ax, f"{p}:")
        assert line.get_marker() == plots.MARKERS[p] and line.get_linestyle() == "None"
        w = [1.0, *lecture_sgd["paths"][p]["history"]["w"]]  # the start, then each epoch
        assert list(line.get_xdata()) == w
    assert "(same as manual)" in labelled(ax, "optim:")[0].get_label()
    assert title(ax) == "cost(w): lecture data, sgd, lr=0.01, 100 epochs"
    check_png(tmp_path / "cost.png", (800, 500))


def test_loss_uses_a_log_scale_across_decades(lecture_sgd):
    assert plots.loss(lecture_sgd).axes[0].get_yscale() == "log"  # 4 down to 8e-31
    ax = plots.loss(summary_with({"manual": [3.0, 2.0, 1.0]})).axes[0]
    assert ax.get_yscale() == "linear"  # within two decades
    assert ax.get_ylabel() == "loss"


def test_loss_draws_identical_paths_once_and_says_so(lecture_sgd):
    (ax,) = plots.loss(lecture_sgd).axes
    (line,) = ax.get_lines()  # bit-identical losses: one line, not three on top of each other
    assert line.get_label() == "manual = autograd = optim (identical)"
    assert list(line.get_ydata()) == lecture_sgd["paths"]["manual"]["history"]["loss"]
    assert "manual, autograd, optim: the same loss at every epoch, bit for bit" in title(ax)
    assert title(ax).startswith("loss per epoch: linear, lecture data, sgd, lr=0.01, 100 epochs")


def test_loss_draws_one_line_per_path_where_they_differ():
    # float32 batch GD on the lecture: torch.optim.SGD rounds differently from the formula
    r = torchgd.fit("linear", "lecture", epochs=100, dtype="float32").to_json()
    (ax,) = plots.loss(r).axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0] == "manual = autograd (identical)"
    assert labels[1].startswith("optim, differs from manual = autograd by up to ")
    assert "float32" in title(ax) and "2 different losses among 3 paths" in title(ax)
    three = summary_with({"manual": [3, 2, 1], "autograd": [3, 2, 1.5], "optim": [3, 2.5, 1]})
    lines = plots.loss(three).axes[0].get_lines()
    assert [line.get_label().split(",")[0] for line in lines] == ["manual", "autograd", "optim"]
    assert len({line.get_linestyle() for line in lines}) == 3  # each visible over the others


def test_loss_smooths_a_noisy_loss_under_the_raw_one(noisy_minibatch, lecture_sgd):
    (ax,) = plots.loss(noisy_minibatch).axes
    raw, smoothed = ax.get_lines()
    assert (raw.get_label(), smoothed.get_label()) == (
        "manual",
        "manual: smoothed (beta=0.9: about the last 10 epochs, so it lags)",
    )
    assert raw.get_alpha() in (None, 1)  # the raw loss drawn in full, on top
    assert smoothed.get_zorder() < raw.get_zorder()
    assert smoothed.get_linewidth() < raw.get_linewidth() and smoothed.get_alpha() < 1
    loss = noisy_minibatch["paths"]["manual"]["history"]["loss"]
    assert list(smoothed.get_ydata()) == plots.smooth(loss, 0.9)
    # a loss that only falls gets no smoothed curve (it would lag above it); beta=None: never
    assert not labelled(plots.loss(lecture_sgd).axes[0], "smoothed")
    assert len(plots.loss(noisy_minibatch, beta=None).axes[0].get_lines()) == 1


def test_batchings_compares_batch_sgd_and_minibatch(tmp_path):
    fig = plots.batchings(epochs=60, path=tmp_path / "s.png")
    by_epoch, by_samples = fig.axes
    for ax in fig.axes:
        assert ax.get_yscale() == "log"
        assert [line.get_label().split(":")[0] for line in ax.get_lines()] == [
            "batch",
            "sgd",
            "minibatch",
        ]
    epochs = list(range(1, 61))
    assert list(by_epoch.get_lines()[0].get_xdata()) == epochs
    # against the updates made: batch once an epoch, sgd 4 times, minibatch:2 twice (the
    # right panel is not the left one stretched)
    for line, per_epoch in zip(by_samples.get_lines(), (1, 4, 2)):
        assert list(line.get_xdata()) == [per_epoch * e for e in epochs]
    assert by_samples.get_lines()[1].get_label() == "sgd: 4 updates per epoch"
    assert by_samples.get_xlabel() == "updates of w (steps)"
    # the cost summed directly: SGD reaches 1e-30, no floor of cancellation near 1e-14
    assert min(by_epoch.get_lines()[1].get_ydata()) < 1e-28
    check_png(tmp_path / "s.png", (1200, 500))


def test_batchings_with_a_large_lr_shows_what_ran():
    (ax, _) = plots.batchings(lr=0.5, epochs=10).axes
    labels = [line.get_label() for line in ax.get_lines()]
    assert labels[0] == "batch (diverged at epoch 6)"
    # lr 0.5 on x = 1 lands on w = 2 exactly: a cost of 0, which a log axis cannot show
    assert labels[1] == "sgd (cost exactly 0 from epoch 1: below a log axis)"
    assert len(ax.get_lines()[0].get_xdata()) == 6


@pytest.mark.parametrize(
    "problem,lr,start",
    [("elliptic", 0.1, "x=-5, y=-2"), ("rosenbrock", 0.001, "x=-1.2, y=1"), ("xcos", 2.0, "x=10")],
)
def test_trajectory_draws_each_paths_iterates(tmp_path, problem, lr, start):
    summary = torchgd.fit(problem, epochs=20, lr=lr).to_json()
    (ax,) = plots.trajectory(summary, path=tmp_path / "t.png").axes
    for p in ("manual", "autograd", "optim"):
        (line,) = labelled(ax, p)
        assert line.get_marker() == plots.MARKERS[p] and len(line.get_xdata()) == 21
    assert title(ax).startswith(f"{problem}: gradient descent from {start}, lr={lr:g}, 20 steps")
    assert "{" not in title(ax)
    check_png(tmp_path / "t.png", (800, 500))


def test_the_saddle_figure_names_the_noise_that_made_it_escape():
    r = torchgd.fit("saddle", init={"x": -3.0, "y": 0.0}, lr=0.1, epochs=75, noise=1e-4)
    (ax,) = plots.trajectory(r).axes
    assert "gradient noise sigma=0.0001 (seed 0)" in title(ax)
    y = labelled(ax, "manual")[0].get_ydata()
    assert y[0] == 0 and abs(y[-1]) > 1  # started on the stable axis, escaped
    quiet = torchgd.fit("saddle", init={"x": -3.0, "y": 0.0}, lr=0.1, epochs=75)
    assert "noise" not in title(plots.trajectory(quiet).axes[0])


@pytest.mark.parametrize("start,end_f", [(3.0, -6.978), (-3.0, -1.191)])
def test_the_xcos_figure_marks_the_minima_it_compares(start, end_f):
    r = torchgd.fit("xcos", init={"x": start}, lr=0.3, epochs=200, paths=("manual",))
    (ax,) = plots.trajectory(r).axes
    (minima,) = labelled(ax, "local minima of f in view")
    f = [round(v, 3) for v in minima.get_ydata()]
    assert f == [-1.191, -6.978]  # the one from -3 is caught in, the better one from 3 finds
    assert f"f(x)={end_f}" in title(ax)
    # and the view says the better one is not the lowest: f falls further at its edge
    assert "f is lower still at the edge of the view (f(-13) = -12.8)" in title(ax)


def test_sweep_figure(tmp_path):
    from torchgd.sweep import parse_lrs, sweep

    report = sweep("linear", "lecture", lrs=parse_lrs("0.01:0.3:8"), epochs=30)
    fig = plots.sweep(report, path=tmp_path / "sweep.png")
    left, right = fig.axes
    assert left.get_xscale() == "log" and left.get_yscale() == "log"
    assert (
        fig.get_suptitle()
        == "sweep: linear, lecture data, batch, 8 lrs from 0.01 to 0.3, 30 epochs"
    )
    assert labelled(right, "too large")
    check_png(tmp_path / "sweep.png", (1200, 500))


def test_a_figure_is_returned_and_saved_only_when_asked(tmp_path, monkeypatch, lecture_sgd):
    monkeypatch.chdir(tmp_path)
    fig = plots.loss(lecture_sgd)
    assert isinstance(fig, Figure) and not list(tmp_path.iterdir())
    assert fig._repr_png_().startswith(b"\x89PNG")  # a notebook shows it
    assert plots.loss(lecture_sgd, path="loss.png") is not None
    check_png(tmp_path / "loss.png", (800, 500))
    result = torchgd.fit("linear", "lecture", batching="sgd", epochs=100)  # a Result will do
    assert plots.loss(result).axes[0].get_title() == fig.axes[0].get_title()


@pytest.mark.parametrize("fmt,magic", [("svg", b"<?xml"), ("pdf", b"%PDF")])
def test_other_formats(tmp_path, fmt, magic):
    plots.field(path=tmp_path / f"field.{fmt}")
    assert (tmp_path / f"field.{fmt}").read_bytes().startswith(magic)


@pytest.mark.parametrize(
    "name,message",
    [("missing/f.png", "directory '{tmp}/missing' does not exist"), ("f.jpg", "suffixes .png")],
)
def test_saving_to_a_bad_path_is_refused_before_drawing(tmp_path, name, message):
    with pytest.raises(TorchgdError, match="cannot save a figure") as info:
        plots.field(path=tmp_path / name)
    assert message.format(tmp=tmp_path) in str(info.value)


def test_importing_plots_keeps_the_backend_and_pyplot_out():
    code = (
        "import sys, matplotlib, torchgd\n"
        "from torchgd import plots\n"
        "fig = plots.field()\n"
        "assert 'matplotlib.pyplot' not in sys.modules\n"  # no pyplot: no figure registry
        "print(matplotlib.get_backend())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "svg"}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "svg"


def test_the_public_api_is_listed_by_dir_and_help():
    code = (
        "import sys, torchgd\n"
        "names = dir(torchgd)\n"
        "assert 'torch' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "print(' '.join(names))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    names = proc.stdout.split()
    for name in ("fit", "plan", "execute", "Result", "check_gradients", "plots", "problems"):
        assert name in names
    assert not [n for n in names if n.startswith("_") and not n.startswith("__")]  # no internals
    import pydoc

    text = pydoc.render_doc(torchgd, renderer=pydoc.plaintext)
    for line in ("fit(problem='linear', data=None", "class Result", "plots"):
        assert line in text


def test_result_repr_is_one_short_line():
    r = torchgd.fit("linear", "lecture", batching="sgd", epochs=100)
    assert repr(r) == (
        "Result(completed: linear, lecture data, sgd, lr=0.01, 100 epochs; "
        "manual: w=1.9999999999999998; "
        "3 paths agree bit for bit)"
    )
    wide = torchgd.fit("linear", "synthetic:50,d=5", epochs=3, bias=True)
    assert "\n" not in repr(wide) and len(repr(wide)) < 150 and "w=[5 values]" in repr(wide)


def test_plot_command_from_a_saved_run(cli, main_cli, tmp_path):
    main_cli(
        "train", "--problem", "elliptic", "--lr", "0.1", "--epochs", "15", "--quiet",
        "--no-plots", "--no-tensorboard", "--logdir", tmp_path, "--name", "e",
    )  # fmt: skip
    proc = cli("plot", "trajectory", "--run", tmp_path / "e", "--out", tmp_path / "t.png")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == f"{tmp_path / 't.png'}\n"
    check_png(tmp_path / "t.png", (800, 500))
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["config"]["problem"] == "elliptic"


@pytest.fixture
def figures(monkeypatch):
    """The figures `torchgd plot` draws, by kind."""
    drawn = {}

    def spy(kind, draw):
        def _draw(*args, **kw):
            drawn[kind] = draw(*args, **kw)
            return drawn[kind]

        return _draw

    for kind in ("field", "cost", "loss", "batchings", "trajectory", "sweep", "schedule"):
        monkeypatch.setattr(plots, kind, spy(kind, getattr(plots, kind)))
    return drawn


def test_plot_uses_trains_defaults_and_says_so(main_cli, tmp_path, figures):
    proc = main_cli("plot", "loss")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "loss.png\n" and (tmp_path / "loss.png").exists()
    assert title(figures["loss"].axes[0]).startswith(
        "loss per epoch: linear, lecture data, batch, lr=0.01, 100 epochs"
    )
    assert main_cli("plot", "trajectory").returncode == 0
    assert "elliptic: gradient descent from x=-5, y=-2, lr=0.01, 100 steps" in title(
        figures["trajectory"].axes[0]
    )


def test_a_fresh_runs_bias_is_drawn_where_the_kind_takes_it(main_cli, figures):
    data = ("--data", "synthetic:40,d=2,noise=0.3,seed=2", "--bias", "--epochs", "20")
    assert main_cli("plot", "loss", *data, "--lr", "0.1").returncode == 0
    assert "synthetic:40,d=2,noise=0.3,seed=2 data, batch, with a bias, lr=0.1" in title(
        figures["loss"].axes[0]
    )
    assert main_cli("plot", "sweep", *data, "--lr", "0.01:0.5:4").returncode == 0
    assert "with a bias, 4 lrs" in figures["sweep"].texts[0].get_text()
    proc = main_cli("plot", "schedule", *data, "--scheduler", "cosine:T_max=20")
    assert proc.returncode == 0, proc.stderr
    assert "seed=2 data, batch, with a bias, lr 0.01 scheduled" in title(
        figures["schedule"].axes[0]
    )
    proc = main_cli("plot", "cost", "--bias", "--lr", "0.05", "--epochs", "20")  # one feature
    assert proc.returncode == 0, proc.stderr
    (ax,) = figures["cost"].axes
    assert title(ax).startswith("cost(w, b): lecture data, batch, with a bias, lr=0.05")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("w", "b")
    proc = main_cli("plot", "trajectory", "--bias")  # a function problem: no b to fit
    assert proc.returncode == 2 and "plot trajectory does not take --bias" in proc.stderr


def test_plot_batchings_with_a_large_lr_does_not_crash(main_cli, tmp_path):
    proc = main_cli("plot", "batchings", "--lr", "0.5", "--epochs", "10", "--out", tmp_path)
    assert proc.returncode == 0, proc.stderr
    check_png(tmp_path / "batchings.png", (1200, 500))


def test_plot_of_a_noisy_saddle_run(main_cli, figures):
    proc = main_cli(
        "plot", "trajectory", "--problem", "saddle", "--init", "x=-3,y=0", "--lr", "0.1",
        "--epochs", "75", "--noise", "1e-4", "--seed", "1", "--out", "saddle.svg",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "gradient noise sigma=0.0001 (seed 1)" in title(figures["trajectory"].axes[0])


def test_every_plot_kind_honours_or_refuses_run(main_cli, tmp_path, figures):
    common = ("--quiet", "--no-plots", "--no-tensorboard", "--logdir", tmp_path)
    main_cli("train", "--epochs", "5", "--name", "lin", *common)
    main_cli(
        "train", "--problem", "square", "--epochs", "5", "--lr", "0.2", "--name", "sq", *common
    )
    main_cli("sweep", "--lr", "0.01:0.3:4", "--epochs", "5", "--name", "sw", "--quiet",
             "--no-plots", "--logdir", tmp_path)  # fmt: skip
    runs = {"cost": "lin", "loss": "lin", "trajectory": "sq", "sweep": "sw"}
    for kind, run in runs.items():
        proc = main_cli("plot", kind, "--run", tmp_path / run, "--out", tmp_path / f"{kind}.png")
        assert proc.returncode == 0, (kind, proc.stderr)
    assert "lr=0.2, 5 steps" in title(figures["trajectory"].axes[0])  # the saved run's
    for kind in ("field", "batchings"):
        proc = main_cli("plot", kind, "--run", tmp_path / "lin")
        assert proc.returncode == 2 and f"plot {kind} draws no saved run" in proc.stderr
    proc = main_cli("plot", "loss", "--run", tmp_path / "sw")
    assert proc.returncode == 2 and "holds no single run" in proc.stderr


@pytest.mark.parametrize(
    "args,message",
    [
        (["cost", "--problem", "elliptic"], "plot cost needs a run of the linear model"),
        (["field", "--problem", "linear"], "plot field needs a 2-D function problem"),
        (["loss", "--run", "nowhere"], "cannot read run summary"),
        (["loss", "--lr", "0"], "--lr must be a finite number > 0, got 0"),
        (["batchings", "--lr", "0"], "--lr must be a finite number > 0, got 0"),
        (["loss", "--lr", "nan"], "--lr must be a finite number > 0, got nan"),
        (["loss", "--lr", "inf"], "--lr must be a finite number > 0, got inf"),
        (["loss", "--epochs", "0"], "--epochs must be a whole number >= 1, got 0"),
        (["sweep", "--lr", "0.1"], "--lr for sweep is START:STOP:K"),
        (["loss", "--out", "missing/loss.png"], "directory 'missing' does not exist"),
        (["loss", "--format", "svg", "--out", "x.png"], "--format svg but --out x.png"),
        (["loss", "--out", "x.jpg"], "name the file .png, .svg or .pdf"),
        (["loss", "--batching", "fast"], "unknown batching 'fast'"),
        (["loss", "--noise", "-1"], "--noise must be a finite number >= 0"),
        (["field", "--lr", "0.1"], "plot field does not take --lr"),
        (["trajectory", "--data", "lecture"], "plot trajectory does not take --data"),
        (["loss", "--run", ".", "--lr", "0.1"], "--lr describes a fresh run"),
        (["field", "--run", "."], "plot field draws no saved run: --run does not apply"),
        (["loss", "--init", "q=1"], "--init names 'q', but problem 'linear' has parameters w"),
        (["schedule", "--scheduler", "cosine"], "--scheduler cosine: CosineAnnealingLR needs"),
    ],
)
def test_plot_bad_input_is_one_line_exit_2(main_cli, tmp_path, args, message):
    proc = main_cli("plot", *args)
    assert proc.returncode == 2 and proc.stderr.startswith("torchgd plot: error: ")
    assert message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing drawn, nothing written


def test_the_cost_curve_is_the_lectures_cost_without_a_grid_by_samples_tensor():
    from torchgd import data as datasets
    from torchgd import problems

    ds = datasets.synthetic(3_000_000, noise=0.5, seed=5)  # three chunks of a million
    curve = plots.cost_curve(*datasets.moments(ds.x, ds.y)[:3])
    lin = problems.Linear()
    for w in (-3.0, 0.0, ds.meta["true_w"][0], 4.0):
        exact = lin.loss({"w": torch.tensor(w, dtype=torch.float64)}, ds.x, ds.y).item()
        assert curve(torch.tensor([w], dtype=torch.float64)).item() == pytest.approx(
            exact, rel=1e-9
        )


def test_smoothing_is_the_bias_corrected_moving_average():
    assert plots.smooth([4.0]) == [4.0]  # bias correction: the first value is itself
    s = plots.smooth([2.0, 4.0], beta=0.5)
    assert s == [2.0, (0.25 * 2.0 + 0.5 * 4.0) / 0.75]


def test_long_titles_are_wrapped_inside_the_figure(tmp_path):
    name = "a_rather_long_measurement_file_name_from_the_lab_2024.csv"
    rows = [f"{i},{2 * i + 0.1 * (-1) ** i}" for i in range(1, 21)]
    (tmp_path / name).write_text("x,y\n" + "\n".join(rows) + "\n")
    ds = str(tmp_path / name)
    r = torchgd.fit("linear", ds, batching="minibatch:4", lr=0.001, epochs=5, noise=0.001)
    for fig in (plots.loss(r), plots.cost(r), plots.batchings(ds, lr=0.001, epochs=5)):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        renderer = FigureCanvasAgg(fig).get_renderer()
        fig.draw(renderer)
        for ax in fig.axes:
            box = ax.title.get_window_extent(renderer)
            assert 0 <= box.x0 and box.x1 <= fig.bbox.width, ax.get_title()


def test_a_users_parameter_names_label_the_trajectory_and_field_axes():
    import torchgd
    from torchgd.problems import FunctionProblem

    bowl = FunctionProblem(
        "bowl", ("a", "b"), f=lambda a, b: a**2 + 3 * b**2, df=lambda a, b: (2 * a, 6 * b),
        start={"a": 1.0, "b": -1.0},
    )  # fmt: skip
    r = torchgd.fit(bowl, epochs=5, optimizer="adam", lr=0.1)
    ax = plots.trajectory(r).axes[0]
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("a", "b")
    assert "adam" in ax.get_title()


def test_a_loss_spanning_decades_is_smoothed_in_log_space():
    """minibatch:2 on the lecture (shuffled) wiggles between 1e-28 and 1e-33 near the end; a
    linear average there is ruled by its largest values, decades above the rest. The curve drawn
    is 10 ** (the lecture's average of log10(loss)), inside the raw loss's own range."""
    r = torchgd.fit("linear", "lecture", batching="minibatch:2", epochs=100, paths=("manual",))
    (ax,) = plots.loss(r).axes
    raw, smoothed = ax.get_lines()
    assert ax.get_yscale() == "log" and "in log space" in smoothed.get_label()
    loss = np.asarray(raw.get_ydata())
    logs = np.log10(loss)
    s, expected = 0.0, []
    for t, v in enumerate(logs, start=1):  # the lecture's bias-corrected average, by hand
        s = 0.9 * s + 0.1 * v
        expected.append(10 ** (s / (1 - 0.9**t)))
    assert np.allclose(smoothed.get_ydata(), expected, rtol=1e-12)
    tail = slice(-20, None)
    assert loss[tail].min() <= smoothed.get_ydata()[-1] <= loss[tail].max()
    linear = plots.smooth(list(loss), 0.9)[-1]
    assert linear / smoothed.get_ydata()[-1] > 100  # what a linear average would have drawn


def test_titles_break_between_phrases_and_legends_sit_below_the_axes(lecture_sgd):
    assert plots.wrap_phrases("loss per epoch: linear, lecture data, sgd, lr=0.01", 30) == [
        "loss per epoch: linear,",
        "lecture data, sgd, lr=0.01",
    ]
    noisy = torchgd.fit("linear", "lecture", batching="sgd", epochs=5, noise=0.01).to_json()
    source = [f"loss per epoch: linear, {plots.describe(noisy)}",
              "manual, autograd, optim: the same loss at every epoch, bit for bit"]  # fmt: skip
    phrases = [re.split(r"(?<=[,:;]) ", line) for line in source]
    shown = plots.loss(noisy).axes[0].get_title().split("\n")
    assert len(shown) > len(source)  # wrapped: the description is longer than a line
    regrouped, at = [], 0
    for parts in phrases:  # each shown line is whole phrases of one source line
        i = 0
        while i < len(parts):
            line = shown[at]
            n = next(k for k in range(1, len(parts) - i + 1) if " ".join(parts[i : i + k]) == line)
            regrouped.append(line)
            i, at = i + n, at + 1
    assert regrouped == shown
    for fig in (plots.loss(noisy), plots.cost(lecture_sgd), plots.trajectory(
            torchgd.fit("elliptic", epochs=5, lr=0.1).to_json())):  # fmt: skip
        (ax,) = fig.axes
        FigureCanvasAgg(fig).draw()  # laid out as savefig lays it out
        legend = ax.get_legend().get_window_extent()
        assert legend.y1 < ax.get_window_extent().y0  # under the axes: it covers nothing
        assert legend.y0 >= 0  # and inside the figure
    (surface, arrows) = plots.field().axes
    assert arrows.get_legend() is None  # nothing over the arrows


def test_cost_of_a_bias_run_is_contours_over_w_and_b_with_the_least_squares_minimum():
    import csv

    rows = list(csv.reader(open(ROOT / "examples" / "hours.csv")))[1:]
    x, y = np.array([[float(a), float(b)] for a, b in rows]).T
    r = torchgd.fit("linear", str(ROOT / "examples" / "hours.csv"), bias=True, lr=0.001,
                    epochs=50).to_json()  # fmt: skip
    (ax,) = plots.cost(r).axes
    assert title(ax).startswith("cost(w, b): hours.csv data, batch, with a bias, lr=0.001")
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("w", "b") and ax.collections  # contours
    (best,) = labelled(ax, "least-squares minimum")
    w, b = np.linalg.lstsq(np.stack([x, np.ones_like(x)], 1), y, rcond=None)[0]
    assert best.get_xdata()[0] == pytest.approx(w, rel=1e-9)
    assert best.get_ydata()[0] == pytest.approx(b, rel=1e-9)
    (manual,) = labelled(ax, "manual:")
    hist = r["paths"]["manual"]["history"]
    assert list(manual.get_xdata()) == [1.0, *hist["w"]]
    assert list(manual.get_ydata()) == [0.0, *hist["b"]]
    # plot trajectory of the same run is this figure (it refused linear runs before)
    assert title(plots.trajectory(r).axes[0]) == title(ax)


def test_function_figures_count_steps_and_mark_the_minimum():
    r = torchgd.fit("rosenbrock", epochs=300, lr=0.001).to_json()
    (ax,) = plots.loss(r).axes
    assert ax.get_xlabel() == "step" and title(ax).startswith("loss per step: rosenbrock")
    (ax,) = plots.trajectory(r).axes
    (star,) = labelled(ax, "minimum (x=1, y=1)")
    assert (star.get_xdata()[0], star.get_ydata()[0]) == (1.0, 1.0)
    (contours,) = ax.collections
    assert min(contours.levels) < 1  # the valley has lines: log-spaced levels reach down
    gone = torchgd.fit("rosenbrock", epochs=100, lr=0.01).to_json()  # diverges to 1e78
    (ax,) = plots.trajectory(gone).axes
    assert ax.get_xlim()[1] < 100 and ax.get_ylim()[1] < 100  # the view stays on the valley
    (ax,) = plots.trajectory(torchgd.fit("square", epochs=100).to_json()).axes
    (star,) = labelled(ax, "the minimum: f(0) = 0")  # not "local", and not cut off
    assert not labelled(ax, "local minima")
    assert ax.get_ylim()[0] < star.get_ydata()[0]
    (ax,) = plots.cost(torchgd.fit(batching="sgd", epochs=3).to_json()).axes
    assert labelled(ax, "manual: w at the start and after each epoch")


def test_the_sweeps_telling_curves_draw_each_lane_once_with_every_name_it_earned():
    # with a bias on the lecture's data the best-rate lane is the last that converges: it is
    # "good" and "near critical" at once, one curve (two hid each other)
    r = torchgd.sweep.sweep(lrs=torch.linspace(0.01, 0.3, 30).tolist(), bias=True)
    (_, curves) = plots.sweep(r).axes
    labels = [line.get_label() for line in curves.get_lines()]
    lrs = [label.rpartition("lr=")[2] for label in labels]
    assert len(set(lrs)) == len(lrs)  # no lane twice
    names = [name for label in labels for name in label.partition(":")[0].split(", ")]
    assert sorted(names) == ["good", "near critical", "too large", "too small"]
    assert any(label.startswith("good, near critical: lr=") for label in labels), labels
