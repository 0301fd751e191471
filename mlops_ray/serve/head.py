"""A detached local Ray head for `mlops-ray deploy`, so the Serve application outlives the CLI process.

``ensure_local_head`` starts ``ray start --head --block`` in its own process group and records it in
``serve_dir/head.json``; ``stop_local_head`` ends only that process group (never ``ray stop``, which
would end every Ray on the machine). Fast mode sets Ray Serve's HAProxy ingress and throughput-optimized
mode for the head's processes (they must be set before the cluster starts).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from mlops_ray.exceptions import ServeError
from mlops_ray.runtime import Runtime

HEAD_FILE = "head.json"
FAST_MODE_ENV = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}


@dataclass
class HeadInfo:
    address: str  # GCS address, host:port
    pid: int  # the `ray start --block` process; its process group holds the whole head
    fast_mode: bool
    started_at: float
    log: str
    env: dict[str, str] = field(default_factory=dict)  # the Serve settings the head was started with


def _alive(pid: int) -> bool:
    """The recorded `ray start` process still runs (not another process that reused its pid after a reboot)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # no /proc (macOS): trust the pid
        return True
    return b"ray" in cmdline or b"env" in cmdline  # `env VAR=... ray start`, or ray itself


def _port_open(address: str) -> bool:
    host, _, port = address.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=0.5):
            return True
    except OSError:
        return False


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_head(runtime: Runtime) -> HeadInfo | None:
    """The head this working directory started, if it is still running."""
    info = _recorded(runtime)
    if info is not None and _alive(info.pid) and _port_open(info.address):
        return info
    return None


def _recorded(runtime: Runtime) -> HeadInfo | None:
    path = runtime.serve_dir / HEAD_FILE
    if not path.is_file():
        return None
    return HeadInfo(**json.loads(path.read_text()))


def ensure_local_head(runtime: Runtime, *, fast_mode: bool = True, num_cpus: int | None = None,
                      timeout_s: float = 90.0) -> str:
    """The address of this working directory's detached Ray head, starting one if none runs."""
    existing = read_head(runtime)
    if existing is not None:
        return existing.address
    starting = _recorded(runtime)
    if starting is not None and _alive(starting.pid):  # another command is starting it: wait, never start a second
        deadline = time.monotonic() + timeout_s
        while _alive(starting.pid) and not _port_open(starting.address) and time.monotonic() < deadline:
            time.sleep(0.25)
        if _port_open(starting.address):
            return starting.address
    stop_local_head(runtime)  # a record of a head that died (or never opened its port): clear it
    runtime.serve_dir.mkdir(parents=True, exist_ok=True)
    port = _free_port()
    address = f"127.0.0.1:{port}"
    log = runtime.serve_dir / "ray-head.log"
    ray_bin = Path(sys.executable).with_name("ray")
    # Our own temp dir: `ray start` records the "current cluster" there, so that a plain ray.init() elsewhere
    # on this (shared) machine never joins this head by accident. Short path: Unix socket names are limited.
    temp_dir = Path(tempfile.gettempdir()) / f"mlops_ray_{hashlib.sha1(str(runtime.workdir).encode()).hexdigest()[:10]}"
    cmd = [str(ray_bin if ray_bin.exists() else "ray"), "start", "--head", "--block", f"--port={port}",
           "--node-ip-address=127.0.0.1", "--include-dashboard=false", "--disable-usage-stats",
           f"--temp-dir={temp_dir}"]
    if num_cpus is not None:
        cmd.append(f"--num-cpus={num_cpus}")
    # A one-node head has no other proxy to hand traffic to: Ray's 30 s node drain on SIGTERM (meant for
    # KubeRay pods) only made `shutdown` wait (33 s; 5 s with this).
    extra: dict[str, str] = {"RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "2"}
    if fast_mode:
        # HAProxy's metrics and stats listeners default to fixed ports (9101, 8404): free ones, so that two
        # heads on one machine do not collide.
        # Likewise HAProxy's backup server, Ray's fallback proxy (8500, 9500 by default, bound with reuseport):
        # shared, another head's ingress answered this head's requests while its own restarted.
        extra.update({**FAST_MODE_ENV, "RAY_SERVE_HAPROXY_METRICS_PORT": str(_free_port()),
                      "RAY_SERVE_HAPROXY_STATS_PORT": str(_free_port()),
                      "RAY_SERVE_FALLBACK_PROXY_HTTP_PORT": str(_free_port()),
                      "RAY_SERVE_FALLBACK_PROXY_GRPC_PORT": str(_free_port())})
    cmd = ["env", *(f"{k}={v}" for k, v in extra.items()), *cmd]  # adds to the inherited environment
    with open(log, "ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    # Recorded at once: a Ctrl-C (or a kill) while the head starts must not leave a head `shutdown` cannot see.
    info = HeadInfo(address=address, pid=proc.pid, fast_mode=fast_mode, started_at=time.time(), log=str(log),
                    env=extra)
    (runtime.serve_dir / HEAD_FILE).write_text(json.dumps(asdict(info)))
    deadline = time.monotonic() + timeout_s
    try:
        while not _port_open(address):
            if proc.poll() is not None:
                raise ServeError(f"`{' '.join(cmd)}` exited with code {proc.returncode}; see {log}")
            if time.monotonic() > deadline:
                raise ServeError(f"the Ray head did not open {address} within {timeout_s:.0f}s; see {log}")
            time.sleep(0.25)
    except BaseException:  # failed, timed out or interrupted: stop it and forget it
        stop_local_head(runtime)
        raise
    return address


def stop_pid(pid: int, timeout_s: float = 45.0) -> None:
    """SIGTERM ``pid`` (`ray start --block` then drains and stops its head), SIGKILL its group if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        time.sleep(0.2)
    if _alive(pid):
        try:
            os.killpg(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def stop_local_head(runtime: Runtime) -> bool:
    """Stop the head that ``ensure_local_head`` started for this working directory; False if none ran."""
    path = runtime.serve_dir / HEAD_FILE
    info = _recorded(runtime)
    if info is None:
        return False
    running = _alive(info.pid)
    if running:
        stop_pid(info.pid)
    path.unlink(missing_ok=True)
    return running
