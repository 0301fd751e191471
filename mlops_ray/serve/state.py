"""What the ingress knows about each served model: versions, rollout, live router, window statistics (pure)."""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from mlops_ray.serve.analysis import Thresholds, WindowStats, analyze
from mlops_ray.serve.rollout import Decision, Rollout
from mlops_ray.serve.traffic import WeightedRouter
from mlops_ray.serve.validation import InputSchema

RECENT_REQUESTS = 20_000  # request id -> (version, prediction), to score feedback labels per version


@dataclass
class VersionInfo:
    """One deployed version: its Serve application and what its replicas reported about the model."""

    version: str
    app_name: str
    source: str = ""
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def schema(self) -> InputSchema:
        return InputSchema.from_dict(self.meta["schema"])

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "app_name": self.app_name, "source": self.source, "meta": self.meta}


class ModelEntry:
    """A served model inside the ingress: the rollout, the router built from it, and per-version stats."""

    def __init__(self, rollout: Rollout, versions: dict[str, VersionInfo] | None = None) -> None:
        self.rollout = rollout
        self.versions: dict[str, VersionInfo] = versions or {}
        self.stats: dict[str, WindowStats] = {}
        # id -> (version, row predictions, when answered, rows already labelled)
        self.recent: OrderedDict[str, tuple[str, list[Any], float, set[int]]] = OrderedDict()
        self.router = WeightedRouter({"-": 1.0})
        self.schemas: dict[str, InputSchema] = {}
        self.record_error: str | None = None  # the last rollout decision MLflow could not record
        self.apply()

    @property
    def name(self) -> str:
        return self.rollout.model

    def apply(self) -> None:
        """Rebuild the router from the rollout's weights; takes effect for the next request."""
        w = self.rollout.weights()
        self.router = WeightedRouter(w) if w else WeightedRouter({"-": 1.0})
        self.schemas = {v: i.schema for v, i in self.versions.items() if "schema" in i.meta}

    def window(self, version: str) -> WindowStats:
        s = self.stats.get(version)
        if s is None:
            s = self.stats[version] = WindowStats()
        return s

    def remember(self, request_id: str, version: str, predictions: list[Any]) -> None:
        self.window(version)  # the window this answer counts in exists from here on: it started before now
        self.recent[request_id] = (version, list(predictions), time.time(), set())
        if len(self.recent) > RECENT_REQUESTS:
            self.recent.popitem(last=False)

    def feedback(self, request_id: str, label: Any) -> bool:
        """Score one label against the prediction served for ``request_id`` (``"<id>#k"``: its row k, 0-based;
        the plain id: row 0, as in the monitor's join); False when that row is unknown."""
        from mlops_ray.monitor.logger import label_str, split_feedback_id  # 1, 1.0 and "1": one label

        base, row = split_feedback_id(request_id)
        hit = self.recent.get(base)
        if hit is None or row >= len(hit[1]):
            return False
        version, preds, answered, labeled = hit
        window = self.window(version)
        # One label per row, and only in the window that served it: a label for a request answered before
        # this comparison began (or sent twice) would weigh a side with requests it never judged.
        if row not in labeled and answered >= window.started:
            window.record_feedback(label_str(preds[row]) == label_str(label))
        labeled.add(row)
        return True

    def deploy(self, info: VersionInfo, now: float, canary_pct: float | None, steps: list[float] | None) -> Decision:
        decision = self.rollout.deploy(info.version, now, canary_pct=canary_pct, steps=steps)
        self.versions[info.version] = info
        if decision.action == "canary":
            self.stats = {}  # both sides start a fresh comparison
        self.apply()
        return decision

    def tick(self, now: float, th: Thresholds, window_s: float) -> Decision | None:
        """Judge the canary's window when it is due; applies the resulting traffic change."""
        r = self.rollout
        if r.canary is None or r.stable is None or now - r.window_started < window_s:
            return None
        v = analyze(self.window(r.stable), self.window(r.canary), th)
        canary = r.canary
        decision = r.on_window(v.verdict, now, v.reason, v.metrics)
        if v.verdict != "insufficient":
            self.stats.pop(canary, None)  # the stable side keeps accumulating: its baseline for later steps
        self.apply()
        return decision

    def retire(self) -> list[VersionInfo]:
        """Forget versions that no longer serve or stay warm; returns them so their apps can be deleted."""
        keep = set(self.rollout.warm_versions())
        gone = [i for v, i in self.versions.items() if v not in keep]
        for i in gone:
            del self.versions[i.version]
            self.stats.pop(i.version, None)
        self.apply()
        return gone

    def to_dict(self) -> dict[str, Any]:
        return {"rollout": self.rollout.to_dict(), "versions": {v: i.to_dict() for v, i in self.versions.items()}}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelEntry:
        return cls(Rollout.from_dict(d["rollout"]), {v: VersionInfo(**i) for v, i in d["versions"].items()})

    def summary(self) -> dict[str, Any]:
        """What `mlops-ray status` shows for this model."""
        r = self.rollout
        stats = {v: {"requests": s.requests, "errors": s.errors, "p99_ms": s.p99_ms(), "accuracy": s.accuracy,
                     "labeled": s.labeled} for v, s in self.stats.items()}
        return {"model": r.model, "phase": r.phase, "stable": r.stable, "canary": r.canary, "previous": r.previous,
                "traffic": r.weights(), "steps": r.steps if r.canary else [],
                "step": r.step if r.canary else None, "window_started": r.window_started,
                "versions": {v: {"app": i.app_name, "source": i.source, "device": i.meta.get("device")}
                             for v, i in self.versions.items()},
                "window_stats": stats, "decisions": [d.__dict__ for d in r.decisions[-10:]],
                "record_error": self.record_error}
