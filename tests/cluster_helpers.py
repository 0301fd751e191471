"""Tiny fitted models and Parquet inputs shared by the cluster tests (no Ray needed)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from mlops_ray.data.features import CategoricalFeature, FeaturePipeline, NumericFeature
from mlops_ray.tune.fitted import FittedModel


def make_frame(n: int, seed: int = 0, start_id: int = 0) -> pd.DataFrame:
    """Rows with a unique ``row_id``, three numeric inputs, one categorical, and a label."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    color = rng.choice(["red", "green", "blue"], size=n)
    logit = x[:, 0] - 0.5 * x[:, 1] + (color == "red") * 0.8
    label = np.where(logit + rng.normal(scale=0.3, size=n) > 0, "yes", "no")
    return pd.DataFrame({"row_id": np.arange(start_id, start_id + n), "x0": x[:, 0], "x1": x[:, 1],
                         "x2": x[:, 2], "color": color, "label": label})


def fit_model(df: pd.DataFrame) -> FittedModel:
    """A real logistic regression on the frame, with fitted (scaled, one-hot) features."""
    from sklearn.linear_model import LogisticRegression

    numeric = [NumericFeature(name=c, fill=float(df[c].median()), center=float(df[c].mean()),
                              scale=float(df[c].std()) or 1.0) for c in ("x0", "x1", "x2")]
    categorical = [CategoricalFeature(name="color", fill="red", categories=["red", "green", "blue"])]
    features = FeaturePipeline(numeric=numeric, categorical=categorical, target="label",
                               task="classification", classes=["no", "yes"])
    y = (df["label"] == "yes").astype(int).to_numpy()
    est = LogisticRegression(max_iter=200).fit(features.transform(df), y)
    return FittedModel(features=features, estimator=est, kind="sklearn", params={"C": 1.0})


def write_parquet_parts(df: pd.DataFrame, folder: Path, parts: int) -> Path:
    """Write ``df`` as ``parts`` Parquet files (so Ray Data reads several blocks)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, chunk in enumerate(np.array_split(np.arange(len(df)), parts)):
        df.iloc[chunk].drop(columns=["label"]).to_parquet(folder / f"part-{i:03d}.parquet", index=False)
    return folder
