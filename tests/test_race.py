"""`torchgd plot race`: every update rule from the same start, each at the lr of one shared grid
whose run ends lowest. The figure's claims are checked on the returned Figure against runs made
independently with `torchgd.fit`; the command is run as a user runs it."""

import math

import numpy as np
import pytest
from PIL import Image

import torchgd
from torchgd import plots, rules


def grid() -> list[float]:
    from torchgd import options

    return options.parse_lrs(plots.RACE_LRS, log=True)


def labelled(ax, start: str):
    return [line for line in ax.get_lines() if line.get_label().startswith(start)]


def final_loss(lr, *, spelling, problem="rosenbrock", optimizer="adam", steps=plots.RACE_STEPS):
    r = torchgd.fit(problem, None, optimizer=optimizer, lr=lr, epochs=steps, paths=("manual",),
                    spelling=spelling, guard=False)  # fmt: skip
    return r


@pytest.fixture(scope="module")
def default():
    return plots.race()


RACED = [n for n, m in rules.ALL.items() if getattr(m, "LANES", True)]  # a sweep runs them


def test_the_default_figure_has_a_row_per_problem_and_a_line_per_rule_in_each_panel(default):
    assert tuple(default.get_size_inches()) == (12, 10)
    left = ", ".join(n for n in rules.ALL if n not in RACED)
    assert left == "adafactor, lbfgs"
    assert f"({left}: no sweep lanes, not raced)" in " ".join(default._suptitle.get_text().split())
    assert len(default.axes) == 4
    for row, (problem, start) in enumerate((("elliptic", (-5, -2)), ("rosenbrock", (-1.2, 1)))):
        contours, losses = default.axes[2 * row : 2 * row + 2]
        assert contours.get_title().startswith(problem)
        for name in RACED:
            (path,) = labelled(contours, f"{name} (lr ")
            (curve,) = labelled(losses, f"{name} (lr ")
            assert path.get_color() == curve.get_color()  # one colour per rule
            assert len(path.get_xdata()) == plots.RACE_STEPS + 1  # the start, then every step
            assert len(curve.get_xdata()) == plots.RACE_STEPS
            assert (path.get_xdata()[0], path.get_ydata()[0]) == start
        colors = {labelled(contours, f"{n} (lr ")[0].get_color() for n in RACED}
        assert len(colors) == len(RACED)
        (mark,) = labelled(contours, "start (")
        assert (mark.get_xdata()[0], mark.get_ydata()[0]) == start
        (minimum,) = labelled(contours, "minimum (")
        p = torchgd.problems.get(problem)
        assert (minimum.get_xdata()[0], minimum.get_ydata()[0]) == p.minimum
        assert losses.get_yscale() == "log"  # both races fall by decades


def test_the_chosen_lr_is_the_grids_best_by_final_loss(default):
    """Adam on Rosenbrock: its lr in the legend is the grid's lowest final loss, found again
    with one fit per lr; the curve drawn is the torch-exact run at that lr, bit for bit."""
    lrs = grid()
    finals = [
        final_loss(lr, spelling="textbook").paths["manual"]["history"]["loss"][-1] for lr in lrs
    ]
    finite = [i for i, f in enumerate(finals) if math.isfinite(f)]
    best = min(finite, key=lambda i: (finals[i], i))
    assert 0 < best < len(lrs) - 1  # inside the grid: the neighbours lost
    contours, losses = default.axes[2:]
    (curve,) = labelled(losses, "adam (lr ")
    assert curve.get_label().startswith(f"adam (lr {plots.num(lrs[best], '.3g')}): ")
    (path,) = labelled(contours, "adam (lr ")
    assert path.get_label() == f"adam (lr {plots.num(lrs[best], '.3g')})"
    drawn = final_loss(lrs[best], spelling="torch-exact").paths["manual"]["history"]
    assert list(curve.get_ydata()) == drawn["loss"]
    assert list(path.get_xdata()[1:]) == drawn["x"] and list(path.get_ydata()[1:]) == drawn["y"]


def test_the_winner_is_the_first_to_reach_the_minimum_and_stay(default):
    """On the elliptic bowl several rules reach f(0, 0) = 0 to 12 digits of the way down
    from f(-5, -2) = 33 (losses of 1e-300 and 1e-290 are the same minimum in float64's terms):
    the first to get there and stay wins. On Rosenbrock none gets there in 300 steps: the
    lowest at the end wins (Adam)."""
    floor = 33 * 1e-12
    losses = default.axes[1]
    settled = {}
    for line in losses.get_lines():
        if " (lr " not in line.get_label():
            continue
        y = np.asarray(line.get_ydata())
        above = np.nonzero(y > floor)[0]
        if len(above) < len(y):  # settles after its last loss above the floor
            settled[line.get_label().split(" ")[0]] = int(line.get_xdata()[above[-1] + 1])
    assert len(settled) >= 3  # several rules reach the minimum: a tie on the final loss
    winner = min(settled, key=settled.get)
    (star,) = labelled(losses, "first at the minimum: ")
    assert star.get_label() == f"first at the minimum: {winner}"
    assert star.get_xdata()[0] == settled[winner]
    title = " ".join(losses.get_title().split())
    assert f"first at the minimum: {winner}, at step {settled[winner]}" in title
    (dotted,) = labelled(losses, "the minimum, to 12 digits")
    assert dotted.get_ydata()[0] == pytest.approx(floor, rel=1e-12)
    assert losses.get_ylim()[0] == pytest.approx(floor / 10, rel=1e-12)  # no axis to 1e-302
    drawn = [y for line in losses.get_lines() if " (lr " in line.get_label()
             for y in line.get_ydata() if y >= floor]  # fmt: skip
    assert losses.get_ylim()[1] == pytest.approx(10 * max(drawn))  # no empty decades on top
    rosenbrock = default.axes[3]
    finals = {
        line.get_label().split(" ")[0]: line.get_ydata()[-1]
        for line in rosenbrock.get_lines()
        if " (lr " in line.get_label()
    }
    assert not labelled(rosenbrock, "the minimum, to 12 digits")  # nobody got there
    lowest = min(y for line in rosenbrock.get_lines() if " (lr " in line.get_label()
                 for y in line.get_ydata())  # fmt: skip
    assert rosenbrock.get_ylim()[0] == pytest.approx(lowest / 10)  # no axis down to 1e-11
    (star,) = labelled(rosenbrock, "lowest at the end: ")
    assert (
        star.get_label()
        == "lowest at the end: adam"
        == f"lowest at the end: {min(finals, key=finals.get)}"
    )


def test_a_run_that_reaches_the_minimum_and_leaves_it_has_not_reached_it():
    assert plots.settled_at([5.0, 1e-20, 1.0, 1e-20, 1e-30], 1e-12) == 3
    assert plots.settled_at([5.0, 1e-20, 1.0], 1e-12) is None
    assert plots.settled_at([1e-20, None, 1e-20], 1e-12) == 2


def test_a_rule_diverging_at_every_lr_is_named_so_and_nothing_drawn():
    """SGD at lr 10 and 100 on Rosenbrock overflows (checked with fit); Adam's steps stay about
    lr long: it stays finite and is drawn at the grid's bottom."""
    for lr in (10, 100):
        r = final_loss(lr, spelling="torch-exact", optimizer="sgd", steps=50)
        assert not math.isfinite(r.paths["manual"]["history"]["loss"][-1])
    fig = plots.race("rosenbrock", lrs=[10, 100], steps=50, optimizers=["sgd", "adam"])
    contours, losses = fig.axes
    for ax in fig.axes:
        (sgd,) = labelled(ax, "sgd")
        assert sgd.get_label() == "sgd: diverged at every lr of the grid"
        assert len(sgd.get_xdata()) == 0
        (adam,) = labelled(ax, "adam (lr 10, bottom of the grid)")
        assert len(adam.get_xdata()) > 0 and np.isfinite(adam.get_ydata()).all()
    assert tuple(fig.get_size_inches()) == (12, 5)


def test_a_loss_within_two_decades_keeps_a_linear_axis_and_the_grids_edge_is_named():
    fig = plots.race(["elliptic"], lrs=[1e-4, 2e-4], steps=3, optimizers=["sgd"])
    losses = fig.axes[1]
    (curve,) = labelled(losses, "sgd (lr 0.0002, top of the grid): ")
    assert losses.get_yscale() == "linear"
    assert curve.get_ydata()[0] == 33.0  # f(-5, -2) = 25 + 2 * 4


def test_a_scheduled_race_runs_each_lane_on_its_own_schedule_and_says_so():
    """With a scheduler every lane of the grid starts it from its own lr; the curve drawn is
    the single run at the lr chosen, with that scheduler (here cosine decay to 0)."""
    spec = "cosine:T_max=40"
    fig = plots.race(["elliptic"], lrs=[0.01, 0.1, 0.3], steps=40, optimizers=["sgd", "adam"],
                     scheduler=spec)  # fmt: skip
    title = " ".join(fig._suptitle.get_text().split())
    assert "the lr scheduled by cosine:T_max=40,eta_min=0.0" in title
    (curve,) = labelled(fig.axes[1], "adam (lr 0.3")
    run = torchgd.fit("elliptic", optimizer="adam", lr=0.3, epochs=40, scheduler=spec,
                      guard=False, paths=("manual",), spelling="torch-exact")  # fmt: skip
    unscheduled = torchgd.fit("elliptic", optimizer="adam", lr=0.3, epochs=40, guard=False,
                              paths=("manual",), spelling="torch-exact")  # fmt: skip
    assert list(curve.get_ydata()) == run.history["manual"]["loss"]
    assert run.history["manual"]["loss"] != unscheduled.history["manual"]["loss"]


def test_a_lane_that_ends_above_its_start_is_not_a_racer():
    """1e70 is finite, but a run that ends there has not raced: a rule whose every lane ends
    above its start is drawn as diverged."""
    from torchgd.racing import best_lane as _best_lane

    report = {"final_loss": [1e70, 3.0], "params": {"x": [1.0, 1.0]},
              "history": {"loss": [[24.2, 1e70], [24.2, 3.0]]}}  # fmt: skip
    assert _best_lane(report) == 1
    report["history"]["loss"][1][-1] = report["final_loss"][1] = 30.0
    assert _best_lane(report) is None


def test_the_command_writes_a_png_from_another_directory(cli, tmp_path):
    where = tmp_path / "elsewhere"
    (where / "figs").mkdir(parents=True)
    proc = cli(
        "plot", "race", "--out", "figs/race.png", "--steps", "60", "--lr", "0.01:1:3", cwd=where
    )  # fmt: skip  (the default grid and steps: test_the_default_figure...)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "figs/race.png" and proc.stderr == ""
    with Image.open(where / "figs" / "race.png") as im:
        assert im.format == "PNG" and im.size == (1200, 1000)
        pixels = np.asarray(im.convert("L"), dtype=float)
    assert pixels.std() > 10 and (pixels < 128).mean() > 0.005  # drawn, not blank


def test_a_data_problem_is_one_line_and_exit_2_in_a_real_process(cli, tmp_path):
    proc = cli("plot", "race", "--problem", "elliptic,linear")
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith(
        "torchgd plot: error: plot race needs 2-D function problems, not 'linear' (e.g. "
    )
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args,message",
    [
        (["--problem", "linear"], "plot race needs 2-D function problems, not 'linear'"),
        (["--problem", "square"], "plot race needs 2-D function problems, not 'square'"),
        (["--problem", "nosuch"], "unknown problem 'nosuch'"),
        (["--problem", "elliptic,"], "give problems separated by commas"),
        (["--lr", "0.1"], "--lr 0.1: plot race takes START:STOP:K"),
        (["--lr", "1:0.1:5"], "--lr 1:0.1:5: plot race takes START:STOP:K"),
        (["--lr", "0:1:5"], "--lr 0:1:5: plot race takes START:STOP:K"),
        (["--lr", "0.1:1:1"], "--lr 0.1:1:1: plot race takes START:STOP:K"),
        (["--steps", "0"], "--steps must be a whole number >= 1, got 0"),
        (["--epochs", "0"], "--epochs must be a whole number >= 1, got 0"),
        (["--epochs", "5", "--steps", "5"], "give --epochs or --steps, not both"),
        (["--init", "z=1"], "--init names 'z', but problem 'elliptic' has parameters x, y"),
        (["--data", "lecture"], "plot race does not take --data (it takes --problem, --lr, "),
        (["--seed", "1"], "plot race does not take --seed"),
        (["--noise", "0.1"], "plot race does not take --noise"),
        (["--batching", "sgd"], "plot race does not take --batching"),
        (["--run", "."], "plot race draws no saved run: --run does not apply"),
        (["--out", "missing/race.png"], "directory 'missing' does not exist"),
        (["--scheduler", "onecycle:max_lr=0.1,total_steps=300"], "sets the lr from its own"),
        (["--scheduler", "cosine:T_max=x"], "T_max"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(main_cli, tmp_path, args, message):
    proc = main_cli("plot", "race", *args)
    assert proc.returncode == 2 and proc.stderr.startswith("torchgd plot: error: ")
    assert message in proc.stderr and len(proc.stderr.splitlines()) == 1
    assert not list(tmp_path.iterdir())


def test_steps_is_a_race_option_only(main_cli, tmp_path):
    proc = main_cli("plot", "trajectory", "--steps", "5")
    assert proc.returncode == 2 and "plot trajectory does not take --steps" in proc.stderr
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    "kwargs,message",
    [
        (dict(problems=["linear"]), "needs 2-D function problems, not 'linear'"),
        (dict(lrs=[0.1]), "at least two increasing positive learning rates"),
        (dict(lrs=[0.1, 0.01]), "at least two increasing positive learning rates"),
        (dict(optimizers=["nope"]), "unknown optimizer 'nope'"),
        (dict(steps=0), "a whole number of steps >= 1, got 0"),
        (dict(path="race.jpg"), "name it with one of the suffixes"),
    ],
)
def test_the_function_refuses_bad_arguments_before_running(kwargs, message):
    with pytest.raises(torchgd.TorchgdError, match=message.replace("(", r"\(")):
        plots.race(**kwargs)


@pytest.mark.parametrize(
    "problem,message",
    [
        ("", "give problems separated by commas"),
        ("ravine,ravine", "takes each problem once"),
        ("saddle", "needs a function with a minimum to race to; 'saddle' has none"),
    ],
)
def test_a_race_needs_distinct_problems_with_a_minimum(main_cli, tmp_path, problem, message):
    proc = main_cli(
        "plot", "race", "--problem", problem, "--steps", "5", "--out", tmp_path / "r.png"
    )
    assert proc.returncode == 2 and message in proc.stderr
    assert not (tmp_path / "r.png").exists()
