"""Where the monitor's inputs come from: the log folders, the registry's version, its reference and baseline."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.profile import ReferenceProfile, load_profile

if TYPE_CHECKING:
    from mlops_ray.runtime import Runtime

REFERENCE_FILE = "reference.json"
TAG = "mlops_ray."


def predictions_dir(runtime: Runtime) -> Path:
    """Where Serve replicas write prediction logs and feedback: ``<monitor_dir>/<model>/v<version>/``."""
    return runtime.monitor_dir


def logged_versions(model_folder: Path) -> list[str]:
    found = [p.name[1:] for p in model_folder.glob("v*") if p.is_dir() and any(p.glob("*.parquet"))]
    return sorted(found, key=lambda v: (not v.isdigit(), int(v) if v.isdigit() else 0, v))


def client(runtime: Runtime) -> Any:
    from mlflow import MlflowClient

    from mlops_ray.runtime import configure_mlflow

    configure_mlflow(runtime)
    return MlflowClient(tracking_uri=runtime.tracking_uri, registry_uri=runtime.tracking_uri)


def model_version(runtime: Runtime, name: str, version: str | None) -> Any | None:
    """The MLflow ModelVersion (the champion when ``version`` is None), or None if the registry lacks it."""
    from mlflow.exceptions import MlflowException

    try:
        cl = client(runtime)
        return cl.get_model_version_by_alias(name, "champion") if version is None else cl.get_model_version(
            name, str(version))
    except MlflowException:
        return None


def require_logs(runtime: Runtime, name: str, folder: Path, flush_interval_s: float) -> None:
    """Fail (before any Ray work) when ``folder`` holds no prediction log, saying what is missing."""
    if folder.is_dir() and logged_versions(folder):
        return
    if not is_registered(runtime, name):
        raise MonitorError(
            f"model {name!r} is not registered in {runtime.tracking_uri}: train and register it first "
            "(mlops-ray run CONFIG), deploy it, and send traffic; then there are predictions to monitor")
    raise MonitorError(
        f"no prediction logs for model {name!r} under {folder}: deploy it (mlops-ray deploy) with "
        f"monitor.sample_rate > 0 and send traffic; replicas flush every {flush_interval_s}s")


def is_registered(runtime: Runtime, name: str) -> bool:
    """False only when the registry says for certain that it has no model ``name`` (or there is no store)."""
    from mlflow.exceptions import MlflowException

    from mlops_ray.registry.store import missing_local_store, model_exists

    if missing_local_store(runtime):  # asking MLflow would create an empty store
        return False
    try:
        return model_exists(client(runtime), name)
    except MlflowException:  # unsure: the caller's own lookup reports the store's error
        return True


def resolve_reference(runtime: Runtime, name: str, version: str, mv: Any | None,
                      reference: ReferenceProfile | Mapping[str, Any] | str | Path | None = None
                      ) -> tuple[ReferenceProfile, str]:
    """The training reference of a model version, and where it came from.

    Order: the ``reference`` argument; a ``reference.json`` artifact of the version's run (what the
    pipeline logs at registration); the data stage's output for the version's data fingerprint.
    """
    if reference is not None:
        return load_profile(reference), "given"
    tried: list[str] = []
    if mv is not None and getattr(mv, "run_id", None):
        cl = client(runtime)
        for path in _find_artifacts(cl, mv.run_id, REFERENCE_FILE):
            import mlflow.artifacts

            local = mlflow.artifacts.download_artifacts(run_id=mv.run_id, artifact_path=path,
                                                        tracking_uri=runtime.tracking_uri)
            return load_profile(local), f"runs:/{mv.run_id}/{path}"
        tried.append(f"no {REFERENCE_FILE} artifact in run {mv.run_id}")
        fp = (mv.tags or {}).get(TAG + "data_fingerprint")
        if fp:
            for cand in sorted(runtime.data_dir.rglob(REFERENCE_FILE)):
                if _fingerprint_of(cand.parent) == fp:
                    return load_profile(cand), str(cand)
            tried.append(f"no {REFERENCE_FILE} under {runtime.data_dir} for data fingerprint {fp[:12]}")
    else:
        tried.append(f"model {name!r} version {version} is not in the registry at {runtime.tracking_uri}")
    raise MonitorError(
        f"no reference profile for {name} v{version}: {'; '.join(tried)}. Pass one with --reference "
        f"(a {REFERENCE_FILE} written by the data stage) or register the model through the pipeline, "
        f"which logs it"
    )


def _fingerprint_of(data_out: Path) -> str | None:
    """The data fingerprint recorded in a data-stage output folder's report.json."""
    import json

    try:
        return json.loads((data_out / "report.json").read_text()).get("fingerprint")
    except (OSError, ValueError, AttributeError):
        return None


def _find_artifacts(cl: Any, run_id: str, filename: str, path: str | None = None, depth: int = 0) -> list[str]:
    out: list[str] = []
    for info in cl.list_artifacts(run_id, path):
        if info.is_dir and depth < 3:
            out += _find_artifacts(cl, run_id, filename, info.path, depth + 1)
        elif info.path.rsplit("/", 1)[-1] == filename:
            out.append(info.path)
    return out


def holdout_baseline(mv: Any | None, runtime: Runtime, metric: str) -> float | None:
    """The version's holdout value of ``metric`` (tag ``mlops_ray.holdout.<metric>``, else the run's metric)."""
    if mv is None:
        return None
    tags = mv.tags or {}
    for key in (f"{TAG}holdout.{metric}", f"holdout.{metric}"):
        if key in tags:
            try:
                return float(tags[key])
            except ValueError:
                pass
    if getattr(mv, "run_id", None):
        metrics = client(runtime).get_run(mv.run_id).data.metrics
        for key in (f"holdout_{metric}", f"holdout.{metric}", f"holdout/{metric}"):
            if key in metrics:
                return float(metrics[key])
    return None
