"""TensorBoard output, read back with TensorBoard's own reader and its own server."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request

import numpy as np
import processes
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c as tb_masked_crc32c
from tensorboard.util import tensor_util
from torch.utils.tensorboard import summary as torch_summary

import torchgd
from torchgd.callbacks.tensorboard import TensorBoard, default_log_every
from torchgd.events import ScalarEncoder, masked_crc32c

PATHS = ("manual", "autograd", "optim")


def step_tags(path):
    """The per-step tags of one path of the lecture's model (``w`` only)."""
    return (f"loss/raw/{path}", f"loss/log10/{path}", f"loss/smoothed/{path}", f"params/w/{path}",
            f"update/grad/w/{path}", f"update/lr/{path}")  # fmt: skip


def read(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"scalars": 0, "tensors": 0, "images": 0})
    acc.Reload()
    return acc


def series(acc, tag):
    """(step, value) of a scalar tag, as TensorBoard's classic reader gives them."""
    return [(e.step, e.value) for e in acc.Scalars(tag)]


def f32(values):
    """What TensorBoard holds for float64 values: their float32 roundings (inf beyond range)."""
    with np.errstate(over="ignore"):
        return [float(np.float32(v)) for v in values]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=40))
def test_checksums_match_tensorboards_own(chunks):
    assert [masked_crc32c(c) for c in chunks] == [tb_masked_crc32c(c) for c in chunks]


@given(st.integers(0, 2**40), st.floats(allow_nan=False), st.floats(0, 2e9))
def test_hand_encoded_scalar_events_are_the_events_summarywriter_writes(step, value, wall):
    """The bytes parse as the Event that torch's own ``add_scalar`` builds (simple_value,
    float32), for every float: out-of-range values become +-inf as numpy rounds them."""
    enc = ScalarEncoder()
    for _ in range(2):  # a tag's first event and later ones (cached prefix) alike
        ev = event_pb2.Event.FromString(enc.event(step, wall, [("a/b", value), ("c", -value)]))
        expected = event_pb2.Event(wall_time=wall, step=step)
        for tag, v in (("a/b", value), ("c", -value)):
            expected.summary.value.extend(torch_summary.scalar(tag, f32([v])[0]).value)
        assert ev == expected
        assert [v.simple_value for v in ev.summary.value] == f32([value, -value])


def test_every_tag_of_every_path_equals_the_json_history(main_cli, tmp_path):
    proc = main_cli(
        "train",
        "--batching",
        "sgd",
        "--epochs",
        "30",
        "--json",
        "--logdir",
        tmp_path,
        "--name",
        "r",
    )
    out = json.loads(proc.stdout)
    acc = read(tmp_path / "r")  # one training, one TensorBoard run
    tags = set(acc.Tags()["scalars"])
    # the lecture's own gradient at each step, in Python floats
    w, grads = 1.0, []
    for _ in range(30):
        for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
            grads.append(2 * x * (x * w - y))
            w = w - 0.01 * grads[-1]
    for path in PATHS:
        assert set(step_tags(path)) | {f"per epoch/loss/{path}", f"per epoch/w/{path}"} <= tags
        for tag in step_tags(path):
            assert [s for s, _ in series(acc, tag)] == list(range(1, 121))  # every step, once
        hist = out["paths"][path]["history"]
        assert [v for _, v in series(acc, f"per epoch/loss/{path}")] == f32(hist["loss"])
        assert [v for _, v in series(acc, f"per epoch/w/{path}")] == f32(hist["w"])
        # after the last sample of each epoch the per-step w is the epoch's w
        per_step = series(acc, f"params/w/{path}")
        assert [v for s, v in per_step if s % 4 == 0] == f32(hist["w"])
        assert {v for _, v in series(acc, f"update/lr/{path}")} == set(f32([0.01]))
        assert [v for _, v in series(acc, f"update/grad/w/{path}")] == f32(grads)
    final = out["paths"]["manual"]
    assert series(acc, "result/loss") == [(120, f32([final["loss"]])[0])]
    assert series(acc, "result/max ulp") == [(120, 0.0)]
    assert {v for _, v in series(acc, "ulp/params between paths")} == {0.0}
    assert {v for _, v in series(acc, "ulp/grad vs formula")} == {0.0}
    assert len(acc.Images("plots/loss")) == 1 and len(acc.Images("plots/cost")) == 1
    assert len(acc.Tensors("config")) == 1  # the config once per training


def test_the_custom_scalars_layout_draws_every_path_on_shared_charts(tmp_path):
    """Each chart of the layout matches the same series of every path (so identical paths
    are one line, and the ulp chart beside them says they are identical)."""
    import re

    from tensorboard.plugins.custom_scalar import layout_pb2

    torchgd.fit("linear", "lecture", batching="sgd", epochs=3, logdir=tmp_path, name="c",
                plots=False)  # fmt: skip
    acc = read(tmp_path / "c")
    proto = tensor_util.make_ndarray(acc.Tensors("custom_scalars__config__")[0].tensor_proto)
    layout = layout_pb2.Layout.FromString(proto.item())
    tags = acc.Tags()["scalars"]
    main, more = layout.category
    assert not main.closed and more.closed  # the paths open, the details folded
    charts = {c.title: c.multiline.tag[0] for cat in layout.category for c in cat.chart}
    matched = {title: sorted(t for t in tags if re.search(rx, t)) for title, rx in charts.items()}
    assert matched["loss of every path, log10"] == sorted(f"loss/log10/{p}" for p in PATHS)
    assert matched["parameters of every path"] == sorted(f"params/w/{p}" for p in PATHS)
    assert matched["lr of every path"] == sorted(f"update/lr/{p}" for p in PATHS)
    assert matched["ulp: parameters between paths, gradient vs the formula"] == [
        "ulp/grad vs formula",
        "ulp/params between paths",
    ]
    assert matched["loss of every path, per step"] == sorted(f"loss/raw/{p}" for p in PATHS)
    assert all(matched.values())


def test_the_log10_loss_is_the_loss_in_decades(tmp_path):
    """log10 of the float64 loss (then rounded to float32); -inf where the loss is exactly 0."""
    from torchgd.callbacks.tensorboard import _log10

    r = torchgd.fit("linear", "lecture", batching="sgd", epochs=3, logdir=tmp_path, name="l",
                    plots=False, history="steps")  # fmt: skip
    acc = read(tmp_path / "l")
    logged = [v for _, v in series(acc, "loss/log10/manual")]
    assert logged == f32([np.log10(v) for v in r.history["manual"]["steps"]["loss"]])
    assert _log10(0.0) == -np.inf and np.isnan(_log10(np.nan))


def test_smoothed_loss_is_the_bias_corrected_moving_average(tmp_path):
    from torchgd.callbacks import Callback

    class Losses(Callback):  # the float64 per-step losses the EMA is computed from
        def __init__(self):
            self.raw = []

        def on_step(self, step):
            self.raw.append(step.record.losses[0])

    tb, losses = TensorBoard(tmp_path, lr=0.01, total_steps=40, smoothing=0.5), Losses()
    torchgd.fit(
        "linear", "lecture", batching="sgd", epochs=10, paths=("manual",), callbacks=[tb, losses]
    )
    acc = read(tmp_path)
    assert [v for _, v in series(acc, "loss/raw/manual")] == f32(losses.raw)
    s, expected = 0.0, []
    for t, v in enumerate(losses.raw, start=1):
        s = 0.5 * s + 0.5 * v
        expected.append(s / (1 - 0.5**t))
    assert [v for _, v in series(acc, "loss/smoothed/manual")] == f32(expected)


def test_log_every_sets_the_cadence_and_logging_changes_no_result(tmp_path):
    plain = torchgd.fit("linear", "lecture", batching="sgd", epochs=25).to_json()
    tb = TensorBoard(tmp_path / "a", total_steps=100, log_every=7)
    logged = torchgd.fit("linear", "lecture", batching="sgd", epochs=25, callbacks=[tb])
    assert logged.to_json() == plain
    steps = [s for s, _ in series(read(tmp_path / "a"), "loss/raw/manual")]
    assert steps == [*range(7, 100, 7), 100]  # every 7th, and the last
    # without total_steps: the cadence still ends on the last step
    tb = TensorBoard(tmp_path / "b", log_every=7)
    torchgd.fit("linear", "lecture", batching="sgd", epochs=25, callbacks=[tb])
    assert [s for s, _ in series(read(tmp_path / "b"), "loss/raw/manual")] == steps
    assert default_log_every(9_999) == 1 and default_log_every(100_000) == 20


def test_config_goes_in_as_text_and_hparams(main_cli, tmp_path):
    main_cli(
        "train", "--lr", "0.02", "--epochs", "3", "--quiet", "--logdir", tmp_path, "--name", "h"
    )
    acc = read(tmp_path / "h")
    text = tensor_util.make_ndarray(acc.Tensors("config")[0].tensor_proto).item().decode()
    assert '"lr": 0.02' in text
    meta = acc.SummaryMetadata("_hparams_/session_start_info")
    assert meta.plugin_data.plugin_name == "hparams"
    assert b"optim" in meta.plugin_data.content  # the paths are an hparam


def test_hparams_trials_lead_with_what_tells_them_apart():
    from torchgd.callbacks.tensorboard import trial_name

    assert trial_name("lecture-20261204-101500/batch") == "batch (lecture-20261204-101500)"
    assert trial_name("my-run") == "my-run"


def test_sigint_keeps_every_event_logged_before_it(tmp_path):
    proc = processes.start(
        [
            "train",
            "--batching",
            "sgd",
            "--epochs",
            "1000000",
            "--paths",
            "manual",
            "--no-plots",
            "--log-every",
            "1",
            "--logdir",
            str(tmp_path),
            "--name",
            "int",
        ]
    )
    run = tmp_path / "int"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until events reach the disk, then interrupt
        files = list(run.glob("events.out.tfevents.*")) if run.exists() else []
        if files and files[0].stat().st_size > 20_000:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert len(err.strip().splitlines()) == 1 and "interrupted" in err and "Traceback" not in err
    acc = read(run)
    steps = [s for s, _ in series(acc, "loss/raw/manual")]
    assert len(steps) > 100 and steps == list(range(1, len(steps) + 1))  # none missing
    summary = json.loads((tmp_path / "int" / "summary.json").read_text())
    assert summary["status"] == "interrupted"
    assert summary["steps"] >= len(steps)  # every logged step is a finished step


def _get(url, body=None):
    data = None if body is None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json"} if body is not None else {}
    with urllib.request.urlopen(urllib.request.Request(url, data, headers), timeout=10) as r:
        return json.loads(r.read())


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _scalars(base, run, tag):
    q = urllib.parse.urlencode({"run": run, "tag": tag})
    return _get(f"{base}/data/plugin/scalars/scalars?{q}")


def _wait_for_scalars(base, proc, runs, tag="result/loss", timeout=90):
    """Until every run's ``tag`` is served (run names alone appear before any scalar is read)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.stderr.read()
        try:
            tags = _get(f"{base}/data/plugin/scalars/tags")
            if all(tag in tags.get(run, {}) for run in runs):
                return tags
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"TensorBoard served no '{tag}' for {runs} within {timeout} s")


def _stop(proc):
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture(scope="module")
def two_runs(tmp_path_factory):
    """Two finished runs in ./runs, as ``torchgd train`` leaves them for a user."""
    from conftest import run_cli

    home = tmp_path_factory.mktemp("user")
    for name, extra in (("sgd5", ["--batching", "sgd"]), ("lr02", ["--lr", "0.02"])):
        proc = run_cli(
            "train", *extra, "--epochs", "5", "--quiet", "--no-plots", "--name", name, cwd=home
        )
        assert proc.returncode == 0, proc.stderr
    return home


@pytest.fixture(scope="module")
def plain_tensorboard(two_runs):
    """``tensorboard --logdir runs`` as everyone types it: default loader (the data server),
    default host; only a free port, so that tests can run side by side."""
    port = _free_port()
    exe = os.path.join(os.path.dirname(sys.executable), "tensorboard")
    proc = subprocess.Popen(
        [exe, "--logdir", "runs", "--port", str(port)],
        cwd=two_runs,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://localhost:{port}"
    try:
        _wait_for_scalars(base, proc, ["sgd5", "lr02"])
        yield base
    finally:
        _stop(proc)


def test_plain_tensorboard_serves_every_scalar_at_float32(plain_tensorboard, two_runs):
    base = plain_tensorboard
    tags = _get(f"{base}/data/plugin/scalars/tags")
    assert set(tags) == {"sgd5", "lr02"}  # one TensorBoard run per training
    for run in ("sgd5", "lr02"):
        summary = json.loads((two_runs / "runs" / run / "summary.json").read_text())
        steps = summary["steps"]
        for path in PATHS:
            assert set(step_tags(path)) | {f"per epoch/loss/{path}", "result/loss"} <= set(
                tags[run]
            )
            hist = summary["paths"][path]["history"]
            for tag, key in ((f"per epoch/w/{path}", "w"), (f"per epoch/loss/{path}", "loss")):
                points = _scalars(base, run, tag)
                assert [p[1] for p in points] == [1, 2, 3, 4, 5]
                assert [p[2] for p in points] == f32(hist[key])
            raw = _scalars(base, run, f"loss/raw/{path}")
            assert [p[1] for p in raw] == list(range(1, steps + 1))  # every step, once
        assert {"ulp/params between paths", "ulp/grad vs formula"} <= set(tags[run])


def test_the_dashboard_opens_on_loss_and_parameters(plain_tensorboard):
    """TensorBoard's Time Series tab groups cards by the tag's first part and opens the first
    two groups in sorted order (its frontend: ``groupName = tag.split("/")[0]``, expand
    ``groups.slice(0, 2)``): here those are the loss and the parameters."""
    tags = _get(f"{plain_tensorboard}/data/plugin/scalars/tags")
    images = _get(f"{plain_tensorboard}/data/plugin/images/tags")
    every = {t for run in (tags, images) for per_run in run.values() for t in per_run}
    groups = sorted({t.split("/", 1)[0] for t in every})
    assert groups[:2] == ["loss", "params"]


def test_plain_tensorboard_serves_the_custom_scalars_layout(plain_tensorboard, two_runs):
    base = f"{plain_tensorboard}/data/plugin/custom_scalars"
    layout = _get(f"{base}/layout")  # merged over the runs: each chart once
    titles = [c["title"] for cat in layout["category"] for c in cat["chart"]]
    assert len(titles) == len(set(titles)) and "parameters of every path" in titles
    chart = next(
        c for cat in layout["category"] for c in cat["chart"] if c["title"] == "lr of every path"
    )
    q = urllib.parse.urlencode({"run": "lr02", "tag": chart["multiline"]["tag"][0]})
    served = _get(f"{base}/scalars?{q}")["tag_to_events"]
    assert sorted(served) == sorted(f"update/lr/{p}" for p in PATHS)
    assert {p[2] for series in served.values() for p in series} == set(f32([0.02]))


def test_hparams_tab_names_trials_by_run_and_sorts_them_by_final_loss(plain_tensorboard, two_runs):
    base = f"{plain_tensorboard}/data/plugin/hparams"
    experiment = _get(f"{base}/experiment", {"experimentName": "", "includeMetrics": True})
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"result/loss", "result/max ulp", "loss/raw/optim"} <= metrics
    assert {h["name"] for h in experiment["hparamInfos"]} >= {"lr", "batching", "paths"}
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"metric": {"tag": "result/loss", "group": ""}, "order": "ORDER_ASC"}],
        "startIndex": 0,
        "sliceSize": 100,
    }
    groups = _get(f"{base}/session_groups", request)["sessionGroups"]
    assert sorted(g["name"] for g in groups) == ["lr02", "sgd5"]

    def final(group, tag):
        return next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == tag)

    losses = [final(g, "result/loss") for g in groups]
    assert losses == sorted(losses)  # sorted by result, as asked
    for g in groups:
        summary = json.loads((two_runs / "runs" / g["name"] / "summary.json").read_text())
        assert final(g, "result/loss") == f32([summary["paths"]["manual"]["loss"]])[0]
        assert final(g, "per epoch/loss/optim") == f32([summary["paths"]["optim"]["loss"]])[0]
        assert final(g, "result/max ulp") == summary["agreement"]["max_ulp"]
        assert json.loads(g["hparams"]["paths"]) == list(PATHS)
        assert g["sessions"][0]["status"] == "STATUS_SUCCESS"


def test_torchgd_tb_serves_the_same_scalars_on_loopback(two_runs):
    proc = processes.start(["tb", "--port", "0"], cwd=two_runs)
    try:
        first = proc.stdout.readline()
        assert "http://127.0.0.1:" in first and "/?smoothing=0 " in first  # steps as logged
        base = "http://" + first.split("http://")[1].split("/")[0]
        _wait_for_scalars(base, proc, ["sgd5"])
        summary = json.loads((two_runs / "runs" / "sgd5" / "summary.json").read_text())
        points = _scalars(base, "sgd5", "per epoch/w/optim")
        assert [p[2] for p in points] == f32(summary["paths"]["optim"]["history"]["w"])
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port), timeout=5):
            pass  # bound to loopback
    finally:
        _stop(proc)
    assert proc.returncode == 0


def test_tb_on_a_missing_directory_is_one_line_exit_2(cli, tmp_path):
    proc = cli("tb", tmp_path / "nothing")
    assert proc.returncode == 2 and "does not exist" in proc.stderr
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize(
    "args,message",
    [
        (["--log-every", "0"], "--log-every must be a whole number >= 1"),
        (["--smoothing", "1"], "--smoothing must be in [0, 1)"),
    ],
)
def test_bad_logging_options_are_one_line_exit_2(cli_once, tmp_path, args, message):
    proc = cli_once("train", *args, "--logdir", tmp_path)
    assert proc.returncode == 2 and message in proc.stderr


def test_a_torn_last_record_is_cut_and_every_whole_event_kept(tmp_path):
    from torchgd.events import EventFile, trim_after

    f = EventFile(tmp_path)
    for step in range(1, 6):
        f.add(event_pb2.Event(step=step, wall_time=1.0))
    f.close()
    whole = f.path.read_bytes()
    last = len(event_pb2.Event(step=5, wall_time=1.0).SerializeToString()) + 16
    for cut in range(1, last):  # killed anywhere inside the last record
        f.path.write_bytes(whole[:-cut])
        assert trim_after(f.path) == last - cut
        assert f.path.read_bytes() == whole[:-last]
    f.path.write_bytes(whole)
    assert trim_after(f.path) == 0 and f.path.read_bytes() == whole
    # events after a checkpoint's step go; the file version and steps up to it stay
    assert trim_after(f.path, 3) == 2 * last
    loaded = list(EventFileLoader(str(f.path)).Load())
    assert [e.step for e in loaded] == [0, 1, 2, 3] and loaded[0].file_version


def test_tb_on_a_busy_port_is_one_line_exit_2_before_any_address(cli, tmp_path):
    (tmp_path / "runs").mkdir()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = cli("tb", "--port", port)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.strip() == (
        f"torchgd tb: error: port {port} is in use; choose another --port (0: any free one)"
    )
