"""What a submission to the Ray Jobs API consists of: entrypoint, runtime_env, id, metadata (pure logic)."""

from __future__ import annotations

import re
import secrets
import shlex
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlops_ray.exceptions import ClusterError

# job name -> entrypoint script, relative to the repository root (the job's working_dir).
JOBS: dict[str, str] = {
    "train": "jobs/train.py",
    "deploy": "jobs/deploy.py",
    "retrain": "jobs/retrain.py",
    "monitor": "jobs/monitor.py",
    "batch_predict": "jobs/batch_predict.py",
}

# Never uploaded with the working_dir: environments, outputs, caches (Ray also honours .gitignore).
DEFAULT_EXCLUDES: tuple[str, ...] = (
    ".venv", ".git", "work", "mlruns", "mlartifacts", "**/__pycache__", "*.egg-info", ".pytest_cache",
    ".ruff_cache", "benchmarks/out",
)

# Settings a job reads through runtime.py; forwarded from the submitter's flags when given.
FORWARDED_ENV = ("MLFLOW_TRACKING_URI", "MLOPS_RAY_WORKDIR")


@dataclass(frozen=True)
class JobSpec:
    """Everything ``JobSubmissionClient.submit_job`` needs, built without touching the network."""

    job: str
    entrypoint: str
    runtime_env: dict[str, Any]
    submission_id: str
    metadata: dict[str, str] = field(default_factory=dict)
    entrypoint_num_cpus: float | None = None
    entrypoint_num_gpus: float | None = None

    def submit_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = {
            "entrypoint": self.entrypoint,
            "runtime_env": self.runtime_env,
            "submission_id": self.submission_id,
            "metadata": self.metadata,
        }
        if self.entrypoint_num_cpus is not None:
            kw["entrypoint_num_cpus"] = self.entrypoint_num_cpus
        if self.entrypoint_num_gpus is not None:
            kw["entrypoint_num_gpus"] = self.entrypoint_num_gpus
        return kw

    def ray_job_submit_command(self, address: str) -> str:
        """The equivalent `ray job submit` command line (printed for users, and for reproducing)."""
        import json

        env = {k: v for k, v in self.runtime_env.items() if k != "working_dir"}
        parts = ["ray", "job", "submit", "--address", "ADDRESS", "--submission-id", self.submission_id,
                 "--working-dir", str(self.runtime_env.get("working_dir", ".")),
                 "--runtime-env-json", json.dumps(env, sort_keys=True), "--"]
        # A variable such as $RAY_ADDRESS stays in double quotes, so the pasted line expands it.
        quoted = f'"{address}"' if re.fullmatch(r"\$\{?[A-Za-z_][A-Za-z0-9_]*\}?", address) else shlex.quote(address)
        return shlex.join(parts).replace("ADDRESS", quoted, 1) + " " + self.entrypoint


def job_script(job: str) -> str:
    """The entrypoint script of a job name; error lists the allowed names."""
    try:
        return JOBS[job]
    except KeyError:
        raise ClusterError(f"unknown job {job!r}; choose one of: {', '.join(JOBS)}") from None


def make_submission_id(job: str, name: str, now: datetime | None = None, suffix: str | None = None) -> str:
    """A readable, unique id: ``mlops-ray-<job>-<pipeline>-<utc time>-<random>``."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:40] or "pipeline"
    return f"mlops-ray-{job.replace('_', '-')}-{slug}-{stamp}-{suffix or secrets.token_hex(3)}"


def relative_config(config: str | Path, working_dir: str | Path) -> str:
    """The config path as the job sees it (relative to working_dir); it must live inside working_dir."""
    cfg = Path(config).resolve()
    wd = Path(working_dir).resolve()
    if not cfg.is_file():
        raise ClusterError(f"config file not found: {config}")
    if not wd.is_dir():
        raise ClusterError(f"working directory not found: {working_dir}")
    try:
        return cfg.relative_to(wd).as_posix()
    except ValueError:
        raise ClusterError(
            f"config {str(cfg)!r} is outside the working directory {str(wd)!r}, so the job would not see it; "
            "move it under the working directory or pass --working-dir with a folder that contains it"
        ) from None


def build_submission(
    job: str,
    config: str | Path,
    working_dir: str | Path,
    *,
    name: str = "pipeline",
    job_args: list[str] | None = None,
    env_vars: dict[str, str] | None = None,
    pip: list[str] | None = None,
    excludes: list[str] | None = None,
    submission_id: str | None = None,
    entrypoint_num_cpus: float | None = None,
    entrypoint_num_gpus: float | None = None,
    code_version: str | None = None,
) -> JobSpec:
    """Build the submission of ``jobs/<job>.py --config <config> [job_args...]`` with ``working_dir`` uploaded."""
    script = job_script(job)
    wd = Path(working_dir).resolve()
    if not (wd / script).is_file():
        raise ClusterError(
            f"{script} not found under working directory {str(wd)!r}; pass --working-dir with the repository root"
        )
    rel_cfg = relative_config(config, wd)
    entrypoint = shlex.join(["python", script, "--config", rel_cfg, *(job_args or [])])
    runtime_env: dict[str, Any] = {
        "working_dir": str(wd),
        "excludes": [*DEFAULT_EXCLUDES, *(excludes or [])],
    }
    env_vars = dict(env_vars or {})
    if code_version:  # the upload has no .git: the job records this as its code version
        env_vars.setdefault("MLOPS_RAY_CODE_VERSION", code_version)
    if env_vars:
        bad = [k for k in env_vars if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", k)]
        if bad:
            raise ClusterError(f"invalid environment variable names: {bad}; use NAME=VALUE")
        runtime_env["env_vars"] = env_vars
    if pip:
        runtime_env["pip"] = list(pip)
    metadata = {"mlops_ray.job": job, "mlops_ray.config": rel_cfg, "mlops_ray.pipeline": name}
    if code_version:
        metadata["mlops_ray.code_version"] = code_version
    return JobSpec(
        job=job,
        entrypoint=entrypoint,
        runtime_env=runtime_env,
        submission_id=submission_id or make_submission_id(job, name),
        metadata=metadata,
        entrypoint_num_cpus=entrypoint_num_cpus,
        entrypoint_num_gpus=entrypoint_num_gpus,
    )


def parse_env_pairs(items: list[str]) -> dict[str, str]:
    """``["A=1", "B=x"]`` -> ``{"A": "1", "B": "x"}`` with a clear error for a missing ``=``."""
    out: dict[str, str] = {}
    for item in items:
        if "=" not in item:
            raise ClusterError(f"--env {item!r}: expected NAME=VALUE")
        k, v = item.split("=", 1)
        out[k.strip()] = v
    return out
