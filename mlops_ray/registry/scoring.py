"""Score packaged models on the same holdout rows, in one shared label space, for the gate. Pure numpy."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from mlops_ray.exceptions import MlopsRayError, RegistryError
from mlops_ray.registry.gate import Predictions


def _key(label: Any) -> str:
    # Labels may come back from JSON as int where they were numpy ints, or as str: compare by text.
    return str(label.item() if isinstance(label, np.generic) else label)


def score_on_holdout(model: Any, frame: pd.DataFrame, y_true: np.ndarray, task: str,
                     classes: list[Any] | None) -> Predictions:
    """``model`` (a FittedModel) predicted on ``frame``; labels mapped to indices of ``classes``.

    ``y_true`` holds class indices into ``classes`` (classification) or floats (regression), as in
    PreparedData. A model with a different class list is aligned by label; a label ``classes`` does
    not know becomes -1 (always wrong), a class the model lacks gets probability 0.
    """
    if model.task != task:
        raise RegistryError(f"cannot compare a {model.task} model with a {task} holdout")
    try:
        labels, proba = model.predict_matrix(model.features.transform(frame))
    except MlopsRayError as e:
        raise RegistryError(f"the model cannot score the holdout rows: {e}") from e
    y = np.asarray(y_true)
    if task == "regression":
        return Predictions(task, y.astype(np.float64), np.asarray(labels, dtype=np.float64))
    ref = [_key(c) for c in (classes or [])]
    index = {c: i for i, c in enumerate(ref)}
    pred = np.array([index.get(_key(v), -1) for v in labels], dtype=np.int64)
    aligned = None
    if proba is not None:
        own = [_key(c) for c in (model.classes if model.classes is not None else range(proba.shape[1]))]
        aligned = np.zeros((len(frame), len(ref)))
        for j, c in enumerate(own):
            if c in index:
                aligned[:, index[c]] = proba[:, j]
    return Predictions(task, y.astype(np.int64), pred, aligned)
