"""TensorBoard event files for every run: one TensorBoard run per path, so the paths overlay.

    runs/<name>/manual, runs/<name>/autograd, runs/<name>/optim   per path, x axis = step:
        loss/raw, loss/smoothed, params/<p>, grad/<p>, lr;  per epoch (x = epoch): epoch/loss,
        epoch/params/<p>;  at the end: final/loss, final/params/<p>, final/agreement_max_ulp;
        the config as text and as hparams (trial ``<name>/<path>``, the final/ tags as metrics)
    runs/<name>/compare                                            agreement/params_max_ulp,
        agreement/grad_max_ulp per step, the config as text, the run's figures as images

Scalars are written as ``SummaryWriter.add_scalar`` writes them (``simple_value``, float32), so
the plain ``tensorboard --logdir runs`` shows them; TensorBoard therefore shows float32
roundings of the float64 values, which ``summary.json`` and ``--json`` hold exactly.

Why not ``SummaryWriter.add_scalar`` itself: it costs about 35 microseconds a call, several
times a per-sample step, most of it TensorBoard's pure-Python CRC-32C. Here each path's step
becomes one event holding all its tags (one protobuf ``Summary`` with several values), encoded by
hand from the step's record (already Python floats), checksummed by ``google-crc32c``.
"""

from __future__ import annotations

import json
import math
import struct
import time
from pathlib import Path

import torch
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams import summary_v2 as hparams_summary
from tensorboard.plugins.text import metadata as text_metadata

from .. import compare
from ..events import EventFile, ScalarEncoder
from ..records import Record
from . import Callback

STEPS_LOGGED_AT_MOST = 5000
BLOCK = 64  # steps encoded together


def default_log_every(total_steps: int) -> int:
    """Every step for runs under 10,000 steps; else about 5,000 logged steps in all."""
    return 1 if total_steps < 10_000 else math.ceil(total_steps / STEPS_LOGGED_AT_MOST)


_SHAPE = tensor_shape_pb2.TensorShapeProto()


class _Writer:
    """One event file; remembers which tags already carried their metadata."""

    def __init__(self, logdir: Path):
        logdir.mkdir(parents=True, exist_ok=True)
        self.file = EventFile(logdir)
        self.encoder = ScalarEncoder()

    def scalars(self, step: int, pairs, wall_time: float) -> None:
        self.file.add_bytes(self.encoder.event(step, wall_time, pairs))

    def values(self, step: int, tags: tuple, values: list, wall_time: float) -> None:
        self.file.add_bytes(self.encoder.values(step, wall_time, tags, values))

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


_SESSION_STATUS = {
    "completed": api_pb2.STATUS_SUCCESS,
    "diverged": api_pb2.STATUS_FAILURE,
}  # an interrupted run writes none: its resumed run ends the session


def _session_end(status: int, end_time: float) -> summary_pb2.Summary:
    """The HParams plugin's "session ended" summary (its own helper needs TensorFlow)."""
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=end_time)
    meta = hparams_metadata.create_summary_metadata(
        plugin_data_pb2.HParamsPluginData(session_end_info=info)
    )
    value = summary_pb2.Summary.Value(
        tag=hparams_metadata.SESSION_END_INFO_TAG,
        metadata=meta,
        tensor=hparams_metadata.NULL_TENSOR,
    )
    return summary_pb2.Summary(value=[value])


def _flat(value) -> list:
    """A parameter's JSON value (a number or nested lists) as its entries in flattened order,
    the order of ``compare.labels_for``."""
    return [x for item in value for x in _flat(item)] if isinstance(value, list) else [value]


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
        trial: str | None = None,
    ):
        """``trial``: the run's name as TensorBoard lists it (its directory under the logdir);
        the HParams tab names each path's trial ``<trial>/<path>``."""
        if not 0 <= smoothing < 1:
            raise ValueError("smoothing must be in [0, 1)")
        self.run_dir = Path(run_dir)
        self.trial = trial or self.run_dir.name
        self.lr, self.total = lr, total_steps
        self.every = log_every or default_log_every(total_steps)
        self.beta = smoothing
        self.writers: dict[str, _Writer] = {}
        self.ema: dict[str, float] = {}
        self.logged = 0
        self.pending: list = []  # not yet encoded: (step, wall time, record or epoch rows)
        self.waiting: list = []  # epochs whose steps have not come yet: (last step, item)
        self.ref_names = None

    def on_start(self, config, paths):
        self.names = list(paths)
        self.checked = [p for p in self.names if paths[p].uses_autograd]
        self.dtype = config["dtype"]
        self.labels = compare.labels_for(next(iter(paths.values())).values())
        self.step_tags = ("loss/raw", "loss/smoothed", "lr")
        self.step_tags += tuple(f"params/{k}" for k in self.labels)
        self.step_tags += tuple(f"grad/{k}" for k in self.labels)
        self.epoch_tags = ("epoch/loss", *(f"epoch/params/{k}" for k in self.labels))
        text = "```json\n" + json.dumps(config, indent=2) + "\n```"
        for name in [*self.names, "compare"]:
            w = self.writers[name] = _Writer(self.run_dir / name)
            w.text("config", text)
            if name != "compare":
                trial = f"{self.trial}/{name}"
                w.event(0, hparams_summary.hparams_pb(_hparams(config, name), trial_id=trial))

    def on_block(self, block):
        """A block of steps (``records.HostBlock``): the logged ones join the events held
        back, with the epochs that ended before them, in order."""
        if self.ref_names is None:
            self.ref_names = [self.names.index(p) for p in self.checked]
        keep = [t for t, s in enumerate(block.steps) if s % self.every == 0 or s == self.total]
        if keep:
            rows = torch.tensor(keep)
            T = len(keep)
            losses = block.losses[rows].tolist()
            params = block.params[rows].reshape(T, -1).tolist()
            grads = block.grads[rows].reshape(T, -1).tolist()
            refs = block.refs[rows].reshape(T, -1).tolist()
        now = time.time()
        for i, t in enumerate(keep):
            s = block.steps[t]
            self._epochs_before(s)
            record = Record(s, block.epochs[t], losses[i], params[i], grads[i], refs[i], None)
            self.pending.append((s, now, record))
        self._epochs_before(block.steps[-1] + 1)
        if len(self.pending) >= BLOCK:
            self._write_steps()

    def _epochs_before(self, step: int) -> None:
        """Move the epochs that ended before ``step`` into the events held back."""
        while self.waiting and self.waiting[0][0] < step:
            _, item = self.waiting.pop(0)
            self.pending.append(item)

    def on_epoch(self, epoch):
        from ..records import floats

        rows = [floats((epoch.losses[p], *epoch.params[p].values())) for p in self.names]
        # in order with the steps', which come a block at a time (``on_block``)
        self.waiting.append((epoch.step, (epoch.epoch, time.time(), rows)))

    def _write_steps(self) -> None:
        """Encode the steps and epochs held back, in their order (so that ``trim_after`` cuts
        a resumed run's files as before): a block at a time, which runs several times faster
        than one step at a time between torch's operations (measured: 45 against 17
        microseconds a step)."""
        self._epochs_before(float("inf"))
        d, n, dtype = len(self.labels), len(self.names), self.dtype
        beta, ema, tags, lr = self.beta, self.ema, self.step_tags, self.lr
        writers = [self.writers[name] for name in self.names]
        compare_writer = self.writers["compare"]
        for s, now, r in self.pending:
            if isinstance(r, list):  # an epoch's rows: loss and parameters per path
                for w, row in zip(writers, r):
                    w.values(s, self.epoch_tags, row, now)
                continue
            self.logged += 1
            bias = 1 - beta**self.logged
            rows = [r.params[i * d : (i + 1) * d] for i in range(n)]
            for i, name in enumerate(self.names):
                loss = r.losses[i]
                ema[name] = beta * ema.get(name, 0.0) + (1 - beta) * loss
                values = [loss, ema[name] / bias, lr, *rows[i], *r.grads[i * d : (i + 1) * d]]
                writers[i].values(s, tags, values, now)
            agreement = []
            if n > 1:
                worst = max(
                    0 if a == b else compare.ulp_distance_floats(a, b, dtype)  # mostly equal
                    for i, a in enumerate(rows)
                    for b in rows[i + 1 :]
                )
                agreement.append(("agreement/params_max_ulp", float(worst)))
            if r.refs:
                worst = 0
                for q, i in enumerate(self.ref_names):
                    ref, got = r.refs[q * d : (q + 1) * d], r.grads[i * d : (i + 1) * d]
                    if ref != got:
                        worst = max(worst, compare.ulp_distance_floats(ref, got, dtype))
                agreement.append(("agreement/grad_max_ulp", float(worst)))
            if agreement:
                compare_writer.scalars(s, agreement, now)
        self.pending = []

    def state_dict(self) -> dict:
        self._write_steps()  # the moving average up to the last step
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
        if result.epochs and result.status != "interrupted":  # a resumed run ends it later
            self._final(result)
        self.close()  # the figures come later, drawn after the summary (``write_figures``)

    def _final(self, result) -> None:
        """One point per metric of the HParams tab at the last step: the final loss and
        parameters, and the largest ulp difference between this path and any other (parameters)
        or the analytic formula (gradients)."""
        summary, now = result.to_json(), time.time()
        agreement = summary["agreement"]
        pairs = {
            **(agreement.get("params") or {}),
            **(agreement.get("grad") or {}).get("pairs", {}),
        }
        for name in self.names:
            final = summary["paths"][name]
            ulps = [p["max_ulp"] for k, p in pairs.items() if name in k.split("~")]
            values = [("final/loss", final["loss"])]
            entries = [x for v in final["params"].values() for x in _flat(v)]
            values += [(f"final/params/{k}", v) for k, v in zip(self.labels, entries)]
            values.append(("final/agreement_max_ulp", float(max(ulps, default=0))))
            w = self.writers[name]
            w.scalars(result.steps, [(t, math.nan if v is None else v) for t, v in values], now)
            status = _SESSION_STATUS[result.status]
            w.event(result.steps, _session_end(status, now), now)

    def flush(self):
        if self.writers:
            self._write_steps()
        for w in self.writers.values():
            w.file.flush()

    def close(self):
        try:
            if self.writers:
                self._write_steps()
        finally:
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
