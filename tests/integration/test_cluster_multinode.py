"""A real multi-node Ray cluster on one machine (head + 2 workers, token auth), used as users do.

The cluster runs in its own process (cluster_harness.py) with RAY_AUTH_MODE=token and a fresh token;
this test talks to it only through the Jobs API (`mlops-ray submit` / JobClient), like a laptop
talking to a remote cluster. It shows: trials ran on both workers; a worker killed mid-search does
not stop the search from finishing with every trial completed and a sound model; batch_predict
scores every row exactly once; a missing or wrong token gets a clear error.

Not using the `ray_session` fixture on purpose: no Ray driver runs in this process.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml

from mlops_ray.cluster.gate_output import read_job_result
from mlops_ray.cluster.jobs import JobClient
from mlops_ray.cluster.spec import JOBS, JobSpec, make_submission_id
from mlops_ray.exceptions import ClusterError

pytestmark = [pytest.mark.cluster, pytest.mark.slow, pytest.mark.timeout(600)]

REPO = Path(__file__).resolve().parents[2]
HARNESS = Path(__file__).with_name("cluster_harness.py")


class Harness:
    def __init__(self, token: str, tmpdir: str) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
        env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN=token, RAY_TMPDIR=tmpdir, RAY_USAGE_STATS_ENABLED="0",
                   PYTHONPATH=str(REPO))
        # Job entrypoints say `python ...`, as users write them: make that this interpreter.
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        self.proc = subprocess.Popen([sys.executable, str(HARNESS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=REPO)
        self.info = self.read(timeout=180)

    def read(self, timeout: float) -> dict:
        out: list[str] = []

        def reader() -> None:
            for line in self.proc.stdout:  # type: ignore[union-attr]
                at = line.find("HARNESS ")  # anywhere: Ray's own output may share the line
                if at >= 0:
                    out.append(line[at + len("HARNESS "):])
                    return

        t = threading.Thread(target=reader, daemon=True)
        t.start()
        t.join(timeout)
        if not out:
            raise RuntimeError(f"cluster harness gave no answer in {timeout}s (exit code {self.proc.poll()})")
        # The answer is the first JSON object on the line; another process's output may follow it.
        return json.JSONDecoder().raw_decode(out[0].strip())[0]  # type: ignore[no-any-return]

    def ask(self, cmd: str, timeout: float = 60) -> dict:
        assert self.proc.stdin is not None
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        return self.read(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                assert self.proc.stdin is not None
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(60)
            except Exception:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="module")
def cluster() -> Iterator[tuple[Harness, str]]:
    token = secrets.token_hex(32)
    tmpdir = tempfile.mkdtemp(prefix="mrc", dir="/tmp")  # short: Ray's socket paths have a length limit
    h = Harness(token, tmpdir)
    try:
        yield h, token
    finally:
        h.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with the pipeline config (and, later, the data to score)."""
    wd = tmp_path_factory.mktemp("project")
    cfg = {
        "name": "mn_demo", "seed": 1, "steps": ["data", "tune", "register"],
        "data": {"source": {"bundled": "breast_cancer"}, "target": "target", "task": "classification",
                 "split": {"holdout_fraction": 0.25, "folds": 4}},
        "tune": {"model": {"kind": "sklearn", "estimator": "sklearn.ensemble.RandomForestClassifier",
                           "params": {"n_jobs": 1}},
                 "search": "random", "num_samples": 6, "scheduler": "fifo", "metric": "roc_auc",
                 "search_space": {"n_estimators": {"choice": [120, 160]}, "max_depth": {"choice": [4, 6]}},
                 "resources": {"cpu": 1}, "max_failures": 3},
        "registry": {"gate": {"thresholds": {"roc_auc": 0.9}, "n_bootstrap": 200}},
    }
    (wd / "pipeline.yaml").write_text(yaml.safe_dump(cfg))
    return wd


def _spec(job: str, project: Path, workdir: Path, job_args: list[str] | None = None) -> JobSpec:
    """The job with code at absolute paths, as in an image (cluster/kuberay/rayjob.yaml), not a working_dir.

    On one machine all three nodes share one runtime_resources folder, so a working_dir package set up
    by a worker's agent can be removed under the head's driver; on a real cluster each node has its own.
    The working_dir upload itself is covered by the dry-run unit tests and docs/cluster.md.
    """
    entry = shlex.join(["python", str(REPO / JOBS[job]), "--config", str(project / "pipeline.yaml"),
                        *(job_args or [])])
    return JobSpec(job=job, entrypoint=entry, submission_id=make_submission_id(job, "mn_demo"),
                   runtime_env={"env_vars": {"MLOPS_RAY_WORKDIR": str(workdir), "RAY_USAGE_STATS_ENABLED": "0"}},
                   metadata={"mlops_ray.job": job})


def _run_job(client: JobClient, spec, timeout_s: float = 420) -> str:
    job_id = client.submit(spec)
    state = client.wait(job_id, timeout_s=timeout_s)
    logs = client.logs(job_id)
    assert state.status == "SUCCEEDED", f"{state.status}: {state.message}\n{logs[-4000:]}"
    return job_id


def test_token_auth_missing_and_wrong(cluster: tuple[Harness, str], tmp_path: Path) -> None:
    h, token = cluster
    url = h.info["dashboard"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH")}
    env["HOME"] = str(tmp_path)  # no ~/.ray/auth_token either
    out = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "job", "list", "--address", url],
                         capture_output=True, text=True, env=env, timeout=120, cwd=REPO)
    assert out.returncode == 1
    assert "requires token authentication" in out.stderr and "RAY_AUTH_TOKEN" in out.stderr
    with pytest.raises(ClusterError, match="rejected the auth token"):
        JobClient(url, token="0" * 64)
    assert isinstance(JobClient(url, token=token).list(), list)


def test_search_spans_nodes_survives_a_dead_worker_then_batch_scores(
        cluster: tuple[Harness, str], project: Path, tmp_path: Path) -> None:
    h, token = cluster
    client = JobClient(h.info["dashboard"], token=token)
    workdir = tmp_path / "work"
    job_id = client.submit(_spec("train", project, workdir))
    killed = h.ask("kill_when_trial_on w2 200", timeout=220)
    assert killed["killed"] == "w2", f"no trial ever ran on w2: {client.logs(job_id)[-3000:]}"
    state = client.wait(job_id, timeout_s=420)
    logs = client.logs(job_id)
    assert state.status == "SUCCEEDED", f"{state.status}: {state.message}\n{logs[-4000:]}"

    # Trials ran on both workers (seen through Ray's state API while the search ran).
    per_node = h.ask("trial_nodes")
    assert per_node.get("w1", 0) >= 1 and per_node.get("w2", 0) >= 1, per_node
    # The search finished: every trial completed (the ones on w2 retried on w1), and the winner is sound.
    summary = read_job_result(logs)  # the job's result line, as CI reads it
    assert json.loads((workdir / "jobs" / f"{job_id}.json").read_text())["submission_id"] == job_id
    trials = summary["search"]["trials"]
    assert len(trials) == 6 and all(t["status"] == "completed" for t in trials), trials
    assert all(len(t["fold_scores"]) == 4 for t in trials)
    assert sum(t["num_failures"] for t in trials) >= 1  # at least one trial lost its worker and was retried
    assert summary["search"]["holdout_metrics"]["roc_auc"] > 0.95
    assert summary["search"]["refit_on"] == "ray_task"  # three nodes: the driver's head node does not train
    assert summary["registration"]["accepted"] is True

    # Batch scoring on the surviving nodes through the Jobs API: every row exactly once.
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame.drop(columns=["target"])
    frame.insert(0, "row_id", range(len(frame)))
    inp = project / "to_score"
    inp.mkdir(exist_ok=True)
    for i in range(3):
        frame.iloc[i::3].to_parquet(inp / f"part-{i}.parquet", index=False)
    out = tmp_path / "scored"
    bp = _spec("batch_predict", project, workdir, ["--input", str(inp), "--output", str(out), "--id-column",
                                                  "row_id", "--concurrency", "1", "--batch-size", "100"])
    _run_job(client, bp)
    scored = pd.read_parquet(out)
    assert len(scored) == len(frame) and scored["row_id"].is_unique
    assert set(scored["row_id"]) == set(frame["row_id"])
    version = summary["registration"]["version"]
    assert set(scored["model_uri"]) == {f"models:/mn_demo/{version}"}
    accuracy = (scored.sort_values("row_id")["prediction"].to_numpy()
                == load_breast_cancer().target).mean()
    assert accuracy > 0.9
