"""Export and rebuild the built-in PyTorch MLP estimators as (tensors, JSON): no pickle, no arbitrary imports.

Works with ``mlops_ray.tune.torch_mlp`` (scikit-learn style estimators that keep their network in
``model_`` and expose ``state_dict()``): the tensors go to ``state_dict.pt`` (loaded back with
``torch.load(weights_only=True)``), the constructor arguments and the fitted scalars (input width,
classes, target scaling) to JSON. Only the classes in ``ALLOWED_CLASSES`` are rebuilt: the class
name read from a model's JSON never chooses what code is imported.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from mlops_ray.exceptions import RegistryError

ALLOWED_CLASSES = (
    "mlops_ray.tune.torch_mlp.TorchMLPClassifier",
    "mlops_ray.tune.torch_mlp.TorchMLPRegressor",
)
_FITTED_SCALARS = ("n_features_in_", "y_mean_", "y_scale_")


def _class_path(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def export_estimator(estimator: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """(state dict of tensors, JSON hyperparameters and fitted info) for a built-in torch estimator."""
    import torch

    path = _class_path(estimator)
    if path not in ALLOWED_CLASSES:
        raise RegistryError(f"torch_mlp models must be one of {', '.join(ALLOWED_CLASSES)}; got {path}")
    if not hasattr(estimator, "model_"):
        raise RegistryError(f"{path} is not fitted: nothing to package")
    weights = estimator.state_dict()
    state = {k: torch.as_tensor(np.asarray(v)) for k, v in weights.items()}
    last_bias = [k for k in state if k.endswith("bias")][-1]
    info: dict[str, Any] = {k: getattr(estimator, k) for k in _FITTED_SCALARS if hasattr(estimator, k)}
    info["n_out"] = int(state[last_bias].shape[0])
    if hasattr(estimator, "classes_"):
        info["classes_"] = np.asarray(estimator.classes_).tolist()
    return state, {"class": path, "params": estimator.get_params(), "info": info}


def build_estimator(state: dict[str, Any], hparams: dict[str, Any]) -> Any:
    """Rebuild a fitted built-in torch estimator from its tensors and JSON."""
    path = hparams.get("class")
    if path not in ALLOWED_CLASSES:
        raise RegistryError(f"refusing to rebuild torch class {path!r}; allowed: {', '.join(ALLOWED_CLASSES)}")
    module_name, cls_name = path.rsplit(".", 1)
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, cls_name)
    except (ImportError, AttributeError) as e:
        raise RegistryError(f"torch model class {path} is not available in this mlops_ray: {e}") from e
    info = dict(hparams.get("info", {}))
    try:
        est = cls(**hparams.get("params", {}))
        for k in _FITTED_SCALARS:
            if k in info:
                setattr(est, k, info[k])
        if "classes_" in info:
            est.classes_ = np.asarray(info["classes_"])
        net = est._build(int(info["n_features_in_"]), int(info["n_out"]))
        net.load_state_dict(state)
        device = module.resolve_device(est.device)
        if device.startswith("cuda") and not _cuda_available():
            device = "cpu"  # trained on a GPU, served where there is none: the weights are the same
        est.device_ = device
        est.model_ = net.to(est.device_)
        est.loss_curve_ = []
        return est
    except Exception as e:
        raise RegistryError(f"could not rebuild {path} from its state dict: {e}") from e


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())
