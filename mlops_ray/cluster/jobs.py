"""The Ray Jobs API, as mlops-ray uses it: submit a job entrypoint, follow its logs, status, stop.

A thin layer over ``ray.job_submission.JobSubmissionClient`` that adds the cluster token (see
``auth.py``) and turns connection and authentication failures into ``ClusterError`` messages that
say what to do.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from mlops_ray.cluster.auth import auth_error_message, auth_headers, resolve_auth_token
from mlops_ray.cluster.spec import JobSpec
from mlops_ray.exceptions import ClusterError

if TYPE_CHECKING:
    from ray.job_submission import JobSubmissionClient

TERMINAL = ("SUCCEEDED", "FAILED", "STOPPED")


@dataclass(frozen=True)
class JobState:
    """What `mlops-ray job status` prints."""

    submission_id: str
    status: str
    message: str | None
    entrypoint: str | None
    start_time: float | None
    end_time: float | None
    metadata: dict[str, str]
    driver_exit_code: int | None = None

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return asdict(self)


def _dashboard_url(address: str) -> str:
    if "://" not in address:
        address = f"http://{address}"
    return address.rstrip("/")


class JobClient:
    """A connected Jobs API client for the dashboard at ``address`` (``http://HEAD:8265``)."""

    def __init__(self, address: str, *, token: str | None = None, token_file: str | Path | None = None,
                 verify: bool | str = True) -> None:
        self.address = _dashboard_url(address)
        self._token = resolve_auth_token(token, token_file)
        self._client = self._connect(verify)

    def _connect(self, verify: bool | str) -> JobSubmissionClient:
        from ray.exceptions import AuthenticationError
        from ray.job_submission import JobSubmissionClient

        try:
            return JobSubmissionClient(self.address, headers=auth_headers(self._token), verify=verify)
        except AuthenticationError as e:
            raise ClusterError(auth_error_message(self.address, _status_of(e), self._token is not None,
                                                  str(e))) from e
        except (ConnectionError, OSError) as e:
            raise ClusterError(
                f"cannot reach the Ray dashboard at {self.address}: {e}. Pass the dashboard address of the head "
                "node (http://HEAD:8265; on KubeRay `kubectl port-forward svc/<cluster>-head-svc 8265`), and "
                "check the head was started with the dashboard (ray[default])."
            ) from e

    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        from ray.exceptions import AuthenticationError

        try:
            return fn()
        except AuthenticationError as e:
            raise ClusterError(auth_error_message(self.address, _status_of(e), self._token is not None,
                                                  str(e))) from e
        except (ConnectionError, OSError) as e:
            raise ClusterError(f"{what}: lost the connection to {self.address}: {e}") from e
        except RuntimeError as e:
            # The SDK raises RuntimeError for any non-2xx answer (unknown job id, bad runtime_env, ...), with
            # the server's whole traceback in the text: its last line is the reason.
            raise ClusterError(f"{what} failed on {self.address}: {server_reason(str(e))}") from e

    def submit(self, spec: JobSpec, *, agent_wait_s: float = 120.0) -> str:
        """Submit a built job; returns its submission id.

        A head that has just started answers "No available agent to submit job" until its job agent is
        up: that one answer is retried for up to ``agent_wait_s``.
        """
        deadline = time.monotonic() + agent_wait_s
        while True:
            try:
                return self._call(f"submitting {spec.job}",
                                  lambda: self._client.submit_job(**spec.submit_kwargs()))
            except ClusterError as e:
                if "No available agent" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(2.0)

    def status(self, job_id: str) -> JobState:
        info = self._call(f"status of job {job_id}", lambda: self._client.get_job_info(job_id))
        return JobState(
            submission_id=info.submission_id or job_id,
            status=str(info.status),
            message=info.message,
            entrypoint=info.entrypoint,
            start_time=info.start_time / 1000 if info.start_time else None,
            end_time=info.end_time / 1000 if info.end_time else None,
            metadata=dict(info.metadata or {}),
            driver_exit_code=getattr(info, "driver_exit_code", None),
        )

    def logs(self, job_id: str) -> str:
        return self._call(f"logs of job {job_id}", lambda: self._client.get_job_logs(job_id))

    def stop(self, job_id: str) -> bool:
        """Ask the cluster to stop a job; True if it was running."""
        return bool(self._call(f"stopping job {job_id}", lambda: self._client.stop_job(job_id)))

    def list(self) -> list[JobState]:
        jobs = self._call("listing jobs", self._client.list_jobs)
        return [JobState(j.submission_id or j.job_id or "", str(j.status), j.message, j.entrypoint,
                         j.start_time / 1000 if j.start_time else None, j.end_time / 1000 if j.end_time else None,
                         dict(j.metadata or {})) for j in jobs]

    def tail(self, job_id: str) -> Iterator[str]:
        """Yield log chunks as the job writes them, until it ends (websocket, like `ray job logs -f`)."""
        agen = self._client.tail_job_logs(job_id)
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    chunk = self._call(f"following job {job_id}", lambda: loop.run_until_complete(agen.__anext__()))
                except StopAsyncIteration:
                    return
                yield chunk
        finally:
            loop.run_until_complete(agen.aclose())
            loop.close()

    def wait(self, job_id: str, *, timeout_s: float | None = None, poll_s: float = 1.0) -> JobState:
        """Poll until the job ends (or ``timeout_s`` passes: ClusterError)."""
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while True:
            state = self.status(job_id)
            if state.terminal:
                return state
            if deadline is not None and time.monotonic() > deadline:
                raise ClusterError(f"job {job_id} still {state.status} after {timeout_s:.0f}s; "
                                   f"check `mlops-ray job logs {job_id}` or stop it with `mlops-ray job stop {job_id}`")
            time.sleep(poll_s)

    def follow(self, job_id: str, out: TextIO | None = None) -> JobState:
        """Stream the logs to ``out`` until the job ends; returns its final state."""
        out = out or sys.stdout
        for chunk in self.tail(job_id):
            out.write(chunk)
            out.flush()
        # The log stream closes as the job ends; the status may lag by a moment.
        return self.wait(job_id, timeout_s=60, poll_s=0.5)


def _status_of(e: Exception) -> int | None:
    text = str(e)
    if text.startswith("Authentication required"):
        return 401
    if text.startswith("Authentication failed"):
        return 403
    return None


def submit_job(spec: JobSpec, address: str, *, token: str | None = None, token_file: str | Path | None = None,
               follow: bool = False, out: TextIO | None = None) -> JobState:
    """Submit ``spec`` to the cluster at ``address``; with ``follow`` stream logs and wait for the end."""
    client = JobClient(address, token=token, token_file=token_file)
    job_id = client.submit(spec)
    if follow:
        return client.follow(job_id, out)
    return client.status(job_id)


def server_reason(text: str) -> str:
    """The reason in a Jobs API error: the last line of a server traceback, with the status code kept."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    if len(lines) <= 1 or "Traceback (most recent call last)" not in text:
        return text.strip()
    head = lines[0].split("Traceback")[0].strip().rstrip(":")
    last = lines[-1]
    return f"{head}: {last}" if head else last
