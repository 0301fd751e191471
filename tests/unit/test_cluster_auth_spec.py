"""Token lookup and job-submission building: pure logic, no Ray, no network."""

from __future__ import annotations

import json
import shlex
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mlops_ray.cluster.auth import auth_error_message, auth_headers, resolve_auth_token
from mlops_ray.cluster.spec import (
    JOBS,
    build_submission,
    make_submission_id,
    parse_env_pairs,
    relative_config,
)
from mlops_ray.exceptions import ClusterError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def no_token_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    return tmp_path


def test_token_precedence(no_token_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = no_token_env
    assert resolve_auth_token() is None
    (home / ".ray").mkdir()
    (home / ".ray" / "auth_token").write_text("from-home\n")
    assert resolve_auth_token() == "from-home"
    path_file = home / "tok"
    path_file.write_text("  from-path-env ")
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(path_file))
    assert resolve_auth_token() == "from-path-env"
    monkeypatch.setenv("RAY_AUTH_TOKEN", "from-env")
    assert resolve_auth_token() == "from-env"
    explicit = home / "explicit"
    explicit.write_text("from-file-arg")
    assert resolve_auth_token(token_file=explicit) == "from-file-arg"
    assert resolve_auth_token("from-arg", explicit) == "from-arg"


def test_named_token_file_missing_or_empty_is_an_error(no_token_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ClusterError, match="cannot be read"):
        resolve_auth_token(token_file=no_token_env / "nope")
    empty = no_token_env / "empty"
    empty.write_text("\n")
    with pytest.raises(ClusterError, match="is empty"):
        resolve_auth_token(token_file=empty)
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", str(no_token_env / "gone"))
    with pytest.raises(ClusterError, match=r"RAY_AUTH_TOKEN_PATH"):
        resolve_auth_token()
    with pytest.raises(ClusterError, match="empty"):
        resolve_auth_token("   ")


def test_headers_and_messages() -> None:
    assert auth_headers(None) == {}
    assert auth_headers("abc") == {"Authorization": "Bearer abc"}
    missing = auth_error_message("http://h:8265", 401, had_token=False, detail="Unauthorized: Missing token")
    assert "requires token authentication" in missing and "ray get-auth-token" in missing
    assert "RAY_AUTH_TOKEN" in missing and "Missing token" in missing
    wrong = auth_error_message("http://h:8265", 403, had_token=True)
    assert "rejected the auth token" in wrong


def test_build_submission_train(tmp_path: Path) -> None:
    cfg = tmp_path / "examples" / "demo.yaml"
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "train.py").write_text("")
    cfg.parent.mkdir()
    cfg.write_text("name: demo\n")
    spec = build_submission("train", cfg, tmp_path, name="demo", job_args=["--steps", "data,tune"],
                            env_vars={"MLFLOW_TRACKING_URI": "http://mlflow:5000"}, submission_id="abc",
                            entrypoint_num_cpus=0.5, code_version="deadbeef")
    assert shlex.split(spec.entrypoint) == ["python", "jobs/train.py", "--config", "examples/demo.yaml",
                                            "--steps", "data,tune"]
    assert spec.runtime_env["working_dir"] == str(tmp_path.resolve())
    assert ".venv" in spec.runtime_env["excludes"] and "work" in spec.runtime_env["excludes"]
    # The upload leaves .git behind: the commit travels as an environment variable the job records.
    assert spec.runtime_env["env_vars"] == {"MLFLOW_TRACKING_URI": "http://mlflow:5000",
                                            "MLOPS_RAY_CODE_VERSION": "deadbeef"}
    kw = spec.submit_kwargs()
    assert kw["submission_id"] == "abc" and kw["entrypoint_num_cpus"] == 0.5 and "entrypoint_num_gpus" not in kw
    assert kw["metadata"]["mlops_ray.code_version"] == "deadbeef"
    line = spec.ray_job_submit_command("http://h:8265")
    assert line.startswith("ray job submit --address http://h:8265 --submission-id abc --working-dir ")
    env_json = shlex.split(line)[shlex.split(line).index("--runtime-env-json") + 1]
    assert json.loads(env_json)["env_vars"] == spec.runtime_env["env_vars"]
    assert line.endswith("-- " + spec.entrypoint)


def test_build_submission_errors(tmp_path: Path) -> None:
    outside = tmp_path / "outside.yaml"
    outside.write_text("name: x\n")
    with pytest.raises(ClusterError, match=r"unknown job 'fit'.*train, deploy"):
        build_submission("fit", outside, REPO)
    with pytest.raises(ClusterError, match="outside the working directory"):
        build_submission("train", outside, REPO)
    with pytest.raises(ClusterError, match="not found under working directory"):
        build_submission("train", outside, tmp_path)
    with pytest.raises(ClusterError, match="config file not found"):
        relative_config(tmp_path / "missing.yaml", tmp_path)
    (tmp_path / "jobs").mkdir()
    (tmp_path / "jobs" / "train.py").write_text("")
    with pytest.raises(ClusterError, match="invalid environment variable"):
        build_submission("train", outside, tmp_path, env_vars={"BAD NAME": "1"})
    with pytest.raises(ClusterError, match="NAME=VALUE"):
        parse_env_pairs(["NOEQUALS"])
    assert parse_env_pairs(["A=1", "B=x=y"]) == {"A": "1", "B": "x=y"}


def test_every_job_script_exists_in_the_repo() -> None:
    for job, script in JOBS.items():
        assert (REPO / script).is_file(), (job, script)


def test_submission_id_is_readable_and_unique() -> None:
    now = datetime(2026, 11, 27, 4, 5, 6, tzinfo=UTC)
    sid = make_submission_id("batch_predict", "my pipeline!", now, suffix="abc123")
    assert sid == "mlops-ray-batch-predict-my-pipeline-20261127-040506-abc123"
    assert make_submission_id("train", "x") != make_submission_id("train", "x")


def test_jobs_api_errors_keep_the_reason_not_the_server_traceback() -> None:
    from mlops_ray.cluster.jobs import server_reason

    text = ("Request failed with status code 500: Traceback (most recent call last):\n"
            '  File "/ray/dashboard/modules/job/job_head.py", line 12, in submit_job\n    raise ValueError(msg)\n'
            "ValueError: Job with submission_id x-1 already exists. Please use a different submission_id.")
    assert server_reason(text) == ("Request failed with status code 500: ValueError: Job with submission_id x-1 "
                                   "already exists. Please use a different submission_id.")
    assert server_reason("Job xyz does not exist") == "Job xyz does not exist"


def test_train_job_takes_resume(capsys: pytest.CaptureFixture[str]) -> None:
    from mlops_ray.cluster import entrypoints

    with pytest.raises(SystemExit):
        entrypoints.train(["--help"])
    assert "--resume" in capsys.readouterr().out  # a search stopped on a cluster can be continued there
