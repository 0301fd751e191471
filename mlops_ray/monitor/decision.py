"""Live performance against the model's holdout baseline, and the retrain decision: pure functions of numbers."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

from mlops_ray.config import RetrainSpec
from mlops_ray.monitor.drift import DriftResult
from mlops_ray.monitor.stats import Interval, bootstrap_interval, wilson_interval

LOWER_IS_BETTER = ("rmse", "mae", "mse", "log_loss")


@dataclass
class Performance:
    """Live metric from feedback labels (with its interval) next to the holdout baseline."""

    metric: str
    status: Literal["ok", "degraded", "unknown"]
    live: Interval | None = None
    baseline: float | None = None
    n_labelled: int = 0
    note: str = ""

    @property
    def higher_is_better(self) -> bool:
        return self.metric not in LOWER_IS_BETTER

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["higher_is_better"] = self.higher_is_better
        return d


def _r2(y: np.ndarray, p: np.ndarray) -> float:
    ss = float(np.sum((y - y.mean()) ** 2))
    return 1.0 - float(np.sum((y - p) ** 2)) / ss if ss > 0 else float("nan")


REGRESSION_METRICS = {
    "r2": _r2,
    "rmse": lambda y, p: float(np.sqrt(np.mean((y - p) ** 2))),
    "mae": lambda y, p: float(np.mean(np.abs(y - p))),
}


def live_metric(task: str, metric: str, y_true: np.ndarray, y_pred: np.ndarray, *, confidence: float = 0.95,
                seed: int = 0) -> tuple[str, Interval]:
    """The live metric with its interval: accuracy + Wilson for classification, a bootstrap for regression."""
    if task == "classification":
        correct = int(np.sum(np.asarray(y_true).astype(str) == np.asarray(y_pred).astype(str)))
        return "accuracy", wilson_interval(correct, len(y_true), confidence)
    name = metric if metric in REGRESSION_METRICS else "r2"
    y, p = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    return name, bootstrap_interval(y, p, REGRESSION_METRICS[name], confidence=confidence, seed=seed)


def assess_performance(metric: str, live: Interval | None, baseline: float | None, max_drop: float,
                       *, note: str = "") -> Performance:
    """Degraded when the live estimate is worse than the baseline by more than ``max_drop`` AND the whole
    confidence interval lies on the worse side of the baseline (so a few unlucky labels do not trigger)."""
    if live is None or live.n == 0 or not np.isfinite(live.estimate):
        return Performance(metric, "unknown", live, baseline, 0, note or "no feedback labels joined to the log yet")
    if baseline is None or not np.isfinite(baseline):
        return Performance(metric, "unknown", live, None, live.n,
                           note or f"no holdout {metric} recorded for this model version; nothing to compare with")
    higher = metric not in LOWER_IS_BETTER
    if higher:
        worse = live.estimate < baseline - max_drop and live.high < baseline
    else:
        worse = live.estimate > baseline + max_drop and live.low > baseline
    return Performance(metric, "degraded" if worse else "ok", live, baseline, live.n, note)


@dataclass
class Decision:
    """Whether to retrain, and why (every rule that fired, in words)."""

    retrain: bool
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def decide_retrain(drift: DriftResult, perf: Performance, spec: RetrainSpec) -> Decision:
    """Retrain when material drift covers enough features, the predictions drifted, or live accuracy fell."""
    reasons: list[str] = []
    notes: list[str] = []
    if not drift.enough_data:
        notes.append(f"only {drift.n_live} logged rows (< drift.min_rows={drift.min_rows}): drift not judged")
    else:
        frac = drift.material_fraction
        if drift.features and frac >= spec.drifted_features_fraction:
            reasons.append(
                f"material drift in {len(drift.material_features)}/{len(drift.features)} features "
                f"({frac:.0%} >= retrain.drifted_features_fraction={spec.drifted_features_fraction:.0%}): "
                f"{', '.join(drift.material_features)}"
            )
        elif drift.drifted_features:
            notes.append(
                f"drift in {', '.join(drift.drifted_features)} ({len(drift.material_features)} material), "
                f"below retrain.drifted_features_fraction={spec.drifted_features_fraction:.0%}"
            )
        if drift.prediction_drift and drift.prediction is not None:
            reasons.append(f"prediction drift (PSI {drift.prediction.psi:.3f}, p={drift.prediction.p_value:.2g})")
    if perf.status == "degraded" and perf.live is not None:
        reasons.append(
            f"live {perf.metric} {perf.live.estimate:.3f} (CI {perf.live.low:.3f}-{perf.live.high:.3f}, "
            f"n={perf.live.n}) vs holdout {perf.baseline:.3f}: worse by more than "
            f"retrain.max_accuracy_drop={spec.max_accuracy_drop}"
        )
    elif perf.status == "unknown":
        notes.append(f"live {perf.metric} unknown: {perf.note}")
    if reasons and not spec.enabled:
        notes.append("retraining is disabled (monitor.retrain.enabled: false); reasons listed for information")
    return Decision(bool(reasons) and spec.enabled, reasons, notes)
