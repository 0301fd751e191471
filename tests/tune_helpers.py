"""Test helpers for the tuning stage: PreparedData built by hand, and estimators that sleep or record pids.

The data stage is not needed: a FeaturePipeline of untransformed numeric features over
``make_classification`` / ``make_regression`` output, with stratified (or plain) folds.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.linear_model import LogisticRegression

from mlops_ray.data.features import FeaturePipeline, NumericFeature
from mlops_ray.data.prepared import DataReport, PreparedData


def make_prepared(n: int = 240, n_features: int = 6, task: str = "classification", n_classes: int = 2,
                  n_folds: int = 3, seed: int = 0, holdout: float = 0.25) -> PreparedData:
    """A small, fully formed PreparedData (what mlops_ray.data.prepare would hand over)."""
    from sklearn.datasets import make_classification, make_regression
    from sklearn.model_selection import KFold, StratifiedKFold

    if task == "classification":
        X, y = make_classification(n_samples=n, n_features=n_features, n_informative=min(4, n_features),
                                   n_redundant=0, n_classes=n_classes, random_state=seed, class_sep=1.0)
        classes = [f"c{i}" for i in range(n_classes)]
    else:
        X, y = make_regression(n_samples=n, n_features=n_features, n_informative=min(4, n_features), noise=5.0,
                               random_state=seed)
        classes = None
    names = [f"x{i}" for i in range(n_features)]
    features = FeaturePipeline(numeric=[NumericFeature(name=c, fill=0.0, transform="none") for c in names],
                               categorical=[], target="target", task=task, classes=classes)  # type: ignore[arg-type]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)
    n_hold = int(n * holdout)
    hold, train = order[:n_hold], order[n_hold:]
    X_train, y_train = X[train], y[train]
    splitter = (StratifiedKFold(n_folds, shuffle=True, random_state=seed) if task == "classification"
                else KFold(n_folds, shuffle=True, random_state=seed))
    folds = np.zeros(len(train), dtype=np.int64)
    for i, (_, val) in enumerate(splitter.split(X_train, y_train)):
        folds[val] = i
    frame = pd.DataFrame(X, columns=names)
    fingerprint = hashlib.sha256(X.tobytes() + np.asarray(y).tobytes()).hexdigest()
    report = DataReport(rows_read=n, rows_clean=n, rows_rejected=0, rows_train=len(train), rows_holdout=n_hold,
                        fingerprint=fingerprint)
    return PreparedData(features=features, X_train=X_train, y_train=y_train, folds=folds, X_holdout=X[hold],
                        y_holdout=y[hold], holdout_frame=frame.iloc[hold].reset_index(drop=True),
                        train_frame_sample=frame.iloc[train[:5]].reset_index(drop=True), fingerprint=fingerprint,
                        report=report, reference={})


def tune_config(**tune: object) -> dict:
    """A pipeline config dict with the given ``tune`` section (data points at a bundled set, unused here)."""
    return {"name": "tunetest", "seed": 0, "data": {"source": {"bundled": "iris"}}, "tune": tune}


class SlowClassifier(ClassifierMixin, BaseEstimator):
    """Logistic regression that sleeps in fit and appends one line per fit to ``log_path`` (and its pid)."""

    def __init__(self, C: float = 1.0, sleep_s: float = 0.0, log_path: str = "", pid_dir: str = "") -> None:
        self.C = C
        self.sleep_s = sleep_s
        self.log_path = log_path
        self.pid_dir = pid_dir

    def fit(self, X: np.ndarray, y: np.ndarray) -> SlowClassifier:
        if self.pid_dir:
            Path(self.pid_dir, f"{uuid.uuid4().hex}.pid").write_text(str(os.getpid()))
        time.sleep(self.sleep_s)
        self.model_ = LogisticRegression(C=self.C, max_iter=200).fit(X, y)
        self.classes_ = self.model_.classes_
        if self.log_path:
            with open(self.log_path, "a") as f:
                f.write(f"{self.C}\n")
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict_proba(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.model_.predict(X)
