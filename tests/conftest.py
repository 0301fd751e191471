"""Shared test settings and fixtures: one real local Ray per session, a real MLflow store per test."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# Set before Ray is imported anywhere: no telemetry, and no dashboard start-up cost in tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")

from mlops_ray.runtime import Runtime, configure_mlflow, resolve_runtime

RAY_TEST_CPUS = int(os.environ.get("MLOPS_RAY_TEST_CPUS", "4"))


@pytest.fixture(scope="session")
def ray_session() -> Iterator[str]:
    """Start one local Ray for the whole session; yields its GCS address for subprocess drivers."""
    import ray

    if not ray.is_initialized():
        # address="local": never join another Ray that happens to run on this machine.
        ray.init(address="local", num_cpus=RAY_TEST_CPUS, include_dashboard=False, log_to_driver=False,
                 object_store_memory=1_500_000_000)
    yield ray.get_runtime_context().gcs_address
    if not ray.is_initialized():
        return  # without a connection serve.shutdown() would try to start or join a Ray
    try:
        from ray import serve

        serve.shutdown()
    except Exception:  # pragma: no cover - serve never started
        pass
    ray.shutdown()


@pytest.fixture
def runtime(tmp_path: Path) -> Runtime:
    """A fresh working directory with its own SQLite MLflow store."""
    rt = resolve_runtime(None, workdir=tmp_path / "work", tracking_uri=f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}")
    rt.ensure_dirs()
    configure_mlflow(rt)
    return rt
