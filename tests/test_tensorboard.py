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

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
from tensorboard.compat.proto import event_pb2, tensor_pb2, types_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.util import tensor_util

import torchgd
from conftest import ROOT
from torchgd.callbacks.tensorboard import TensorBoard, default_log_every
from torchgd.events import ScalarEncoder, masked_crc32c_many

PATHS = ("manual", "autograd", "optim")
STEP_TAGS = ("loss/raw", "loss/smoothed", "lr", "params/w", "grad/w")


def read(run_dir):
    acc = EventAccumulator(str(run_dir), size_guidance={"tensors": 0, "images": 0})
    acc.Reload()
    return acc


def series(acc, tag):
    return [(e.step, tensor_util.make_ndarray(e.tensor_proto).item()) for e in acc.Tensors(tag)]


@settings(max_examples=50, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=40))
def test_batched_crc32c_matches_tensorboards_own(chunks):
    assert [int(c) for c in masked_crc32c_many(chunks)] == [masked_crc32c(c) for c in chunks]


@given(st.integers(0, 2**40), st.floats(allow_nan=False), st.floats(0, 2e9))
def test_hand_encoded_scalar_events_parse_as_tensorboards_events(step, value, wall):
    meta = scalar_metadata.create_summary_metadata(display_name="", description="")
    enc = ScalarEncoder(meta.SerializeToString())
    for first in (True, False):  # metadata only with a tag's first event
        ev = event_pb2.Event.FromString(enc.event(step, wall, [("a/b", value), ("c", -value)]))
        expected = event_pb2.Event(wall_time=wall, step=step)
        for tag, v in (("a/b", value), ("c", -value)):
            val = expected.summary.value.add(
                tag=tag, tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, double_val=[v])
            )
            val.tensor.tensor_shape.SetInParent()
            if first:
                val.metadata.CopyFrom(meta)
        assert ev == expected


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
        tags = set(acc.Tags()["tensors"])
        assert set(STEP_TAGS) | {"epoch/loss", "epoch/params/w"} <= tags
        for tag in STEP_TAGS:
            assert [s for s, _ in series(acc, tag)] == list(range(1, 121))  # every step, once
        hist = out["paths"][path]["history"]
        assert [v for _, v in series(acc, "epoch/loss")] == hist["loss"]
        assert [v for _, v in series(acc, "epoch/params/w")] == hist["w"]
        # after the last sample of each epoch the per-step w is the epoch's w
        assert [v for s, v in series(acc, "params/w") if s % 4 == 0] == hist["w"]
        assert {v for _, v in series(acc, "lr")} == {0.01}
        # the lecture's own gradient at each step, in Python floats
        w, grads = 1.0, []
        for _ in range(30):
            for x, y in zip([1.0, 2.0, 3.0, 4.0], [2.0, 4.0, 6.0, 8.0]):
                grads.append(2 * x * (x * w - y))
                w = w - 0.01 * grads[-1]
        assert [v for _, v in series(acc, "grad/w")] == grads
    compare = read(run / "compare")
    assert {v for _, v in series(compare, "agreement/params_max_ulp")} == {0.0}
    assert {v for _, v in series(compare, "agreement/grad_max_ulp")} == {0.0}
    assert len(compare.Images("figures/loss")) == 1 and len(compare.Images("figures/cost")) == 1


def test_smoothed_loss_is_the_bias_corrected_moving_average(tmp_path):
    tb = TensorBoard(tmp_path, lr=0.01, total_steps=40, smoothing=0.5)
    torchgd.fit("linear", "lecture", schedule="sgd", epochs=10, paths=("manual",), callbacks=[tb])
    acc = read(tmp_path / "manual")
    raw = [v for _, v in series(acc, "loss/raw")]
    s, expected = 0.0, []
    for t, v in enumerate(raw, start=1):
        s = 0.5 * s + 0.5 * v
        expected.append(s / (1 - 0.5**t))
    assert [v for _, v in series(acc, "loss/smoothed")] == expected


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


def _get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def test_the_real_tensorboard_server_serves_the_same_values(cli, tmp_path):
    cli(
        "train",
        "--schedule",
        "sgd",
        "--epochs",
        "5",
        "--quiet",
        "--no-plots",
        "--logdir",
        tmp_path,
        "--name",
        "srv",
    )
    expected = json.loads((tmp_path / "srv" / "summary.json").read_text())
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "torchgd", "tb", str(tmp_path / "srv"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first = proc.stdout.readline()
        assert "http://127.0.0.1:" in first
        base = first.split("http://")[1].split("/")[0]  # 127.0.0.1:PORT
        host, port = base.split(":")
        assert host == "127.0.0.1"
        deadline, runs = time.monotonic() + 90, None
        while time.monotonic() < deadline:
            try:
                runs = _get(f"http://{base}/data/runs")
                if {"manual", "optim"} <= set(runs):
                    break
            except OSError:
                pass
            time.sleep(0.5)
        assert {"manual", "autograd", "optim", "compare"} <= set(runs)
        for path in PATHS:
            q = urllib.parse.urlencode({"run": path, "tag": "epoch/params/w"})
            points = _get(f"http://{base}/data/plugin/scalars/scalars?{q}")
            assert [p[1] for p in points] == [1, 2, 3, 4, 5]
            assert [p[2] for p in points] == expected["paths"][path]["history"]["w"]
        with socket.create_connection(("127.0.0.1", int(port)), timeout=5):
            pass  # bound to loopback
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
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
