"""Log a FittedModel to MLflow as one pyfunc model, and load it back (as a FittedModel) from any model URI."""

from __future__ import annotations

import shutil
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_ray.exceptions import RegistryError
from mlops_ray.registry.artifacts import META, load_fitted_model_dir, save_fitted_model

if TYPE_CHECKING:
    from mlflow.models import ModelSignature
    from mlflow.models.model import ModelInfo

    from mlops_ray.tune.fitted import FittedModel

MODEL_NAME_IN_RUN = "model"
_REMOTE_SCHEMES = ("models:/", "runs:/", "http://", "https://", "s3://", "gs://", "wasbs://", "dbfs:/",
                   "mlflow-artifacts:/", "file://", "hdfs://")


def build_signature(fitted: FittedModel) -> ModelSignature:
    """Raw input columns and types in, `prediction` (+ `proba_<class>`) out."""
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    inputs = Schema([ColSpec(t, name) for name, t in fitted.features.signature_types().items()])
    if fitted.task == "classification":
        classes = fitted.classes or []
        pred_type = "string" if any(isinstance(c, str) for c in classes) else "long"
        if classes and all(isinstance(c, bool) for c in classes):
            pred_type = "boolean"
        probas = [ColSpec("double", f"proba_{c}") for c in classes] if fitted.has_proba else []
        outputs = [ColSpec(pred_type, "prediction"), *probas]
    else:
        outputs = [ColSpec("double", "prediction")]
    return ModelSignature(inputs=inputs, outputs=Schema(outputs))


def pip_requirements(fitted: FittedModel) -> list[str]:
    """Pinned versions of what the packaged model imports when served by MLflow tools."""
    names = ["mlflow", "numpy", "pandas", "pydantic", "pyyaml", "scikit-learn"]
    names += ["skops"] if fitted.kind == "sklearn" else ["torch"]
    out = []
    for n in names:
        try:
            out.append(f"{n}=={version(n)}")
        except PackageNotFoundError:
            out.append(n)
    return out


def _copy_package(dst: Path) -> Path:
    """A copy of the mlops_ray package (sources only) to store with the model as its code path."""
    import mlops_ray

    src = Path(mlops_ray.__file__).parent
    target = dst / "mlops_ray"
    shutil.copytree(src, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc", "*.so"))
    return target


def log_fitted_model(fitted: FittedModel, *, input_example: pd.DataFrame | None = None,
                     name: str = MODEL_NAME_IN_RUN, bundle_code: bool = True,
                     fitted_dir: Path | None = None) -> ModelInfo:
    """Log ``fitted`` into the active MLflow run as a pyfunc model; returns MLflow's ModelInfo.

    ``fitted_dir``: ``fitted`` already written by ``save_fitted_model`` (not written again).

    ``bundle_code`` stores the mlops_ray sources with the model (MLflow ``code_paths``), so that
    ``mlflow models serve`` works where mlops_ray is not installed.
    """
    import mlflow.pyfunc

    from mlops_ray.registry.pyfunc_model import ARTIFACT_KEY, MODEL_CODE

    with tempfile.TemporaryDirectory(prefix="mlops_ray_pkg_") as tmp:
        tmpdir = Path(tmp)
        if fitted_dir is None:
            fitted_dir = save_fitted_model(fitted, tmpdir / ARTIFACT_KEY)
        code_file = tmpdir / "mlops_ray_model.py"
        code_file.write_text(MODEL_CODE)
        example = None if input_example is None else example_frame(input_example, fitted.features)
        kwargs: dict[str, Any] = {}
        if bundle_code:
            kwargs["code_paths"] = [str(_copy_package(tmpdir / "code"))]
        return mlflow.pyfunc.log_model(
            name=name,
            python_model=str(code_file),
            artifacts={ARTIFACT_KEY: str(fitted_dir)},
            signature=build_signature(fitted),
            input_example=example,
            pip_requirements=pip_requirements(fitted),
            metadata={"mlops_ray_kind": fitted.kind, "mlops_ray_task": fitted.task},
            **kwargs,
        )


def example_frame(frame: pd.DataFrame, features: Any) -> pd.DataFrame | None:
    """A few input rows typed as the signature declares them (the data stage's sample rows are cleaned
    values: an int column arrives as float64, which MLflow refuses for a ``long`` input).

    None when a value cannot take its declared type (an imputed 2.5 in an int column): no example then.
    """
    out = frame[features.input_columns].head(5).reset_index(drop=True).copy()
    for name, kind in features.signature_types().items():
        col = out[name]
        if kind not in ("long", "boolean") or col.dtype == ("int64" if kind == "long" else "bool"):
            continue
        values = pd.to_numeric(col, errors="coerce")
        if values.isna().any() or not (values == values.round()).all():
            return None
        if kind == "boolean" and not values.isin([0, 1]).all():
            return None
        out[name] = values.astype("int64") if kind == "long" else values.astype(bool)
    return out


def _find_fitted_dir(root: Path) -> Path | None:
    from mlops_ray.registry.pyfunc_model import ARTIFACT_KEY

    for cand in (root, root / "artifacts" / ARTIFACT_KEY, root / ARTIFACT_KEY):
        if (cand / META).is_file():
            return cand
    return None


def _download(uri: str, dst: Path, tracking_uri: str | None) -> Path:
    """Only the ``artifacts/fitted`` folder for registry URIs (not the bundled code); all of it otherwise."""
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    from mlops_ray.registry.pyfunc_model import ARTIFACT_KEY

    if uri.startswith("models:/"):
        # Resolve the version with our own client: MLflow's ModelsArtifactRepository looks names up in the
        # process-global registry URI whatever registry_uri it is given, so inside a Serve replica (whose global
        # URI is the default ./mlruns) it would not find the model.
        uri = _storage_uri(uri, tracking_uri)
        try:
            return Path(mlflow.artifacts.download_artifacts(
                artifact_uri=f"{uri.rstrip('/')}/artifacts/{ARTIFACT_KEY}", dst_path=str(dst),
                tracking_uri=tracking_uri))
        except (MlflowException, OSError):
            pass  # not an mlops_ray layout, or a store that cannot list subfolders: take everything
    return Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dst),
                                                    tracking_uri=tracking_uri, registry_uri=tracking_uri))


def _storage_uri(models_uri: str, tracking_uri: str | None) -> str:
    """Where a ``models:/NAME/V``, ``models:/NAME@alias`` or ``models:/NAME`` (the champion) version's files are."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from mlops_ray.registry.uris import parse_model_uri

    ref = parse_model_uri(models_uri)
    if not ref.registered:
        return models_uri  # a logged-model id (models:/m-...): MLflow resolves those without the registry
    client = MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    version = ref.version
    if version is None:
        alias = ref.effective_alias
        try:
            version = client.get_model_version_by_alias(ref.name, alias).version
        except MlflowException as e:
            import mlflow

            where = tracking_uri or mlflow.get_tracking_uri()
            try:
                client.get_registered_model(ref.name)
            except MlflowException:
                raise RegistryError(
                    f"{models_uri!r}: no model {ref.name!r} is registered in {where}; is that the right store? "
                    "Pass tracking_uri= (or set MLFLOW_TRACKING_URI), e.g. sqlite:///work/mlflow.db for the "
                    "default local workdir") from e
            raise RegistryError(f"{models_uri!r}: model {ref.name!r} has no version with alias {alias!r} in "
                                f"{where}; `mlops-ray models {ref.name}` shows its versions and aliases") from e
    return client.get_model_version_download_uri(ref.name, version)


def load_in_worker(model_uri: str, tracking_uri: str | None) -> FittedModel:
    """``load_fitted_model`` in a fresh Ray worker (a Serve replica, a scoring actor).

    The process's MLflow client (tracking and registry) is pointed at ``tracking_uri`` first: a worker
    starts with MLflow's default ./mlruns, and some MLflow lookups ignore per-call URIs.
    """
    if tracking_uri:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        mlflow.set_registry_uri(tracking_uri)
    return load_fitted_model(model_uri, tracking_uri=tracking_uri)


def fetch_fitted_dir(model_uri: str | Path, dst_path: str | Path, *, tracking_uri: str | None = None) -> Path:
    """The local folder of an mlops_ray model (what :func:`load_fitted_model_dir` reads): a local model is
    found in place, a registry/run URI is downloaded into ``dst_path``. Nothing is deserialized."""
    uri = str(model_uri)
    local = Path(uri).expanduser()
    if not uri.startswith(_REMOTE_SCHEMES):
        if not local.exists():
            raise RegistryError(f"model path {uri!r} does not exist; pass a folder written by mlops_ray or a "
                                "model URI like models:/NAME@champion or models:/NAME/1")
        found = _find_fitted_dir(local)
        if found is None:
            raise RegistryError(f"{uri} is not an mlops_ray model: no {META} in it or in artifacts/fitted")
        return found
    import mlflow
    from mlflow.exceptions import MlflowException

    from mlops_ray.registry.store import check_reachable

    check_reachable(tracking_uri or mlflow.get_tracking_uri())
    try:
        root = _download(uri, Path(dst_path), tracking_uri)
    except MlflowException as e:
        raise RegistryError(f"could not load model {uri!r}: {e.message}") from e
    except OSError as e:  # connection refused / reset from the artifact repository
        raise RegistryError(f"could not download model {uri!r}: {e}") from e
    found = _find_fitted_dir(root)
    if found is None:
        raise RegistryError(f"{uri} is not an mlops_ray model (no artifacts/fitted/{META}); "
                            "load it with mlflow.pyfunc.load_model instead")
    return found


def load_fitted_model(model_uri: str | Path, *, tracking_uri: str | None = None,
                      dst_path: str | Path | None = None) -> FittedModel:
    """A FittedModel from a model URI (``models:/NAME@champion``, ``models:/NAME/3``, ``runs:/...``)
    or a local folder (a logged MLflow model or a ``save_fitted_model`` folder). No Ray needed."""
    with tempfile.TemporaryDirectory(prefix="mlops_ray_load_") as tmp:
        return load_fitted_model_dir(fetch_fitted_dir(model_uri, dst_path or tmp, tracking_uri=tracking_uri))
