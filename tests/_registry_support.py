"""Builders for registry tests: a hand-fitted FittedModel, a PreparedData and a SearchResult-like object.

The data and tune stages are not needed: features are fitted here on a small frame, and the
estimator is a real scikit-learn model fitted on ``features.transform(df)`` with class indices.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from mlops_ray.data.features import CategoricalFeature, FeaturePipeline, NumericFeature
from mlops_ray.data.prepared import DataReport, PreparedData
from mlops_ray.tune.fitted import FittedModel

CLASSES = ["no", "yes"]


def make_frame(n: int = 240, seed: int = 0) -> pd.DataFrame:
    """Two numeric columns and one categorical; the label mostly follows x1 + colour."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=n)
    x2 = rng.normal(size=n)
    color = rng.choice(["red", "green", "blue"], size=n)
    logit = 2.5 * x1 + np.where(color == "red", 1.0, -0.5) + 0.3 * rng.normal(size=n)
    y = np.where(logit > 0, "yes", "no")
    return pd.DataFrame({"x1": x1, "x2": x2, "color": color, "label": y})


def fit_features(df: pd.DataFrame) -> FeaturePipeline:
    num = [NumericFeature(name=c, fill=float(df[c].median()), center=float(df[c].mean()),
                          scale=float(df[c].std())) for c in ("x1", "x2")]
    cat = [CategoricalFeature(name="color", fill="red", categories=["red", "green", "blue"])]
    return FeaturePipeline(numeric=num, categorical=cat, target="label", task="classification",
                           classes=list(CLASSES), input_order=["x1", "x2", "color"])


def class_indices(df: pd.DataFrame) -> np.ndarray:
    return df["label"].map({c: i for i, c in enumerate(CLASSES)}).to_numpy(dtype=np.int64)


def fit_model(df: pd.DataFrame, estimator: Any, features: FeaturePipeline | None = None,
              columns: list[str] | None = None) -> FittedModel:
    """Fit ``estimator`` on the transformed frame; ``columns`` keeps only some features (a weaker model)."""
    features = features or fit_features(df)
    X = features.transform(df)
    if columns is not None:
        from sklearn.compose import ColumnTransformer

        keep = [features.feature_names_out.index(c) for c in columns]
        from sklearn.pipeline import make_pipeline

        estimator = make_pipeline(ColumnTransformer([("keep", "passthrough", keep)]), estimator)
    estimator.fit(X, class_indices(df))
    return FittedModel(features=features, estimator=estimator, kind="sklearn", params=estimator.get_params())


def make_prepared(train: pd.DataFrame, holdout: pd.DataFrame, features: FeaturePipeline,
                  fingerprint: str = "fp-test-0001") -> PreparedData:
    X_train, X_hold = features.transform(train), features.transform(holdout)
    cols = features.input_columns
    report = DataReport(rows_read=len(train) + len(holdout), rows_clean=len(train) + len(holdout), rows_rejected=0,
                        rows_train=len(train), rows_holdout=len(holdout), fingerprint=fingerprint)
    return PreparedData(features=features, X_train=X_train, y_train=class_indices(train),
                        folds=np.arange(len(train)) % 3, X_holdout=X_hold, y_holdout=class_indices(holdout),
                        holdout_frame=holdout[cols].reset_index(drop=True),
                        train_frame_sample=train[cols].head(5).reset_index(drop=True),
                        fingerprint=fingerprint, report=report, reference={})


@dataclass
class FakeSearch:
    """Duck-typed SearchResult: what register_model reads from the tuning stage."""

    model: FittedModel
    parent_run_id: str
    experiment_id: str
    best_config: dict[str, Any] = field(default_factory=dict)
    cv_mean: float = 0.9
    cv_std: float = 0.01
    metric: str = "accuracy"
    mode: str = "max"
    holdout_metrics: dict[str, float] = field(default_factory=dict)
    trials: list[Any] = field(default_factory=list)
    search_settings: dict[str, Any] = field(default_factory=dict)
