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
from conftest import ROOT
from torchgd.callbacks.tensorboard import TensorBoard, default_log_every
from torchgd.events import ScalarEncoder, masked_crc32c

PATHS = ("manual", "autograd", "optim")
STEP_TAGS = ("loss/raw", "loss/smoothed", "lr", "params/w", "grad/w")


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


def test_every_tag_of_every_path_equals_the_json_history(cli, tmp_path):
    proc = cli(
        "train",
        "--schedule",
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
    run = tmp_path / "r"
    for path in PATHS:
        acc = read(run / path)
        tags = set(acc.Tags()["scalars"])
        assert set(STEP_TAGS) | {"epoch/loss", "epoch/params/w"} <= tags
        for tag in STEP_TAGS:
            assert [s for s, _ in series(acc, tag)] == list(range(1, 121))  # every step, once
        hist = out["paths"][path]["history"]
        assert [v for _, v in series(acc, "epoch/loss")] == f32(hist["loss"])
        assert [v for _, v in series(acc, "epoch/params/w")] == f32(hist["w"])
        # after the last sample of each epoch the per-step w is the epoch's w
        assert [v for s, v in series(acc, "params/w") if s % 4 == 0] == f32(hist["w"])
        assert {v for _, v in series(acc, "lr")} == set(f32([0.01]))
        # the lecture's own gradient at each step, in Python floats
        w, grads = 1.0, []
        for _ in range(30):
            for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
                grads.append(2 * x * (x * w - y))
                w = w - 0.01 * grads[-1]
        assert [v for _, v in series(acc, "grad/w")] == f32(grads)
        final = out["paths"][path]
        assert series(acc, "final/loss") == [(120, f32([final["loss"]])[0])]
        assert series(acc, "final/params/w") == [(120, f32([final["params"]["w"]])[0])]
        assert series(acc, "final/agreement_max_ulp") == [(120, 0.0)]
    compare = read(run / "compare")
    assert {v for _, v in series(compare, "agreement/params_max_ulp")} == {0.0}
    assert {v for _, v in series(compare, "agreement/grad_max_ulp")} == {0.0}
    assert len(compare.Images("figures/loss")) == 1 and len(compare.Images("figures/cost")) == 1


def test_smoothed_loss_is_the_bias_corrected_moving_average(tmp_path):
    from torchgd.callbacks import Callback

    class Losses(Callback):  # the float64 per-step losses the EMA is computed from
        def __init__(self):
            self.raw = []

        def on_step(self, step):
            self.raw.append(step.record.losses[0])

    tb, losses = TensorBoard(tmp_path, lr=0.01, total_steps=40, smoothing=0.5), Losses()
    torchgd.fit(
        "linear", "lecture", schedule="sgd", epochs=10, paths=("manual",), callbacks=[tb, losses]
    )
    acc = read(tmp_path / "manual")
    assert [v for _, v in series(acc, "loss/raw")] == f32(losses.raw)
    s, expected = 0.0, []
    for t, v in enumerate(losses.raw, start=1):
        s = 0.5 * s + 0.5 * v
        expected.append(s / (1 - 0.5**t))
    assert [v for _, v in series(acc, "loss/smoothed")] == f32(expected)


def test_log_every_sets_the_cadence_and_logging_changes_no_result(tmp_path):
    plain = torchgd.fit("linear", "lecture", schedule="sgd", epochs=25).to_json()
    tb = TensorBoard(tmp_path, lr=0.01, total_steps=100, log_every=7)
    logged = torchgd.fit("linear", "lecture", schedule="sgd", epochs=25, callbacks=[tb])
    assert logged.to_json() == plain
    steps = [s for s, _ in series(read(tmp_path / "manual"), "loss/raw")]
    assert steps == [*range(7, 100, 7), 100]  # every 7th, and the last
    assert default_log_every(9_999) == 1 and default_log_every(100_000) == 20


def test_config_goes_in_as_text_and_hparams(cli, tmp_path):
    cli("train", "--lr", "0.02", "--epochs", "3", "--quiet", "--logdir", tmp_path, "--name", "h")
    acc = read(tmp_path / "h" / "optim")
    text = tensor_util.make_ndarray(acc.Tensors("config")[0].tensor_proto).item().decode()
    assert '"lr": 0.02' in text
    meta = acc.SummaryMetadata("_hparams_/session_start_info")
    assert meta.plugin_data.plugin_name == "hparams"
    assert b"optim" in meta.plugin_data.content  # the path's name is an hparam


def test_sigint_keeps_every_event_logged_before_it(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torchgd",
            "train",
            "--schedule",
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
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    run = tmp_path / "int" / "manual"
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
    steps = [s for s, _ in series(acc, "loss/raw")]
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


def _wait_for_scalars(base, proc, runs, tag="final/loss", timeout=90):
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
    for name, extra in (("sgd5", ["--schedule", "sgd"]), ("lr02", ["--lr", "0.02"])):
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
        runs = [f"{r}/{p}" for r in ("sgd5", "lr02") for p in PATHS]
        _wait_for_scalars(base, proc, runs)
        yield base
    finally:
        _stop(proc)


def test_plain_tensorboard_serves_every_scalar_at_float32(plain_tensorboard, two_runs):
    base = plain_tensorboard
    tags = _get(f"{base}/data/plugin/scalars/tags")
    for run in ("sgd5", "lr02"):
        summary = json.loads((two_runs / "runs" / run / "summary.json").read_text())
        steps = summary["steps"]
        for path in PATHS:
            assert set(STEP_TAGS) | {"epoch/loss", "epoch/params/w", "final/loss"} <= set(
                tags[f"{run}/{path}"]
            )
            hist = summary["paths"][path]["history"]
            for tag, key in (("epoch/params/w", "w"), ("epoch/loss", "loss")):
                points = _scalars(base, f"{run}/{path}", tag)
                assert [p[1] for p in points] == [1, 2, 3, 4, 5]
                assert [p[2] for p in points] == f32(hist[key])
            raw = _scalars(base, f"{run}/{path}", "loss/raw")
            assert [p[1] for p in raw] == list(range(1, steps + 1))  # every step, once
        assert {"agreement/params_max_ulp", "agreement/grad_max_ulp"} <= set(tags[f"{run}/compare"])


def test_hparams_tab_names_trials_by_run_and_sorts_them_by_final_loss(plain_tensorboard, two_runs):
    base = f"{plain_tensorboard}/data/plugin/hparams"
    experiment = _get(f"{base}/experiment", {"experimentName": "", "includeMetrics": True})
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"final/loss", "final/params/w", "final/agreement_max_ulp"} <= metrics
    assert {h["name"] for h in experiment["hparamInfos"]} >= {"lr", "schedule", "path"}
    request = {
        "experimentName": "",
        "allowedStatuses": ["STATUS_SUCCESS", "STATUS_FAILURE", "STATUS_RUNNING"],
        "colParams": [{"metric": {"tag": "final/loss", "group": ""}, "order": "ORDER_ASC"}],
        "startIndex": 0,
        "sliceSize": 100,
    }
    groups = _get(f"{base}/session_groups", request)["sessionGroups"]
    names = [g["name"] for g in groups]
    assert sorted(names) == sorted(f"{r}/{p}" for r in ("sgd5", "lr02") for p in PATHS)

    def final(group, tag):
        return next(m["value"] for m in group["metricValues"] if m["name"]["tag"] == tag)

    losses = [final(g, "final/loss") for g in groups]
    assert losses == sorted(losses)  # sorted by result, as asked
    for g in groups:
        run, path = g["name"].split("/")
        summary = json.loads((two_runs / "runs" / run / "summary.json").read_text())
        assert final(g, "final/loss") == f32([summary["paths"][path]["loss"]])[0]
        assert final(g, "final/agreement_max_ulp") == summary["agreement"]["max_ulp"]
        assert g["hparams"]["path"] == path
        assert g["sessions"][0]["status"] == "STATUS_SUCCESS"


def test_torchgd_tb_serves_the_same_scalars_on_loopback(two_runs):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchgd", "tb", "--port", "0"],
        cwd=two_runs,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        assert "http://127.0.0.1:" in first
        base = "http://" + first.split("http://")[1].split("/")[0]
        _wait_for_scalars(base, proc, [f"sgd5/{p}" for p in PATHS])
        summary = json.loads((two_runs / "runs" / "sgd5" / "summary.json").read_text())
        points = _scalars(base, "sgd5/optim", "epoch/params/w")
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
def test_bad_logging_options_are_one_line_exit_2(cli, tmp_path, args, message):
    proc = cli("train", *args, "--logdir", tmp_path)
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
