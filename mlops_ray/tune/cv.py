"""k-fold cross-validation of one config: the objective of a trial. Pure (no Ray).

Folds come precomputed from the data stage (``PreparedData.folds``: a fold id per training row,
stratified for classification). ``iter_cv`` yields fold scores as they finish so that the caller
(the Tune trial) can report after each one; with ``n_jobs > 1`` folds run in threads (scikit-learn
and torch release the GIL in their heavy loops), which is how a trial uses more than one CPU.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mlops_ray.exceptions import TuneError
from mlops_ray.tune.estimators import EstimatorFactory
from mlops_ray.tune.fitted import expand_proba
from mlops_ray.tune.metrics import score_all

# (fold, epoch, metrics on the fold's validation rows after that epoch)
EpochCallback = Callable[[int, int, dict[str, float]], None]


@dataclass
class FoldScore:
    fold: int
    metrics: dict[str, float]
    fit_s: float
    n_train: int
    n_val: int


@dataclass
class CVResult:
    """All folds of one config; ``mean``/``std`` are over folds (population std, as scikit-learn reports)."""

    folds: list[FoldScore] = field(default_factory=list)

    def values(self, metric: str) -> np.ndarray:
        return np.array([f.metrics.get(metric, np.nan) for f in sorted(self.folds, key=lambda f: f.fold)])

    def mean(self, metric: str) -> float:
        v = self.values(metric)
        return float(np.nanmean(v)) if len(v) and not np.isnan(v).all() else float("nan")

    def std(self, metric: str) -> float:
        v = self.values(metric)
        return float(np.nanstd(v)) if len(v) and not np.isnan(v).all() else float("nan")

    def summary(self) -> dict[str, float]:
        names = sorted({m for f in self.folds for m in f.metrics})
        out: dict[str, float] = {}
        for m in names:
            out[f"mean_{m}"] = self.mean(m)
            out[f"std_{m}"] = self.std(m)
        return out


def fold_indices(folds: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """(train rows, validation rows) per fold id 0..k-1."""
    folds = np.asarray(folds)
    k = int(folds.max()) + 1 if len(folds) else 0
    if k < 2:
        raise TuneError(f"cross-validation needs at least 2 folds, the data has {k}; set data.split.folds >= 2")
    out = []
    for i in range(k):
        val = np.flatnonzero(folds == i)
        if len(val) == 0:
            raise TuneError(f"fold {i} of {k} is empty; use fewer folds (data.split.folds) for this data")
        out.append((np.flatnonzero(folds != i), val))
    return out


def predict_for_scoring(est: Any, X: np.ndarray, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    """(predictions, class probabilities or None)."""
    if task == "classification" and hasattr(est, "predict_proba"):
        try:
            proba = np.asarray(est.predict_proba(X), dtype=np.float64)
        except (AttributeError, NotImplementedError):  # e.g. SVC(probability=False)
            return np.asarray(est.predict(X)), None
        classes = np.asarray(getattr(est, "classes_", np.arange(proba.shape[1])))
        return classes[proba.argmax(axis=1)], proba
    return np.asarray(est.predict(X)), None


def fit_and_score(factory: EstimatorFactory, config: dict[str, Any], X: np.ndarray, y: np.ndarray,
                  train: np.ndarray, val: np.ndarray, task: str, n_classes: int, fold: int = 0,
                  on_epoch: EpochCallback | None = None) -> FoldScore:
    """Fit one fold and score it on its validation rows with every metric of the task."""
    est = factory.build(config)
    t0 = time.perf_counter()
    Xt, yt, Xv, yv = X[train], y[train], X[val], y[val]
    if on_epoch is not None and getattr(est, "supports_epoch_callback", False):
        def _epoch(epoch: int, model: Any) -> None:
            pred, proba = predict_for_scoring(model, Xv, task)
            on_epoch(fold, epoch, score_all(task, yv, pred, expand_proba(proba, model, n_classes), n_classes))

        est.fit(Xt, yt, epoch_callback=_epoch)
    else:
        est.fit(Xt, yt)
    fit_s = time.perf_counter() - t0
    return FoldScore(fold=fold, metrics=score_fold(est, Xv, yv, task, n_classes), fit_s=fit_s, n_train=len(train),
                     n_val=len(val))


def score_fold(est: Any, Xv: np.ndarray, yv: np.ndarray, task: str, n_classes: int) -> dict[str, float]:
    """Every metric of the task for a fitted estimator on a fold's validation rows."""
    pred, proba = predict_for_scoring(est, Xv, task)
    return score_all(task, yv, pred, expand_proba(proba, est, n_classes) if task == "classification" else None,
                     n_classes)


def iter_cv(factory: EstimatorFactory, config: dict[str, Any], X: np.ndarray, y: np.ndarray, folds: np.ndarray,
            task: str, n_classes: int = 0, n_jobs: int = 1,
            on_epoch: EpochCallback | None = None) -> Iterator[FoldScore]:
    """Yield each fold's score as soon as it is done (fold order when ``n_jobs == 1``)."""
    splits = fold_indices(folds)
    if n_jobs <= 1 or len(splits) == 1:
        for i, (tr, va) in enumerate(splits):
            yield fit_and_score(factory, config, X, y, tr, va, task, n_classes, i, on_epoch)
        return
    with ThreadPoolExecutor(max_workers=min(n_jobs, len(splits)), thread_name_prefix="cv-fold") as pool:
        pending: set[Future[FoldScore]] = {
            pool.submit(fit_and_score, factory, config, X, y, tr, va, task, n_classes, i, None)
            for i, (tr, va) in enumerate(splits)
        }
        try:
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                for fut in sorted(done, key=lambda f: f.result().fold if f.exception() is None else -1):
                    yield fut.result()
        finally:  # the consumer stopped early (e.g. ASHA): do not start the folds not yet running
            for fut in pending:
                fut.cancel()


def cross_validate(factory: EstimatorFactory, config: dict[str, Any], X: np.ndarray, y: np.ndarray,
                   folds: np.ndarray, task: str, n_classes: int = 0, n_jobs: int = 1) -> CVResult:
    """All folds at once (no Ray): what a trial computes, for tests and for a serial baseline."""
    return CVResult(folds=sorted(iter_cv(factory, config, X, y, folds, task, n_classes, n_jobs),
                                 key=lambda f: f.fold))
