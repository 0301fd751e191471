"""Export and rebuild the built-in PyTorch MLP estimators as (tensors, JSON): no pickle, no arbitrary imports.

The protocol the estimators in ``mlops_ray.tune.torch_mlp`` follow (scikit-learn style):

- ``get_params()`` -> the constructor's keyword arguments (JSON values);
- ``export_state()`` -> ``(state: dict[str, Tensor], info: dict)``: the fitted tensors and the fitted
  non-tensor attributes (input width, number of classes, ...), JSON only;
- ``cls.from_state(params, state, info)`` -> a fitted estimator ready to ``predict``.

Only the classes listed in ``ALLOWED_CLASSES`` are rebuilt: the class name read from a model's JSON
never chooses what code is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

from mlops_ray.exceptions import RegistryError

ALLOWED_CLASSES = (
    "mlops_ray.tune.torch_mlp.TorchMLPClassifier",
    "mlops_ray.tune.torch_mlp.TorchMLPRegressor",
)


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def export_estimator(estimator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict of tensors, JSON hyperparameters and fitted info) for a built-in torch estimator."""
    path = _class_path(estimator)
    if path not in ALLOWED_CLASSES:
        raise RegistryError(f"torch_mlp models must be one of {', '.join(ALLOWED_CLASSES)}; got {path}")
    if not hasattr(estimator, "export_state"):
        raise RegistryError(f"{path} has no export_state(); cannot package it without pickle")
    state, info = estimator.export_state()
    return dict(state), {"class": path, "params": estimator.get_params(), "info": info}


def build_estimator(state: dict[str, Any], hparams: dict[str, Any]) -> Any:
    """Rebuild a fitted built-in torch estimator from its tensors and JSON."""
    path = hparams.get("class")
    if path not in ALLOWED_CLASSES:
        raise RegistryError(f"refusing to rebuild torch class {path!r}; allowed: {', '.join(ALLOWED_CLASSES)}")
    module_name, cls_name = path.rsplit(".", 1)
    try:
        cls = getattr(importlib.import_module(module_name), cls_name)
    except (ImportError, AttributeError) as e:
        raise RegistryError(f"torch model class {path} is not available in this mlops_ray: {e}") from e
    try:
        return cls.from_state(hparams.get("params", {}), state, hparams.get("info", {}))
    except Exception as e:
        raise RegistryError(f"could not rebuild {path} from its state dict: {e}") from e
