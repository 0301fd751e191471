"""Job entrypoints and the CI gate helper: argument handling and result lines, no Ray."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from mlops_ray.cli import build_parser, main
from mlops_ray.cluster.entrypoints import SUMMARY_MARKER, pipeline_summary, to_jsonable
from mlops_ray.cluster.gate_output import gate_outputs, read_job_result
from mlops_ray.cluster.gate_output import main as gate_main
from mlops_ray.exceptions import ClusterError

REPO = Path(__file__).resolve().parents[2]


@dataclass
class _Reg:
    name: str
    version: str
    accepted: bool


@dataclass
class _Result:
    config_hash: str
    steps: list[str]
    registration: _Reg
    seconds: dict[str, float]
    search: object = None
    deployment: object = None


def test_summary_is_json_and_feeds_the_gate(tmp_path: Path) -> None:
    res = _Result("abc", ["data", "tune", "register"], _Reg("bc", "4", True), {"tune": np.float64(1.5)})
    summary = pipeline_summary(res)
    text = json.dumps(summary)
    assert summary["registration"] == {"name": "bc", "version": "4", "accepted": True}
    assert summary["seconds"] == {"tune": 1.5}
    log = tmp_path / "train.log"
    log.write_text(f"noise\n[tune] done\n{SUMMARY_MARKER}{text}\nshutting down\n")
    assert gate_outputs(read_job_result(log.read_text())) == {"accepted": "true", "version": "4", "model": "bc"}
    assert gate_main([str(log)]) == 0


def test_gate_without_result_line_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ClusterError, match="failed before it finished"):
        read_job_result("Traceback ...\nValueError")
    log = tmp_path / "bad.log"
    log.write_text("Traceback")
    assert gate_main([str(log)]) == 1
    assert "failed before it finished" in capsys.readouterr().err
    rejected = {"registration": {"name": "bc", "version": "5", "accepted": False}}
    assert gate_outputs(rejected)["accepted"] == "false"
    assert gate_outputs({"steps": ["data"]})["accepted"] == "false"


def test_to_jsonable_handles_arrays_paths_and_nesting() -> None:
    out = to_jsonable({"a": np.zeros((3, 2)), "p": Path("/x"), "n": np.int64(3), "l": (1, 2)})
    assert out == {"a": "<ndarray shape=(3, 2)>", "p": "/x", "n": 3, "l": [1, 2]}


def test_to_jsonable_writes_times_as_iso_text() -> None:
    import datetime as dt

    import pandas as pd

    t = pd.Timestamp("2026-11-27 10:00:01.5", tz="UTC")
    out = to_jsonable({"range": (t, pd.NaT), "when": dt.datetime(2026, 11, 27, tzinfo=dt.UTC),
                       "day": dt.date(2026, 1, 2)})
    assert out == {"range": ["2026-11-27T10:00:01.500000+00:00", None], "when": "2026-11-27T00:00:00+00:00",
                   "day": "2026-01-02"}
    json.dumps(out)


def test_submit_dry_run_prints_the_submission(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    code = main(["submit", "examples/breast_cancer.yaml", "--dry-run", "--job", "batch_predict",
                 "--tracking-uri", "http://mlflow:5000", "--submission-id", "x1", "--",
                 "--input", "data/in", "--output", "work/out"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["entrypoint"] == ("python jobs/batch_predict.py --config examples/breast_cancer.yaml "
                                 "--input data/in --output work/out")
    env = out["runtime_env"]["env_vars"]
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"
    # The upload leaves .git behind: the job gets the commit to record as its code version.
    assert env["MLOPS_RAY_CODE_VERSION"] == out["metadata"]["mlops_ray.code_version"]
    assert out["submission_id"] == "x1"
    assert out["ray_job_submit"].startswith("ray job submit --address ")
    if not (os.environ.get("RAY_ADDRESS") or os.environ.get("RAY_API_SERVER_ADDRESS")):
        assert out["ray_job_submit"].startswith('ray job submit --address "$RAY_ADDRESS" ')  # expands when pasted


def test_cli_errors_are_clear(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.delenv("RAY_API_SERVER_ADDRESS", raising=False)
    assert main(["submit", "examples/breast_cancer.yaml"]) == 1
    assert "no cluster address" in capsys.readouterr().err
    assert main(["submit", "examples/breast_cancer.yaml", "--job", "nope", "--dry-run"]) == 1
    assert "unknown job 'nope'" in capsys.readouterr().err
    assert main(["job", "status", "abc", "--address", "http://127.0.0.1:1"]) == 1
    assert "cannot reach the Ray dashboard" in capsys.readouterr().err
    parser = build_parser()
    args = parser.parse_args(["job", "logs", "abc", "--follow", "--address", "http://h:8265"])
    assert args.follow and args.job_id == "abc"


@pytest.mark.parametrize("job", ["train", "deploy", "retrain", "monitor", "batch_predict"])
def test_job_scripts_answer_help(job: str) -> None:
    import subprocess
    import sys

    out = subprocess.run([sys.executable, str(REPO / "jobs" / f"{job}.py"), "--help"], capture_output=True,
                         text=True, timeout=60, cwd=REPO)
    assert out.returncode == 0, out.stderr
    assert "--config" in out.stdout


def test_a_job_on_this_machine_shares_the_local_workdir(capsys: pytest.CaptureFixture[str], monkeypatch) -> None:
    # Without --workdir the job would keep its MLflow store in Ray's temporary copy of the upload.
    monkeypatch.chdir(REPO)
    monkeypatch.delenv("MLOPS_RAY_WORKDIR", raising=False)
    assert main(["submit", "examples/breast_cancer.yaml", "--dry-run", "--address", "http://127.0.0.1:8265"]) == 0
    env = json.loads(capsys.readouterr().out)["runtime_env"]["env_vars"]
    assert env["MLOPS_RAY_WORKDIR"] == str(REPO / "work")
    assert main(["submit", "examples/breast_cancer.yaml", "--dry-run", "--address", "http://ray-head:8265"]) == 0
    env = json.loads(capsys.readouterr().out)["runtime_env"].get("env_vars", {})
    assert "MLOPS_RAY_WORKDIR" not in env  # another machine: its own
    assert main(["submit", "examples/breast_cancer.yaml", "--dry-run", "--address", "http://127.0.0.1:8265",
                 "--workdir", "/shared/w"]) == 0
    assert json.loads(capsys.readouterr().out)["runtime_env"]["env_vars"]["MLOPS_RAY_WORKDIR"] == "/shared/w"


def test_a_job_refuses_a_registry_inside_rays_temporary_upload(tmp_path: Path) -> None:
    from mlops_ray.cluster.entrypoints import check_workdir_outlives_job
    from mlops_ray.runtime import resolve_runtime

    upload = tmp_path / "session_1" / "runtime_resources" / "working_dir_files" / "_ray_pkg_abc"
    upload.mkdir(parents=True)
    rt = resolve_runtime(None, workdir=upload / "work", tracking_uri=f"sqlite:///{upload / 'work' / 'mlflow.db'}")
    with pytest.raises(ClusterError, match=r"inside Ray's temporary copy .* --workdir /shared/path"):
        check_workdir_outlives_job(rt, cwd=upload)
    check_workdir_outlives_job(rt, cwd=tmp_path)  # not a Ray upload: a user's own ./work
    server = resolve_runtime(None, workdir=upload / "work", tracking_uri="http://mlflow:5000")
    check_workdir_outlives_job(server, cwd=upload)  # the registry lives on the server
    lasting = resolve_runtime(None, workdir=tmp_path / "shared", tracking_uri=f"sqlite:///{tmp_path}/shared/m.db")
    check_workdir_outlives_job(lasting, cwd=upload)
    # batch_predict's --output: a relative folder is inside the upload (the job SUCCEEDED, the files vanished).
    from mlops_ray.cluster.entrypoints import check_output_outlives_job

    with pytest.raises(ClusterError, match=rf"--output work/scored would be written inside Ray's temporary copy.*"
                                           rf"--output {tmp_path / 'shared' / 'scored'}"):
        check_output_outlives_job("work/scored", lasting, cwd=upload)
    check_output_outlives_job(str(tmp_path / "out"), lasting, cwd=upload)
    check_output_outlives_job("s3://bucket/scored", lasting, cwd=upload)
    check_output_outlives_job("work/scored", lasting, cwd=tmp_path)  # a local run: ./work/scored lasts


def test_the_train_job_refuses_empty_steps(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from mlops_ray.cluster.entrypoints import main as job_main

    # `--steps ""` must not mean every step (deploy included); said before any Ray work.
    assert job_main("train", ["--config", str(REPO / "examples/breast_cancer.yaml"), "--steps", "",
                              "--workdir", str(tmp_path / "w")]) == 1
    assert "--steps is empty" in capsys.readouterr().err and not (tmp_path / "w").exists()
