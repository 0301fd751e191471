from __future__ import annotations

import os
from pathlib import Path

import pytest

from mlops_ray.config import parse_config
from mlops_ray.runtime import code_version, resolve_runtime


def test_defaults_and_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_RAY_WORKDIR", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.chdir(tmp_path)
    rt = resolve_runtime(None)
    assert rt.workdir == tmp_path / "work"
    assert rt.tracking_uri == f"sqlite:///{tmp_path / 'work' / 'mlflow.db'}"
    assert rt.ray_address is None
    assert not (tmp_path / "work").exists(), "resolving must not create anything"

    cfg = parse_config({"name": "t", "workdir": str(tmp_path / "fromcfg"), "data": {"source": {"bundled": "iris"}}})
    assert resolve_runtime(cfg).workdir == tmp_path / "fromcfg"
    monkeypatch.setenv("MLOPS_RAY_WORKDIR", str(tmp_path / "fromenv"))
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    rt = resolve_runtime(cfg)
    assert rt.workdir == tmp_path / "fromenv"
    assert rt.tracking_uri == "http://127.0.0.1:5999" and rt.ray_address == "ray://head:10001"
    rt = resolve_runtime(cfg, workdir=tmp_path / "flag", address="auto")
    assert rt.workdir == tmp_path / "flag" and rt.ray_address == "auto"


def test_code_version(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLOPS_RAY_CODE_VERSION", raising=False)
    assert code_version(tmp_path) is None  # not a git checkout
    monkeypatch.setenv("MLOPS_RAY_CODE_VERSION", "v1.2.3")  # e.g. set by a container build
    assert code_version(tmp_path) == "v1.2.3"
    sha = code_version(Path(__file__).resolve().parents[2])
    assert sha is not None and len(sha.split("-")[0]) == 40


def test_config_code_version_is_the_configs_checkout_not_the_current_folder(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from mlops_ray.runtime import config_code_version

    monkeypatch.delenv("MLOPS_RAY_CODE_VERSION", raising=False)
    monkeypatch.chdir(tmp_path)  # a command run from outside any checkout
    repo = Path(__file__).resolve().parents[2]
    assert config_code_version(str(repo / "examples" / "breast_cancer.yaml")) == code_version(repo)
    assert config_code_version(str(tmp_path / "pipe.yaml")) == "unknown"
    assert config_code_version(None) == "unknown"


def test_configuring_mlflow_leaves_the_environment_alone(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    from mlops_ray.runtime import configure_mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLOPS_RAY_WORKDIR", raising=False)
    previous = mlflow.get_tracking_uri()
    try:
        first = resolve_runtime(None, workdir=tmp_path / "a")
        configure_mlflow(first)
        assert mlflow.get_tracking_uri() == first.tracking_uri
        # A second runtime in the same process gets its own store, not the first one's.
        second = resolve_runtime(None, workdir=tmp_path / "b")
        assert second.tracking_uri == f"sqlite:///{tmp_path / 'b' / 'mlflow.db'}"
        monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")  # the user's own setting stays
        configure_mlflow(second)
        assert os.environ["MLFLOW_TRACKING_URI"] == "http://127.0.0.1:5999"
    finally:
        mlflow.set_tracking_uri(previous)
