"""A fitted model as the later stages see it: the fitted features and the fitted estimator, together."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from mlops_ray.data.features import FeaturePipeline


@dataclass
class FittedModel:
    """Features + estimator as one object; what tuning hands to the registry and Serve loads back.

    The estimator sees class indices 0..K-1; ``predict`` maps them back to the original labels.
    """

    features: FeaturePipeline
    estimator: Any  # fitted; predict(X) and, for classifiers, predict_proba(X)
    kind: Literal["sklearn", "torch_mlp"] = "sklearn"
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def task(self) -> str:
        return self.features.task

    @property
    def classes(self) -> list[Any] | None:
        return self.features.classes

    @property
    def has_proba(self) -> bool:
        """A classifier that gives class probabilities (SVC(probability=False), for one, does not)."""
        return self.task == "classification" and hasattr(self.estimator, "predict_proba")

    def predict_matrix(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(predictions, probabilities or None) for an already transformed matrix."""
        if self.task == "classification":
            if not self.has_proba:  # labels only: its predict gives the class index
                idx = np.asarray(self.estimator.predict(X)).astype(np.int64).reshape(-1)
                if self.classes is None:
                    return idx, None
                return np.asarray(self.classes)[idx], None
            proba = np.asarray(self.estimator.predict_proba(X), dtype=np.float64)
            if self.classes is not None:  # a class with no training row has no column of its own: add it
                proba = expand_proba(proba, self.estimator, len(self.classes))
            idx = proba.argmax(axis=1)
            labels = np.asarray(self.classes if self.classes is not None else np.arange(proba.shape[1]))
            return labels[idx], proba
        return np.asarray(self.estimator.predict(X), dtype=np.float64).reshape(-1), None

    def predict(self, df: pd.DataFrame) -> np.ndarray:
        return self.predict_matrix(self.features.transform(df))[0]

    def predict_proba(self, df: pd.DataFrame) -> np.ndarray | None:
        return self.predict_matrix(self.features.transform(df))[1]


def expand_proba(proba: np.ndarray | None, est: Any, n_classes: int) -> np.ndarray | None:
    """Probabilities over all K classes, even when a fold's training rows missed a class."""
    if proba is None:
        return None
    classes = np.asarray(getattr(est, "classes_", np.arange(proba.shape[1]))).astype(int)
    if proba.shape[1] == n_classes and np.array_equal(classes, np.arange(n_classes)):
        return proba
    full = np.zeros((proba.shape[0], n_classes))
    full[:, classes] = proba
    return full
