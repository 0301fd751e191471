"""Read a job's result line (``MLOPS_RAY_JOB_RESULT {...}``) from its logs; used by CI to gate the deploy.

    mlops-ray job logs train-123 > train.log
    python -m mlops_ray.cluster.gate_output train.log >> "$GITHUB_OUTPUT"   # accepted=true, version=4
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from mlops_ray.cluster.entrypoints import SUMMARY_MARKER
from mlops_ray.exceptions import ClusterError


def read_job_result(log_text: str) -> dict[str, Any]:
    """The JSON summary a job printed last; ClusterError if the job printed none (it failed first)."""
    for line in reversed(log_text.splitlines()):
        idx = line.find(SUMMARY_MARKER)
        if idx >= 0:
            try:
                return json.loads(line[idx + len(SUMMARY_MARKER):])
            except json.JSONDecodeError as e:
                raise ClusterError(f"the job's result line is not valid JSON: {e}") from e
    raise ClusterError(f"no {SUMMARY_MARKER.strip()} line in the job's logs: the job failed before it finished; "
                       "read the logs with `mlops-ray job logs ID`")


def gate_outputs(result: dict[str, Any]) -> dict[str, str]:
    """``accepted``/``version``/``model`` of the registration in a train (or retrain) job's result."""
    reg = result.get("registration") or (result.get("retrain") or {}).get("registration") or {}
    if not reg:
        return {"accepted": "false", "version": "", "model": ""}
    return {"accepted": "true" if reg.get("accepted") else "false", "version": str(reg.get("version") or ""),
            "model": str(reg.get("name") or "")}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m mlops_ray.cluster.gate_output JOB_LOG_FILE", file=sys.stderr)
        return 2
    try:
        outputs = gate_outputs(read_job_result(Path(args[0]).read_text()))
    except (ClusterError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for k, v in outputs.items():
        print(f"{k}={v}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
