"""A FittedModel on disk, with no pickle: features as JSON, scikit-learn with skops, PyTorch as a state dict.

Layout of a model directory (the ``artifacts/fitted`` folder of the packaged MLflow model)::

    meta.json            format version, kind, task, classes, params, estimator class, trusted types
    features.json        the fitted FeaturePipeline (plain JSON)
    estimator.skops      kind "sklearn": the estimator, loaded with exactly the trusted types in meta.json
    state_dict.pt        kind "torch_mlp": tensors only, loaded with ``torch.load(weights_only=True)``
    torch_mlp.json       kind "torch_mlp": the network's hyperparameters

At load time the skops file's types are checked again against the policy below, so a directory
whose meta.json was edited to trust something else is refused, not loaded.
"""

from __future__ import annotations

import importlib.abc
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlops_ray.data.features import FeaturePipeline
from mlops_ray.exceptions import RegistryError
from mlops_ray.tune.fitted import FittedModel

FORMAT_VERSION = 1
META, FEATURES, SKOPS, STATE_DICT, TORCH_HPARAMS = (
    "meta.json", "features.json", "estimator.skops", "state_dict.pt", "torch_mlp.json",
)
# Types a model from this package may contain. skops already trusts the common numpy/sklearn types;
# what it reports as untrusted must still come from these libraries, and never from the risky corners.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.")
REFUSED_PARTS = ("sklearn.utils._testing", "numpy.testing", "numpy.f2py", "numpy.distutils", "numpy.ctypeslib")


def check_trusted_types(types: list[str]) -> list[str]:
    """The sorted types if all come from scikit-learn/numpy/scipy.sparse; else a RegistryError naming them."""
    bad = [t for t in types if not t.startswith(TRUSTED_PREFIXES) or t.startswith(REFUSED_PARTS)]
    if bad:
        raise RegistryError(
            f"the estimator contains type(s) outside scikit-learn/numpy: {sorted(bad)}; only "
            f"{', '.join(p + '*' for p in TRUSTED_PREFIXES)} are packaged (no pickle). Use a plain scikit-learn "
            "estimator, or move custom code into the feature config"
        )
    return sorted(types)


def save_fitted_model(fitted: FittedModel, path: str | Path) -> Path:
    """Write ``fitted`` to a new directory ``path``; returns it. Refuses anything it cannot load safely."""
    path = Path(path)
    if path.exists() and any(path.iterdir()):
        raise RegistryError(f"model directory {path} already exists and is not empty; pick a new path")
    path.mkdir(parents=True, exist_ok=True)
    fitted.features.save(path / FEATURES)
    meta: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "kind": fitted.kind,
        "task": fitted.features.task,
        "classes": fitted.features.classes,
        "params": _jsonable(fitted.params),
        "estimator_class": f"{type(fitted.estimator).__module__}.{type(fitted.estimator).__qualname__}",
    }
    if fitted.kind == "sklearn":
        meta["trusted_types"] = _save_skops(fitted.estimator, path / SKOPS)
    elif fitted.kind == "torch_mlp":
        meta["torch"] = _save_torch(fitted.estimator, path)
    else:
        raise RegistryError(f"unknown model kind {fitted.kind!r}; expected 'sklearn' or 'torch_mlp'")
    (path / META).write_text(json.dumps(meta, indent=1, default=_json_default))
    return path


def _read_meta(path: Path) -> dict[str, Any]:
    if not (path / META).is_file():
        raise RegistryError(f"no packaged model at {path}: {META} is missing (expected a folder written by "
                            "save_fitted_model, or an MLflow model logged by mlops_ray)")
    try:
        meta = json.loads((path / META).read_text())
    except json.JSONDecodeError as e:
        raise RegistryError(f"model metadata {path / META} is corrupt: {e}") from e
    if meta.get("format_version") != FORMAT_VERSION:
        raise RegistryError(f"model format {meta.get('format_version')!r} at {path} is not supported "
                            f"(this mlops_ray reads {FORMAT_VERSION})")
    return meta


def _load_features(path: Path) -> FeaturePipeline:
    try:
        return FeaturePipeline.load(path / FEATURES)
    except Exception as e:
        raise RegistryError(f"could not load the model's features from {path / FEATURES}: {e}") from e


def load_features_dir(path: str | Path) -> FeaturePipeline:
    """Only the fitted features of a :func:`save_fitted_model` folder: JSON, no estimator library imported."""
    path = Path(path)
    _read_meta(path)
    return _load_features(path)


def load_fitted_model_dir(path: str | Path) -> FittedModel:
    """Load a directory written by :func:`save_fitted_model`."""
    path = Path(path)
    meta = _read_meta(path)
    features = _load_features(path)
    kind = meta["kind"]
    if kind == "sklearn":
        estimator = _load_skops(path / SKOPS, meta.get("trusted_types", []))
    elif kind == "torch_mlp":
        estimator = _load_torch(path, meta["torch"])
    else:
        raise RegistryError(f"unknown model kind {kind!r} in {path / META}")
    return FittedModel(features=features, estimator=estimator, kind=kind, params=meta.get("params", {}))


@dataclass(frozen=True)
class FittedModelFiles:
    """A model directory as bytes: what ships a model to workers on other nodes, where the folder is not.

    A few MB for a typical forest; each worker deserializes it itself (with the same checks as from disk).
    """

    files: dict[str, bytes]

    @classmethod
    def read(cls, path: str | Path) -> FittedModelFiles:
        path = Path(path)
        _read_meta(path)  # not a model directory: fail here, on the driver, not in every worker
        return cls({str(f.relative_to(path)): f.read_bytes() for f in sorted(path.rglob("*")) if f.is_file()})

    def load(self) -> FittedModel:
        tmp = Path(tempfile.mkdtemp(prefix="mlops_ray_model_"))
        try:
            for name, data in self.files.items():
                if Path(name).is_absolute() or ".." in Path(name).parts:
                    raise RegistryError(f"model file name {name!r} points outside the model folder; refused")
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                (tmp / name).write_bytes(data)
            return load_fitted_model_dir(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


# ----------------------------------------------------------------------------------------- sklearn


class _SkipArrayApiTorch(importlib.abc.MetaPathFinder):
    """Import hook that refuses one module: scikit-learn's vendored array-api-compat shim for torch."""

    name = "sklearn.externals.array_api_compat.torch"

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == self.name:
            raise ImportError(f"{fullname} is skipped while skops lists scikit-learn's estimators")
        return None


def _skops_io() -> Any:
    """``skops.io``, imported without dragging torch in.

    Importing skops.io lists scikit-learn's estimators by walking every scikit-learn package, and the walk
    imports torch through scikit-learn's vendored array-api-compat shim: ~1 s and hundreds of MB in every
    process that loads a model (Serve replicas, batch scoring), for nothing a skops file needs. Refusing
    that one shim while skops imports makes the walk skip it (it skips packages that fail to import); the
    estimator list is the same, and the shim imports normally afterwards if anything asks for it.
    """
    import sys

    if "skops.io" in sys.modules:
        return sys.modules["skops.io"]
    hook = _SkipArrayApiTorch()
    sys.meta_path.insert(0, hook)
    try:
        import skops.io
    finally:
        sys.meta_path.remove(hook)
    return skops.io


def _save_skops(estimator: Any, file: Path) -> list[str]:
    sio = _skops_io()

    try:
        blob = sio.dumps(estimator)
    except Exception as e:  # skops cannot represent lambdas, local classes, open handles...
        raise RegistryError(f"the estimator {type(estimator).__name__} cannot be saved with skops: {e}") from e
    trusted = check_trusted_types(sio.get_untrusted_types(data=blob))
    try:  # prove it loads with exactly these types before anything is logged
        sio.loads(blob, trusted=trusted)
    except Exception as e:
        raise RegistryError(f"the estimator does not load back from skops with trusted types {trusted}: {e}") from e
    file.write_bytes(blob)
    return trusted


def _load_skops(file: Path, recorded: list[str]) -> Any:
    sio = _skops_io()

    if not file.is_file():
        raise RegistryError(f"the estimator file {file} is missing")
    blob = file.read_bytes()
    try:
        found = sio.get_untrusted_types(data=blob)
    except Exception as e:
        raise RegistryError(f"{file} is not a readable skops file: {e}") from e
    # The policy decides, not the file: a recorded list that trusts more than the policy is refused.
    check_trusted_types(found)
    extra = sorted(set(found) - set(recorded))
    if extra:
        raise RegistryError(f"{file} contains type(s) {extra} that its metadata does not list; refusing to load")
    try:
        return sio.loads(blob, trusted=sorted(found))
    except Exception as e:
        raise RegistryError(f"could not load the estimator from {file}: {e}") from e


# ------------------------------------------------------------------------------------------- torch


def _save_torch(estimator: Any, path: Path) -> dict[str, Any]:
    import torch

    from mlops_ray.registry import torch_io

    state, hparams = torch_io.export_estimator(estimator)
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise RegistryError(f"torch state dict entries {bad} are not tensors; only tensors are packaged")
    torch.save({k: v.detach().cpu() for k, v in state.items()}, path / STATE_DICT)
    (path / TORCH_HPARAMS).write_text(json.dumps(hparams, indent=1, default=_json_default))
    return {"state_dict": STATE_DICT, "hparams": TORCH_HPARAMS}


def _load_torch(path: Path, info: dict[str, Any]) -> Any:
    import torch

    from mlops_ray.registry import torch_io

    try:
        state = torch.load(path / info["state_dict"], map_location="cpu", weights_only=True)
        hparams = json.loads((path / info["hparams"]).read_text())
    except FileNotFoundError as e:
        raise RegistryError(f"torch model files missing under {path}: {e}") from e
    except Exception as e:
        raise RegistryError(f"could not load the torch state dict under {path} (tensors only): {e}") from e
    return torch_io.build_estimator(state, hparams)


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    return str(o)


def _jsonable(params: dict[str, Any]) -> dict[str, Any]:
    return json.loads(json.dumps(params, default=_json_default))
