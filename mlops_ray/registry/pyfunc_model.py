"""The MLflow pyfunc face of a packaged FittedModel: what `mlflow.pyfunc.load_model` returns.

Logged as a *model from code* (this class is instantiated by a tiny script stored with the model),
so MLflow never unpickles a Python object to load it; the weights come from ``artifacts/fitted``
through :mod:`mlops_ray.registry.artifacts` (JSON, skops with checked types, torch tensors only).
No Ray is imported.
"""

from __future__ import annotations

from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

ARTIFACT_KEY = "fitted"

# Stored next to MLmodel; MLflow runs it at load time to get the model object.
MODEL_CODE = '''"""mlops_ray packaged model: loaded by mlflow.pyfunc.load_model (model from code, no pickle)."""
from mlflow.models import set_model

from mlops_ray.registry.pyfunc_model import FittedModelPyfunc

set_model(FittedModelPyfunc())
'''


def predictions_frame(model: Any, df: pd.DataFrame) -> pd.DataFrame:
    """`prediction` and, for classifiers, one `proba_<class>` column per class, one row per input row."""
    labels, proba = model.predict_matrix(model.features.transform(df))
    out = pd.DataFrame({"prediction": labels}, index=df.index)
    if proba is not None:
        classes = model.classes if model.classes is not None else list(range(proba.shape[1]))
        for j, c in enumerate(classes):
            out[f"proba_{c}"] = np.asarray(proba[:, j], dtype=np.float64)
    return out


class FittedModelPyfunc(mlflow.pyfunc.PythonModel):
    """Features + estimator as one pyfunc model: raw input columns in, predictions out."""

    def __init__(self) -> None:
        self._model: Any = None

    def load_context(self, context: Any) -> None:
        from mlops_ray.registry.artifacts import load_fitted_model_dir

        self._model = load_fitted_model_dir(context.artifacts[ARTIFACT_KEY])

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        if self._model is None:
            raise RuntimeError("the model was not loaded: call mlflow.pyfunc.load_model(uri)")
        df = model_input if isinstance(model_input, pd.DataFrame) else pd.DataFrame(model_input)
        return predictions_frame(self._model, df)
