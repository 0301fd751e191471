"""The promotion gate: absolute thresholds, then a paired bootstrap against the champion. Pure numpy.

A challenger replaces the champion only when the lower bound of a two-sided ``confidence`` interval
on its improvement (challenger minus champion for scores, champion minus challenger for errors),
computed by resampling the *same* holdout rows for both models, is above ``margin``. A point
estimate that is better by noise alone (the interval straddles the margin) is rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from mlops_ray.exceptions import RegistryError

# metric -> (direction, task, needs probabilities)
METRICS: dict[str, tuple[str, str, bool]] = {
    "accuracy": ("max", "classification", False),
    "f1_macro": ("max", "classification", False),
    "roc_auc": ("max", "classification", True),
    "log_loss": ("min", "classification", True),
    "r2": ("max", "regression", False),
    "rmse": ("min", "regression", False),
    "mae": ("min", "regression", False),
}
_EPS = 1e-15
_CHUNK = 256  # bootstrap replicates computed at once (bounded memory for large holdouts)


def metric_mode(name: str) -> str:
    """'max' for scores, 'min' for errors; raises RegistryError listing the known metrics."""
    if name not in METRICS:
        raise RegistryError(f"unknown metric {name!r}; the gate knows {', '.join(METRICS)}")
    return METRICS[name][0]


def check_gate_spec(thresholds: dict[str, float], task: str = "auto") -> None:
    """``registry.gate.thresholds`` names known metrics of the task (when ``data.task`` says which): checked
    before any work (a typo, or r2 on a classifier, surfaced only after the search)."""
    unknown = [m for m in thresholds if m not in METRICS]
    if unknown:
        raise RegistryError(f"registry.gate.thresholds: unknown metric(s) {unknown}; the gate knows "
                            f"{', '.join(METRICS)}")
    other = [m for m in thresholds if task != "auto" and METRICS[m][1] != task]
    if other:
        raise RegistryError(f"registry.gate.thresholds: {other} are not {task} metrics (data.task is {task}); "
                            f"use {', '.join(task_metrics(task, True))}")


def task_metrics(task: str, has_proba: bool) -> list[str]:
    return [m for m, (_, t, p) in METRICS.items() if t == task and (has_proba or not p)]


@dataclass
class Predictions:
    """One model's predictions on the holdout rows, in a shared label space.

    Classification: ``y_true`` and ``pred`` are indices into the reference classes (-1: a label the
    reference does not know, never correct), ``proba`` has one column per reference class.
    Regression: floats, ``proba`` is None.
    """

    task: str
    y_true: np.ndarray
    pred: np.ndarray
    proba: np.ndarray | None = None

    def __post_init__(self) -> None:
        if len(self.y_true) != len(self.pred) or (self.proba is not None and len(self.proba) != len(self.pred)):
            raise RegistryError(f"predictions and labels differ in length: {len(self.pred)} vs {len(self.y_true)}")
        if len(self.y_true) == 0:
            raise RegistryError("the holdout is empty: the gate needs at least one row to compare models on")

    def subset(self, mask: np.ndarray) -> Predictions:
        """The same predictions on the rows where ``mask`` is true."""
        return Predictions(self.task, self.y_true[mask], self.pred[mask],
                           None if self.proba is None else self.proba[mask])


# ---------------------------------------------------------------------------------------- metrics


def _f1_macro(y: np.ndarray, p: np.ndarray, k: int) -> float:
    tp = np.bincount(y[y == p], minlength=k)[:k].astype(float)
    pred_count = np.bincount(p[p >= 0], minlength=k)[:k].astype(float)
    true_count = np.bincount(y, minlength=k)[:k].astype(float)
    denom = pred_count + true_count
    f1 = np.divide(2 * tp, denom, out=np.zeros(k), where=denom > 0)
    present = (true_count > 0) | (pred_count > 0)  # as sklearn: labels seen in either
    return float(f1[present].mean()) if present.any() else 0.0


def _roc_auc(y: np.ndarray, proba: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    present = np.unique(y)
    if len(present) < 2:
        return float("nan")
    if proba.shape[1] == 2:
        return float(roc_auc_score(y, proba[:, 1]))
    p = proba[:, present]
    p = p / np.clip(p.sum(axis=1, keepdims=True), _EPS, None)
    return float(roc_auc_score(y, p, multi_class="ovr", labels=present, average="weighted"))


def metric_value(name: str, p: Predictions, idx: np.ndarray | None = None) -> float:
    """One metric on the predictions (optionally on the rows ``idx``, with repeats)."""
    y, pred, proba = p.y_true, p.pred, p.proba
    if idx is not None:
        y, pred = y[idx], pred[idx]
        proba = proba[idx] if proba is not None else None
    if METRICS.get(name, ("", "", False))[2] and proba is None:
        raise RegistryError(f"metric {name!r} needs class probabilities, which this model does not give")
    if name == "accuracy":
        return float(np.mean(y == pred))
    if name == "f1_macro":
        k = proba.shape[1] if proba is not None else int(max(y.max(), pred.max())) + 1
        return _f1_macro(y.astype(np.int64), pred.astype(np.int64), k)
    if name == "log_loss":
        return float(np.mean(_row_log_loss(y, proba)))
    if name == "roc_auc":
        return _roc_auc(y, proba)
    if name == "rmse":
        return float(np.sqrt(np.mean((y - pred) ** 2)))
    if name == "mae":
        return float(np.mean(np.abs(y - pred)))
    if name == "r2":
        sst = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum((y - pred) ** 2)) / sst if sst > 0 else float("nan")
    metric_mode(name)  # raises with the list of known metrics
    raise AssertionError(name)  # pragma: no cover


def _row_log_loss(y: np.ndarray, proba: np.ndarray) -> np.ndarray:
    p = np.clip(proba, _EPS, 1.0)
    p = p / p.sum(axis=1, keepdims=True)
    picked = np.where(y >= 0, p[np.arange(len(y)), np.clip(y, 0, None)], _EPS)
    return -np.log(np.clip(picked, _EPS, 1.0))


def all_metrics(p: Predictions) -> dict[str, float]:
    """Every gate metric the task and the predictions allow."""
    return {m: metric_value(m, p) for m in task_metrics(p.task, p.proba is not None)}


def _row_values(name: str, p: Predictions) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]] | None:
    """Per-row values and the aggregate over a resample, for metrics that are a function of a row mean."""
    if name == "accuracy":
        return (p.y_true == p.pred).astype(np.float64), lambda m: m
    if name == "log_loss" and p.proba is not None:
        return _row_log_loss(p.y_true, p.proba), lambda m: m
    if name == "mae":
        return np.abs(p.y_true - p.pred), lambda m: m
    if name == "rmse":
        return (p.y_true - p.pred) ** 2, np.sqrt
    return None


# -------------------------------------------------------------------------------------- bootstrap


@dataclass(frozen=True)
class BootstrapResult:
    """Improvement of A over B (positive = A better), its point estimate and percentile interval."""

    delta: float
    ci_low: float
    ci_high: float
    confidence: float
    n_bootstrap: int
    n_rows: int


def paired_bootstrap_rows(a: np.ndarray, b: np.ndarray, *, mode: str = "max", n_bootstrap: int = 1000,
                          confidence: float = 0.95, seed: int | None = 0,
                          agg: Callable[[np.ndarray], np.ndarray] = lambda m: m) -> BootstrapResult:
    """Paired bootstrap on per-row values (e.g. 0/1 correctness): metric = agg(mean(values[rows]))."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise RegistryError(f"paired rows must be two equal, non-empty vectors; got {a.shape} and {b.shape}")
    sign = 1.0 if mode == "max" else -1.0
    rng = np.random.default_rng(seed)
    n = len(a)
    deltas = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, _CHUNK):
        stop = min(start + _CHUNK, n_bootstrap)
        idx = rng.integers(0, n, size=(stop - start, n))
        deltas[start:stop] = sign * (agg(a[idx].mean(axis=1)) - agg(b[idx].mean(axis=1)))
    point = sign * float(agg(np.array([a.mean()]))[0] - agg(np.array([b.mean()]))[0])
    return _interval(point, deltas, confidence, n)


def paired_bootstrap(metric: str, a: Predictions, b: Predictions, *, n_bootstrap: int = 1000,
                     confidence: float = 0.95, seed: int | None = 0) -> BootstrapResult:
    """Paired bootstrap of ``metric(a) - metric(b)`` (sign flipped for errors) on the same rows."""
    if not np.array_equal(a.y_true, b.y_true):
        raise RegistryError("a paired comparison needs both models scored on the same rows with the same labels")
    mode = metric_mode(metric)
    rows_a, rows_b = _row_values(metric, a), _row_values(metric, b)
    if rows_a is not None and rows_b is not None:
        return paired_bootstrap_rows(rows_a[0], rows_b[0], mode=mode, n_bootstrap=n_bootstrap,
                                     confidence=confidence, seed=seed, agg=rows_a[1])
    sign = 1.0 if mode == "max" else -1.0
    rng = np.random.default_rng(seed)
    n = len(a.y_true)
    if metric == "roc_auc" and a.proba is not None and b.proba is not None and a.proba.shape[1] == 2:
        return _binary_auc_bootstrap(a, b, n_bootstrap, confidence, rng)
    deltas = np.empty(n_bootstrap)
    for i in range(n_bootstrap):
        idx = rng.integers(0, n, size=n)
        deltas[i] = sign * (metric_value(metric, a, idx) - metric_value(metric, b, idx))
    point = sign * (metric_value(metric, a) - metric_value(metric, b))
    return _interval(point, deltas[np.isfinite(deltas)], confidence, n)


def _auc_rows(y: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Binary ROC AUC of each row of (B, n) labels/scores (Mann-Whitney with average ranks); nan if one class."""
    from scipy.stats import rankdata

    ranks = rankdata(score, axis=1)
    pos = (y == 1).sum(axis=1).astype(np.float64)
    neg = y.shape[1] - pos
    with np.errstate(invalid="ignore", divide="ignore"):
        return (np.where(y == 1, ranks, 0.0).sum(axis=1) - pos * (pos + 1) / 2) / (pos * neg)


def _binary_auc_bootstrap(a: Predictions, b: Predictions, n_bootstrap: int, confidence: float,
                          rng: np.random.Generator) -> BootstrapResult:
    assert a.proba is not None and b.proba is not None
    n = len(a.y_true)
    deltas = np.empty(n_bootstrap)
    for start in range(0, n_bootstrap, _CHUNK):
        stop = min(start + _CHUNK, n_bootstrap)
        idx = rng.integers(0, n, size=(stop - start, n))
        y = a.y_true[idx]
        deltas[start:stop] = _auc_rows(y, a.proba[:, 1][idx]) - _auc_rows(y, b.proba[:, 1][idx])
    point = metric_value("roc_auc", a) - metric_value("roc_auc", b)
    return _interval(point, deltas[np.isfinite(deltas)], confidence, n)


def _interval(point: float, deltas: np.ndarray, confidence: float, n: int) -> BootstrapResult:
    if len(deltas) == 0:
        raise RegistryError("the bootstrap produced no finite metric differences (e.g. roc_auc on one class)")
    alpha = 1.0 - confidence
    lo, hi = np.quantile(deltas, [alpha / 2, 1 - alpha / 2])
    return BootstrapResult(float(point), float(lo), float(hi), confidence, len(deltas), n)


# ------------------------------------------------------------------------------------------- gate


@dataclass
class ThresholdCheck:
    metric: str
    value: float
    limit: float
    kind: str  # "min" (a score must be at least) or "max" (an error must be at most)
    passed: bool


def check_thresholds(metrics: dict[str, float], thresholds: dict[str, float]) -> list[ThresholdCheck]:
    """Scores must reach their minimum, errors (rmse, mae, log_loss) stay under their maximum."""
    out = []
    for name, limit in thresholds.items():
        mode = metric_mode(name)
        if name not in metrics:
            raise RegistryError(f"gate threshold on {name!r}, but the challenger has no such metric; "
                                f"available: {', '.join(sorted(metrics))}")
        value = float(metrics[name])
        kind = "min" if mode == "max" else "max"
        passed = bool(np.isfinite(value) and (value >= limit if kind == "min" else value <= limit))
        out.append(ThresholdCheck(name, value, float(limit), kind, passed))
    return out


@dataclass
class GateDecision:
    """What the gate decided and why, with every number it used."""

    accepted: bool
    reason: str
    metric: str
    mode: str
    challenger_metrics: dict[str, float]
    thresholds: list[ThresholdCheck] = field(default_factory=list)
    champion_version: str | None = None
    champion_score: float | None = None
    bootstrap: BootstrapResult | None = None
    margin: float = 0.0
    seed: int | None = None

    @property
    def challenger_score(self) -> float:
        return float(self.challenger_metrics[self.metric])

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_tags(self, prefix: str = "mlops_ray.gate.") -> dict[str, str]:
        """Flat string tags for an MLflow model version."""
        tags = {
            "decision": "accepted" if self.accepted else "rejected",
            "reason": self.reason,
            "metric": self.metric,
            "challenger_score": f"{self.challenger_score:.6g}",
            "margin": f"{self.margin:g}",
            "champion_version": self.champion_version or "none",
        }
        if self.champion_score is not None:
            tags["champion_score"] = f"{self.champion_score:.6g}"
        if self.bootstrap is not None:
            bs = self.bootstrap
            tags.update(delta=f"{bs.delta:.6g}", ci_low=f"{bs.ci_low:.6g}", ci_high=f"{bs.ci_high:.6g}",
                        confidence=f"{bs.confidence:g}", n_bootstrap=str(bs.n_bootstrap), n_rows=str(bs.n_rows))
        for t in self.thresholds:
            tags[f"threshold.{t.metric}"] = f"{t.kind} {t.limit:g}: {t.value:.6g} {'pass' if t.passed else 'FAIL'}"
        return {prefix + k: v for k, v in tags.items()}

    def summary(self) -> str:
        head = f"gate: {'ACCEPTED' if self.accepted else 'REJECTED'} on {self.metric} ({self.mode})"
        return f"{head}: {self.reason}"


def decide(metric: str, challenger: Predictions, champion: Predictions | None = None, *,
           champion_version: str | None = None, thresholds: dict[str, float] | None = None,
           margin: float = 0.0, confidence: float = 0.95, n_bootstrap: int = 1000,
           seed: int | None = 0) -> GateDecision:
    """Run the gate: thresholds first, then (when there is a champion) the paired bootstrap."""
    mode = metric_mode(metric)
    metrics = all_metrics(challenger)
    if metric not in metrics:
        raise RegistryError(f"gate metric {metric!r} cannot be computed for this model; "
                            f"available: {', '.join(metrics)}")
    checks = check_thresholds(metrics, thresholds or {})
    base = dict(metric=metric, mode=mode, challenger_metrics=metrics, thresholds=checks, margin=margin,
                seed=seed, champion_version=champion_version)
    failed = [t for t in checks if not t.passed]
    if failed:
        why = "; ".join(f"{t.metric} {t.value:.4g} {'<' if t.kind == 'min' else '>'} {t.kind} {t.limit:g}"
                        for t in failed)
        return GateDecision(False, f"absolute threshold(s) not met: {why}", **base)
    if champion is None:
        met = f" (thresholds met: {', '.join(t.metric for t in checks)})" if checks else " (no thresholds set)"
        return GateDecision(True, f"first model of this name: accepted on thresholds alone{met}", **base)
    bs = paired_bootstrap(metric, challenger, champion, n_bootstrap=n_bootstrap, confidence=confidence, seed=seed)
    champ = metric_value(metric, champion)
    ci = f"{confidence:.0%} CI of the improvement [{bs.ci_low:+.4g}, {bs.ci_high:+.4g}]"
    numbers = (f"challenger {metrics[metric]:.4g} vs champion v{champion_version} {champ:.4g}, "
               f"improvement {bs.delta:+.4g}, {ci} over {bs.n_rows} holdout rows")
    if bs.ci_low > margin:
        reason = f"beats the champion: {numbers}; lower bound > margin {margin:g}"
        return GateDecision(True, reason, champion_score=champ, bootstrap=bs, **base)
    if bs.delta > margin:
        reason = f"better on the point estimate only, within noise: {numbers}; lower bound <= margin {margin:g}"
    elif bs.ci_high < 0:
        reason = f"worse than the champion: {numbers}"
    else:
        reason = f"no significant improvement (a tie within noise): {numbers}; lower bound <= margin {margin:g}"
    return GateDecision(False, reason, champion_score=champ, bootstrap=bs, **base)
