"""The detached head is recorded as soon as it starts: an interrupted start leaves no head `shutdown` cannot see."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = """
import sys
from mlops_ray.runtime import resolve_runtime
from mlops_ray.serve.head import ensure_local_head
ensure_local_head(resolve_runtime(None, workdir=sys.argv[1]))
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_while_the_head_starts_stops_it(tmp_path: Path) -> None:
    record = tmp_path / "w" / "serve" / "head.json"
    proc = subprocess.Popen([sys.executable, "-c", SCRIPT, str(tmp_path / "w")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not record.is_file() and time.monotonic() < deadline:  # written right after `ray start` is spawned
        time.sleep(0.02)
    head_pid = json.loads(record.read_text())["pid"]
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=90)
    assert "KeyboardInterrupt" in err
    deadline = time.monotonic() + 60
    while _alive(head_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(head_pid) and not record.exists()  # stopped and forgotten, not left running untracked
