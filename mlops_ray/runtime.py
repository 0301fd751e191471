"""Where things run and where results go: Ray connection, MLflow store, working directories.

The only module that reads the environment. Precedence for every setting: explicit argument
(CLI flag), then environment variable, then the config file, then the default.

=========================  =========================  ====================================
setting                    environment                default
=========================  =========================  ====================================
working directory          ``MLOPS_RAY_WORKDIR``      ``./work``
Ray cluster                ``RAY_ADDRESS``            a fresh local Ray (``auto`` joins a running head)
MLflow tracking store      ``MLFLOW_TRACKING_URI``    ``sqlite:///<workdir>/mlflow.db``
=========================  =========================  ====================================
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ray.exceptions import RuntimeSetupError

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig

DEFAULT_WORKDIR = "work"


@dataclass(frozen=True)
class Runtime:
    """Resolved locations for one pipeline: outputs, MLflow store, Ray address."""

    workdir: Path
    tracking_uri: str
    artifact_root: Path
    ray_address: str | None

    @property
    def local_store(self) -> Path | None:
        """The SQLite file of a local MLflow store (None: the store is a server)."""
        prefix = "sqlite:///"
        return Path(self.tracking_uri[len(prefix):]) if self.tracking_uri.startswith(prefix) else None

    @property
    def data_dir(self) -> Path:
        return self.workdir / "data"

    @property
    def tune_dir(self) -> Path:
        return self.workdir / "tune"

    @property
    def serve_dir(self) -> Path:
        return self.workdir / "serve"

    @property
    def monitor_dir(self) -> Path:
        return self.workdir / "monitor"

    def ensure_dirs(self) -> None:
        for d in (self.workdir, self.artifact_root, self.data_dir, self.tune_dir, self.serve_dir, self.monitor_dir):
            d.mkdir(parents=True, exist_ok=True)


def resolve_runtime(
    config: PipelineConfig | None = None,
    *,
    workdir: str | Path | None = None,
    address: str | None = None,
    tracking_uri: str | None = None,
) -> Runtime:
    """Resolve the runtime settings by the documented precedence; creates nothing."""
    wd = workdir or os.environ.get("MLOPS_RAY_WORKDIR") or (config.workdir if config else None)
    wd_path = Path(wd or DEFAULT_WORKDIR).expanduser().resolve()
    uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{wd_path / 'mlflow.db'}"
    addr = address or os.environ.get("RAY_ADDRESS") or None
    return Runtime(workdir=wd_path, tracking_uri=uri, artifact_root=wd_path / "mlartifacts", ray_address=addr)


def connect_ray(runtime: Runtime | None = None, *, num_cpus: int | None = None, **kwargs: Any) -> None:
    """Connect to the cluster at ``runtime.ray_address`` or start a local Ray; no-op if already connected.

    With ``RAY_AUTH_MODE=token`` a cluster needs its token: Ray reads ``RAY_AUTH_TOKEN`` (or
    ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``); a local ``ray.init()`` makes one itself.
    """
    import ray

    if ray.is_initialized():
        return
    address = runtime.ray_address if runtime else None
    init_kwargs: dict[str, Any] = {"ignore_reinit_error": True, "log_to_driver": True, **kwargs}
    if address:
        init_kwargs["address"] = address
    else:
        # "local" always starts a fresh Ray: a bare ray.init() would try to join whatever `ray start` last
        # recorded in /tmp/ray, and hang for minutes when that head has since died. Pass --address auto to join
        # a running local head on purpose.
        init_kwargs["address"] = "local"
        init_kwargs.setdefault("include_dashboard", False)
        if num_cpus is not None:
            init_kwargs["num_cpus"] = num_cpus
    try:
        ray.init(**init_kwargs)
    except ConnectionError as e:
        hint = ""
        if os.environ.get("RAY_AUTH_MODE") == "token" and not os.environ.get("RAY_AUTH_TOKEN"):
            hint = " Token auth is on: export RAY_AUTH_TOKEN=$(ray get-auth-token) first."
        where = f"the Ray cluster at {address!r}" if address else "a new local Ray"
        raise RuntimeSetupError(
            f"could not connect to {where}: {e}. Check that the head runs (`ray status --address ...`), "
            f"or unset RAY_ADDRESS / drop --address to run locally.{hint}"
        ) from e


def configure_mlflow(runtime: Runtime) -> None:
    """Point MLflow at the runtime's tracking store (creating the local folders it needs)."""
    import mlflow

    if runtime.local_store is not None:
        runtime.workdir.mkdir(parents=True, exist_ok=True)
    runtime.artifact_root.mkdir(parents=True, exist_ok=True)
    # MLflow 3 also writes the URI into os.environ: a later resolve_runtime() in this process (a notebook, a
    # second pipeline) would then take this run's store as the user's MLFLOW_TRACKING_URI. Keep the env as it was.
    before = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    mlflow.set_tracking_uri(runtime.tracking_uri)
    mlflow.set_registry_uri(runtime.tracking_uri)
    for k, v in before.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


def ensure_experiment(runtime: Runtime, name: str) -> str:
    """Create (or find) an MLflow experiment whose artifacts live under the working directory."""
    import mlflow
    from mlflow.exceptions import MlflowException

    configure_mlflow(runtime)
    try:
        exp = mlflow.get_experiment_by_name(name)
        if exp is not None:
            return exp.experiment_id
        location = None
        if not runtime.tracking_uri.startswith(("http://", "https://", "databricks")):
            location = (runtime.artifact_root / name).as_uri()
        return mlflow.create_experiment(name, artifact_location=location)
    except MlflowException as e:
        raise RuntimeSetupError(
            f"MLflow tracking store {runtime.tracking_uri!r} is not usable: {e}. "
            "Check MLFLOW_TRACKING_URI or start the server."
        ) from e


def env(name: str, default: str | None = None) -> str | None:
    """Read one environment variable (kept here so that no other module reads the environment)."""
    return os.environ.get(name, default)


def ray_job_id() -> str | None:
    """The Ray job submission id when running under ``ray job submit``, else None."""
    return os.environ.get("RAY_JOB_SUBMISSION_ID") or os.environ.get("RAY_JOB_ID") or None


def package_version() -> str:
    """This package's installed version (the project's own code is ``code_version``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mlops-ray")
    except PackageNotFoundError:
        return "unknown"


def config_code_version(source_file: str | None) -> str:
    """The commit of the project a config belongs to: the checkout holding the config file, else the one
    the command runs in (``mlops-ray run ~/proj/pipe.yaml`` from elsewhere), else ``unknown``."""
    if source_file:
        found = code_version(Path(source_file).resolve().parent)
        if found:
            return found
    return code_version() or "unknown"


def code_version(start: str | Path = ".") -> str | None:
    """The git commit of the project that runs (with ``-dirty`` when the tree has changes), if any.

    A submitted job runs without ``.git``: ``mlops-ray submit`` passes the commit as ``MLOPS_RAY_CODE_VERSION``.
    """
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=start, capture_output=True, text=True,
                             timeout=5, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=start,
                               capture_output=True, text=True, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return os.environ.get("MLOPS_RAY_CODE_VERSION") or None
    return f"{sha}-dirty" if dirty else sha
