"""The rollout state machine of one served model: stable, canary steps, promotion, rollback (pure: no Ray).

States: ``stable`` (one version takes all traffic, the previous one may stay warm for a rollback) and
``canary`` (a new version takes ``steps[step]`` percent). An analysis window that passes moves the
canary one step up (after the last step it is promoted); a window that fails rolls it back at once.
Every transition is recorded as a :class:`Decision` so that ``mlops-ray status`` can show why.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from mlops_ray.exceptions import ServeError

Phase = Literal["stable", "canary"]
MAX_DECISIONS = 50



def check_canary_pct(pct: float | None, what: str = "the canary") -> None:
    """A first canary share is a traffic share in (0, 100] (None: the configured first step)."""
    if pct is not None and not 0 < pct <= 100:
        raise ServeError(f"{what} must be a traffic share in (0, 100], got {pct:g}")

@dataclass
class Decision:
    """One transition of the rollout, with the reason a user reads in `mlops-ray status`."""

    at: float  # unix time
    action: Literal["deploy", "canary", "step", "promote", "rollback", "manual_rollback", "manual_promote", "extend"]
    version: str
    traffic: dict[str, float]
    reason: str
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass
class Rollout:
    """Where one model's rollout stands; the ingress applies ``weights()`` to live traffic."""

    model: str
    stable: str | None = None
    canary: str | None = None
    previous: str | None = None  # kept warm so that a manual rollback is a weight flip
    steps: list[float] = field(default_factory=lambda: [10.0, 50.0, 100.0])
    step: int = 0
    window_started: float = 0.0
    decisions: list[Decision] = field(default_factory=list)

    # ------------------------------------------------------------------ queries

    @property
    def phase(self) -> Phase:
        return "canary" if self.canary is not None else "stable"

    def weights(self) -> dict[str, float]:
        """Version -> percent of traffic (only versions with a share > 0)."""
        if self.stable is None:
            return {self.canary: 100.0} if self.canary else {}
        if self.canary is None:
            return {self.stable: 100.0}
        pct = self.steps[self.step]
        if pct >= 100.0:
            return {self.canary: 100.0}
        return {self.stable: 100.0 - pct, self.canary: pct}

    def warm_versions(self) -> list[str]:
        """Versions whose deployments must stay up (serving, canary, or the rollback target)."""
        return [v for v in (self.stable, self.canary, self.previous) if v is not None]

    def canary_share(self) -> float:
        return self.steps[self.step] if self.canary is not None else 0.0

    # ------------------------------------------------------------------ transitions

    def deploy(self, version: str, now: float, *, canary_pct: float | None = None,
               steps: list[float] | None = None) -> Decision:
        """Serve ``version``: the first version (or ``canary_pct`` 100) takes all traffic, else it starts a canary.

        ``canary_pct`` sets the first step; later steps come from ``steps`` (the config's) above it.
        Returns the decision; the caller retires versions that drop out of ``warm_versions()``.
        """
        if self.canary is not None:
            raise ServeError(
                f"model {self.model!r}: version {self.canary} is still a canary at {self.canary_share():g}%; "
                f"wait for it, or run `mlops-ray rollback {self.model}` first"
            )
        if version == self.stable:  # a no-op (a cached rerun): answered, not added to the history
            return Decision(at=now, action="deploy", version=version, traffic=self.weights(),
                            reason=f"version {version} already serves all traffic")
        check_canary_pct(canary_pct)
        if self.stable is None or canary_pct == 100:
            self.previous, self.stable = self.stable, version
            why = "first version: all traffic" if self.previous is None else "direct switch (canary 100%)"
            return self._record(now, "deploy", version, why)
        base = sorted(steps if steps is not None else self.steps)
        first = float(canary_pct if canary_pct is not None else base[0])  # [10, 50.0, 100.0] read oddly
        self.steps = [first, *[float(s) for s in base if s > first]]
        if self.steps[-1] < 100.0:
            self.steps.append(100.0)
        self.canary, self.step, self.window_started = version, 0, now
        steps_text = ", ".join(f"{x:g}%" for x in self.steps)
        return self._record(now, "canary", version, f"canary at {first:g}% of traffic; steps {steps_text}")

    def on_window(self, verdict: Literal["pass", "fail", "insufficient"], now: float, reason: str,
                  metrics: dict[str, Any] | None = None) -> Decision | None:
        """Apply one analysis window's verdict; returns the decision (None when nothing changed)."""
        if self.canary is None:
            return None
        metrics = metrics or {}
        if verdict == "insufficient":
            self.window_started = now
            return self._record(now, "extend", self.canary, reason, metrics, keep_last_of="extend")
        if verdict == "fail":
            return self._rollback_canary(now, "rollback", f"canary failed analysis: {reason}", metrics)
        if self.step + 1 < len(self.steps):
            self.step += 1
            self.window_started = now
            return self._record(now, "step", self.canary, f"window passed ({reason}); canary now at "
                                f"{self.steps[self.step]:g}%", metrics)
        return self._promote(now, "promote", f"last window passed ({reason})", metrics)

    def promote(self, now: float, reason: str = "promoted by an operator") -> Decision:
        """Make the canary stable now, skipping the remaining steps."""
        if self.canary is None:
            raise ServeError(f"model {self.model!r} has no canary to promote (stable: {self.stable})")
        return self._promote(now, "manual_promote", reason, {})

    def rollback(self, now: float, reason: str = "rolled back by an operator") -> Decision:
        """Drop a running canary, or else swap stable and the warm previous version."""
        if self.canary is not None:
            return self._rollback_canary(now, "manual_rollback", reason, {})
        if self.previous is None:
            raise ServeError(
                f"model {self.model!r}: nothing to roll back to: version {self.stable} serves and no earlier stable "
                "version is kept warm (a canary that was rolled back is not); deploy the version you want"
            )
        self.stable, self.previous = self.previous, self.stable
        return self._record(now, "manual_rollback", self.stable, f"{reason}: traffic back to version "
                            f"{self.stable} (version {self.previous} stays warm)")

    # ------------------------------------------------------------------ internals

    def _promote(self, now: float, action: Any, reason: str, metrics: dict[str, Any]) -> Decision:
        assert self.canary is not None
        self.previous, self.stable, self.canary, self.step = self.stable, self.canary, None, 0
        return self._record(now, action, self.stable, f"{reason}; version {self.stable} is stable", metrics)

    def _rollback_canary(self, now: float, action: Any, reason: str, metrics: dict[str, Any]) -> Decision:
        version = self.canary
        assert version is not None
        self.canary, self.step = None, 0
        if self.stable is None:  # cannot happen via deploy(); guard for hand-edited state
            raise ServeError(f"model {self.model!r}: no stable version to roll back to")
        return self._record(now, action, version, f"{reason}; all traffic back to version {self.stable}", metrics)

    def _record(self, now: float, action: Any, version: str, reason: str, metrics: dict[str, Any] | None = None,
                keep_last_of: str | None = None) -> Decision:
        d = Decision(at=now, action=action, version=version, traffic=self.weights(), reason=reason,
                     metrics=dict(metrics or {}))
        if keep_last_of and self.decisions and self.decisions[-1].action == keep_last_of:
            self.decisions[-1] = d  # repeated "extend" windows collapse into one line
        else:
            self.decisions.append(d)
        del self.decisions[:-MAX_DECISIONS]
        return d

    # ------------------------------------------------------------------ persistence

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["phase"] = self.phase
        d["traffic"] = self.weights()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Rollout:
        d = {k: v for k, v in d.items() if k not in ("phase", "traffic")}
        d["decisions"] = [Decision(**x) for x in d.get("decisions", [])]
        return cls(**d)
