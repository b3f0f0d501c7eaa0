"""A run's result: what ``torchgd.fit`` returns and ``summary.json`` holds (``to_json``).

Its own module, so that what makes one (``run.Run.result``) and what returns one
(``torchgd.fit``) both import it, and neither imports the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Result:
    config: dict
    status: str
    paths: dict
    agreement: dict
    steps: int
    epochs: int
    seconds: float
    problem: object = field(repr=False, default=None)
    diverged: dict | None = None  # epoch, path, reason, last finite loss, critical/suggested lr
    run_dir: object = field(repr=False, default=None)  # fit(logdir=...): where its files are

    def params(self, path: str | None = None) -> dict:
        return self.paths[path or next(iter(self.paths))]["params"]

    @property
    def history(self) -> dict:
        """Each path's history: ``{"manual": {"loss": [...], "w": [...]}, ...}`` per epoch,
        and with ``history="steps"`` also ``["steps"]``, per step."""
        return {name: path["history"] for name, path in self.paths.items()}

    def to_json(self) -> dict:
        extra = {"diverged": self.diverged} if self.diverged else {}
        return {
            **extra,
            "config": self.config,
            "status": self.status,
            "steps": self.steps,
            "epochs": self.epochs,
            "paths": self.paths,
            "agreement": self.agreement,
        }

    def __repr__(self) -> str:
        """One short line: status, problem and settings, the first path's parameters, and how
        far apart the paths ended (``to_json()`` has everything)."""

        def g(v):
            if isinstance(v, list):
                return f"[{len(v)} values]" if len(v) > 3 else f"[{', '.join(map(g, v))}]"
            return "nan" if v is None else f"{v:.6g}"

        c = self.config
        has_data = c.get("data") is not None
        where = f", {c['data']} data, {c['batching']}" if has_data else ""
        rule = c.get("optimizer", "sgd")
        rule = f", optimizer={rule.rpartition(':')[2] or rule}" if rule != "sgd" else ""
        lr = f"lr={g(c['lr'])}" + (f" scheduled by {c['scheduler']}" if c.get("scheduler") else "")
        text = f"{self.status}: {c['problem']}{where}{rule}, {lr}, {self.epochs} "
        text += "epochs" if has_data else "steps"
        if self.paths:
            first = next(iter(self.paths))
            params = self.paths[first]["params"]
            if len(params) == 1 and isinstance(next(iter(params.values())), float):
                values = ", ".join(f"{k}={v!r}" for k, v in params.items())  # w=2 would hide
            else:  # 1.9999999999999998; several values: 6 digits keep the line short
                values = ", ".join(f"{k}={g(v)}" for k, v in params.items())
            text += f"; {first}: {values}"
        ulp = self.agreement.get("max_ulp")
        lr_ulp = self.agreement.get("lr", {}).get("max_ulp")
        if len(self.paths) > 1 and ulp is not None and lr_ulp:  # a schedule in two spellings
            apart = "bit for bit" if ulp == 0 else f"at most {ulp} ulp apart"
            text += f"; {len(self.paths)} paths: parameters {apart}, lrs up to {lr_ulp} ulp apart"
        elif len(self.paths) > 1 and ulp is not None:
            text += f"; {len(self.paths)} paths " + (
                "agree bit for bit" if ulp == 0 else f"at most {ulp} ulp apart"
            )
        return f"Result({text})"
