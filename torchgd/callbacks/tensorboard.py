"""TensorBoard event files for every run: one TensorBoard run per path, so the paths overlay.

    runs/<name>/manual, runs/<name>/autograd, runs/<name>/optim   per path, x axis = step:
        loss/raw, loss/smoothed, params/<p>, grad/<p>, lr;  per epoch (x = epoch): epoch/loss,
        epoch/params/<p>;  the config as text and as hparams (with the path's name)
    runs/<name>/compare                                            agreement/params_max_ulp,
        agreement/grad_max_ulp per step, the config as text, the run's figures as images

Why not ``SummaryWriter.add_scalar``: it costs about 35 microseconds a call, several times a
per-sample step, most of it TensorBoard's pure-Python CRC-32C. Here each path's step becomes one
event holding all its tags (one protobuf ``Summary`` with several values), the tag metadata is
sent once per tag, the values come from the step's record (already Python floats), and
``torchgd.events.EventFile`` checksums queued records together with numpy. Scalars are
written as float64 tensors (``DT_DOUBLE``), so TensorBoard shows exactly what ``--json`` prints.
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path

import torch
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.plugins.text import metadata as text_metadata

from .. import compare
from ..events import EventFile, ScalarEncoder
from . import Callback

STEPS_LOGGED_AT_MOST = 5000


def default_log_every(total_steps: int) -> int:
    """Every step for runs under 10,000 steps; else about 5,000 logged steps in all."""
    return 1 if total_steps < 10_000 else math.ceil(total_steps / STEPS_LOGGED_AT_MOST)


_SCALAR_META = scalar_metadata.create_summary_metadata(display_name="", description="")
_SHAPE = tensor_shape_pb2.TensorShapeProto()


class _Writer:
    """One event file; remembers which tags already carried their metadata."""

    def __init__(self, logdir: Path):
        logdir.mkdir(parents=True, exist_ok=True)
        self.file = EventFile(logdir)
        self.encoder = ScalarEncoder(_SCALAR_META.SerializeToString())

    def scalars(self, step: int, pairs, wall_time: float) -> None:
        self.file.add_bytes(self.encoder.event(step, wall_time, pairs))

    def event(self, step: int, summary, wall_time: float | None = None) -> None:
        self.file.add(
            event_pb2.Event(wall_time=wall_time or time.time(), step=step, summary=summary)
        )

    def text(self, tag: str, markdown: str) -> None:
        value = summary_pb2.Summary.Value(
            tag=tag,
            metadata=text_metadata.create_summary_metadata(display_name="", description=""),
            tensor=tensor_pb2.TensorProto(
                dtype=types_pb2.DT_STRING, string_val=[markdown.encode()], tensor_shape=_SHAPE
            ),
        )
        self.event(0, summary_pb2.Summary(value=[value]))

    def image(self, tag: str, png: bytes) -> None:
        width, height = struct.unpack(">II", png[16:24])  # the PNG header's IHDR chunk
        image = summary_pb2.Summary.Image(
            height=height, width=width, colorspace=4, encoded_image_string=png
        )
        self.event(0, summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag=tag, image=image)]))

    def close(self) -> None:
        self.file.close()


def _hparams(config: dict, path: str) -> dict:
    flat = {"path": path}
    for key, value in config.items():
        if isinstance(value, dict):
            for k, v in value.items():
                flat[f"{key}.{k}"] = v if isinstance(v, (bool, int, float, str)) else json.dumps(v)
        elif isinstance(value, (bool, int, float, str)):
            flat[key] = value
        elif value is not None:
            flat[key] = json.dumps(value)
    return flat


class TensorBoard(Callback):
    """Writes the run's records as TensorBoard events (see the module docstring)."""

    def __init__(
        self,
        run_dir,
        *,
        lr: float,
        total_steps: int,
        log_every: int | None = None,
        smoothing: float = 0.9,
    ):
        if not 0 <= smoothing < 1:
            raise ValueError("smoothing must be in [0, 1)")
        self.run_dir = Path(run_dir)
        self.lr, self.total = lr, total_steps
        self.every = log_every or default_log_every(total_steps)
        self.beta = smoothing
        self.writers: dict[str, _Writer] = {}
        self.ema: dict[str, float] = {}
        self.logged = 0

    def on_start(self, config, paths):
        self.names = list(paths)
        self.dtype = config["dtype"]
        self.labels = compare.labels_for(next(iter(paths.values())).values())
        text = "```json\n" + json.dumps(config, indent=2) + "\n```"
        for name in [*self.names, "compare"]:
            w = self.writers[name] = _Writer(self.run_dir / name)
            w.text("config", text)
            if name != "compare":
                w.event(0, hparams_summary.hparams_pb(_hparams(config, name)))

    def on_step(self, step):
        s = step.step
        if s % self.every and s != self.total:
            return
        self.logged += 1
        now = time.time()
        r, d = step.record, len(self.labels)
        bias = 1 - self.beta**self.logged
        for i, name in enumerate(self.names):
            loss = r.losses[i]
            self.ema[name] = self.beta * self.ema.get(name, 0.0) + (1 - self.beta) * loss
            pairs = [("loss/raw", loss), ("loss/smoothed", self.ema[name] / bias), ("lr", self.lr)]
            pairs += [(f"params/{k}", v) for k, v in zip(self.labels, r.params[i * d :][:d])]
            pairs += [(f"grad/{k}", v) for k, v in zip(self.labels, r.grads[i * d :][:d])]
            self.writers[name].scalars(s, pairs, now)
        agreement = []
        if len(self.names) > 1:
            rows = [r.params[i * d :][:d] for i in range(len(self.names))]
            worst = max(
                compare.ulp_distance_floats(a, b, self.dtype)
                for i, a in enumerate(rows)
                for b in rows[i + 1 :]
            )
            agreement.append(("agreement/params_max_ulp", float(worst)))
        if r.refs:
            checked = list(step.refs)
            worst = max(
                compare.ulp_distance_floats(
                    r.refs[q * d :][:d], r.grads[self.names.index(p) * d :][:d], self.dtype
                )
                for q, p in enumerate(checked)
            )
            agreement.append(("agreement/grad_max_ulp", float(worst)))
        if agreement:
            self.writers["compare"].scalars(s, agreement, now)

    def on_epoch(self, epoch):
        now = time.time()
        rows = torch.stack(
            [
                torch.cat(
                    [
                        epoch.losses[p].reshape(1).to(torch.float64),
                        compare.flat(epoch.params[p]).to(torch.float64),
                    ]
                )
                for p in self.names
            ]
        ).tolist()
        for name, row in zip(self.names, rows):
            pairs = [("epoch/loss", row[0])]
            pairs += [(f"epoch/params/{k}", v) for k, v in zip(self.labels, row[1:])]
            self.writers[name].scalars(epoch.epoch, pairs, now)

    def state_dict(self) -> dict:
        return {"ema": dict(self.ema), "logged": self.logged}

    def resume(self, state: dict | None, step: int) -> None:
        """Continue a checkpointed run: earlier event files are cut back to ``step``, and a
        SessionLog START at step + 1 marks the restart for TensorBoard, so no step appears
        twice."""
        from ..events import trim_after

        if state:
            self.ema, self.logged = dict(state["ema"]), state["logged"]
        # a killed process may have logged past its checkpoint, or left half a record: cut its
        # files back to the checkpoint's step (the resumed run logs those steps again, identical)
        for name in self.writers:
            for old in (self.run_dir / name).glob("events.out.tfevents.*"):
                if old != self.writers[name].file.path:
                    trim_after(old, step)
        start = event_pb2.SessionLog(status=event_pb2.SessionLog.START)
        for w in self.writers.values():
            w.file.add(event_pb2.Event(wall_time=time.time(), step=step + 1, session_log=start))

    def on_end(self, result):
        for png in sorted(self.run_dir.glob("*.png")):
            self.writers["compare"].image(f"figures/{png.stem}", png.read_bytes())
        self.close()

    def flush(self):
        for w in self.writers.values():
            w.file.flush()

    def close(self):
        for w in self.writers.values():
            w.close()
        self.writers = {}


def write_figures(logdir, pngs) -> None:
    """Put PNG figures into their own TensorBoard run (``logdir``) as images."""
    w = _Writer(Path(logdir))
    try:
        for png in pngs:
            w.image(f"figures/{Path(png).stem}", Path(png).read_bytes())
    finally:
        w.close()
