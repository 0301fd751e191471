"""CV metrics: names, optimisation direction, and scoring of one fold. Pure numpy/scikit-learn."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlops_ray.exceptions import TuneError

# name -> (mode, tasks it applies to, needs class probabilities)
_METRICS: dict[str, tuple[str, tuple[str, ...], bool]] = {
    "accuracy": ("max", ("classification",), False),
    "f1_macro": ("max", ("classification",), False),
    "roc_auc": ("max", ("classification",), True),
    "log_loss": ("min", ("classification",), True),
    "r2": ("max", ("regression",), False),
    "rmse": ("min", ("regression",), False),
    "mae": ("min", ("regression",), False),
}
AUTO_METRIC = {"classification": "accuracy", "regression": "r2"}
METRIC_NAMES = tuple(_METRICS)


@dataclass(frozen=True)
class MetricSpec:
    """The metric a search optimises, and in which direction."""

    name: str
    mode: str  # "max" or "min"
    needs_proba: bool

    def better(self, a: float, b: float) -> bool:
        """True when score ``a`` is strictly better than ``b``."""
        return a > b if self.mode == "max" else a < b

    @property
    def worst(self) -> float:
        return -np.inf if self.mode == "max" else np.inf


def resolve_metric(name: str, task: str) -> MetricSpec:
    """``"auto"`` -> accuracy (classification) or r2 (regression); checks the metric fits the task."""
    if task not in AUTO_METRIC:
        raise TuneError(f"unknown task {task!r}; expected classification or regression")
    key = AUTO_METRIC[task] if name == "auto" else name
    if key not in _METRICS:
        raise TuneError(f"tune.metric {name!r} is not supported; use one of auto, {', '.join(METRIC_NAMES)}")
    mode, tasks, proba = _METRICS[key]
    if task not in tasks:
        allowed = [m for m, v in _METRICS.items() if task in v[1]]
        raise TuneError(f"tune.metric {key!r} does not apply to {task}; use one of {', '.join(allowed)}")
    return MetricSpec(key, mode, proba)


def task_metrics(task: str) -> list[str]:
    """All metrics reported for a task (the optimised one is among them)."""
    return [m for m, v in _METRICS.items() if task in v[1]]


def score(name: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None = None,
          n_classes: int | None = None) -> float:
    """One metric on one set of predictions; classification labels are class indices 0..K-1."""
    from sklearn import metrics as skm

    if name == "accuracy":
        return float(skm.accuracy_score(y_true, y_pred))
    if name == "f1_macro":
        return float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0))
    if name in ("roc_auc", "log_loss"):
        if proba is None:
            raise TuneError(f"metric {name!r} needs predict_proba, which this estimator does not provide; "
                            "pick accuracy or f1_macro, or an estimator with predict_proba")
        k = n_classes or proba.shape[1]
        labels = np.arange(k)
        p = np.clip(np.asarray(proba, dtype=np.float64), 1e-15, 1.0)
        if name == "log_loss":
            return float(skm.log_loss(y_true, p / p.sum(axis=1, keepdims=True), labels=labels))
        present = np.unique(y_true)
        if len(present) < 2:
            return float("nan")
        if k == 2:
            return float(skm.roc_auc_score(y_true, proba[:, 1]))
        # One-vs-rest over the classes present in this fold, weighted by their frequency.
        p = p / p.sum(axis=1, keepdims=True)
        if len(present) == 2:  # a fold holding two of k classes (a rare class): binary AUC between those two
            q = p[:, present]
            return float(skm.roc_auc_score(y_true == present[1], q[:, 1] / q.sum(axis=1)))
        return float(skm.roc_auc_score(y_true, p[:, present] / p[:, present].sum(axis=1, keepdims=True),
                                       multi_class="ovr", labels=present, average="weighted"))
    if name == "r2":
        return float(skm.r2_score(y_true, y_pred))
    if name == "rmse":
        return float(np.sqrt(np.mean((np.asarray(y_true, float) - np.asarray(y_pred, float)) ** 2)))
    if name == "mae":
        return float(np.mean(np.abs(np.asarray(y_true, float) - np.asarray(y_pred, float))))
    raise TuneError(f"unknown metric {name!r}; use one of {', '.join(METRIC_NAMES)}")


def score_all(task: str, y_true: np.ndarray, y_pred: np.ndarray, proba: np.ndarray | None,
              n_classes: int | None = None) -> dict[str, float]:
    """Every metric of the task that the predictions allow (probability metrics need ``proba``)."""
    out: dict[str, float] = {}
    for name in task_metrics(task):
        if _METRICS[name][2] and proba is None:
            continue
        out[name] = score(name, y_true, y_pred, proba, n_classes)
    return out
