"""The examples and the README's commands, run as a user would: the `mlops-ray` console script in a subprocess.

The subprocesses join the session's Ray (RAY_ADDRESS) so that the suite starts one Ray, not one per command.
The deploy step is exercised end to end by tests/e2e/test_closed_loop.py and the Serve integration tests.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CLI = [sys.executable, "-m", "mlops_ray.cli"]
pytestmark = pytest.mark.slow


def _run(args: list[str], ray_address: str, tmp: Path, timeout: float = 600) -> str:
    env = {**os.environ, "RAY_ADDRESS": ray_address, "MLOPS_RAY_WORKDIR": str(tmp / "work")}
    env.pop("MLFLOW_TRACKING_URI", None)  # the default store under the working directory, as for a user
    r = subprocess.run([*CLI, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, f"mlops-ray {' '.join(args)} failed:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
    return r.stdout


def test_every_readme_command_exists() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = set(re.findall(r"`mlops-ray ([a-z]+)", readme))
    assert {"run", "data", "tune", "register", "deploy", "monitor"} <= commands
    help_text = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True).stdout
    for command in commands:
        assert re.search(rf"\b{command}\b", help_text), f"README names `mlops-ray {command}`, the CLI lacks it"


def test_breast_cancer_example_trains_registers_and_then_hits_the_cache(ray_session: str, tmp_path: Path) -> None:
    args = ["run", "examples/breast_cancer.yaml", "--steps", "data,tune,register",
            "--set", "tune.num_samples=2", "--set", "data.split.folds=3"]
    out = _run(args, ray_session, tmp_path)
    assert "reconciles     yes (569 = 569 + 0)" in out
    assert re.search(r"breast_cancer v1 registered", out)
    assert "alias champion -> v1" in out
    assert (tmp_path / "work" / "mlflow.db").is_file()
    assert (tmp_path / "work" / "data" / "breast_cancer" / "features.json").is_file()

    again = _run(args, ray_session, tmp_path)
    assert "[cache]" in again and "version 1: reusing it" in again
    assert "[tune] starting" not in again


def test_synthetic_example_on_a_generated_table(ray_session: str, tmp_path: Path) -> None:
    data = tmp_path / "generated" / "synthetic"
    _run(["data", "generate", "--rows", "6000", "--out", str(data), "--files", "3", "--seed", "7"],
         ray_session, tmp_path)
    # The example as shipped, pointed at the generated folder (its own path is relative to the repo's work/).
    spec = yaml.safe_load((ROOT / "examples" / "synthetic.yaml").read_text())
    spec["data"]["source"]["path"] = str(data)
    config = tmp_path / "synthetic.yaml"
    config.write_text(yaml.safe_dump(spec))
    out = _run(["run", str(config), "--steps", "data,tune", "--set", "tune.num_samples=2",
                "--set", "data.split.folds=3"], ray_session, tmp_path)
    def count(label: str) -> int:
        m = re.search(rf"{label}\s+([\d,]+)", out)
        assert m, out
        return int(m.group(1).replace(",", ""))

    assert count("rows read") == 6000
    rejected = count("rejected")
    assert rejected > 0, "the generator injects malformed rows; they must be rejected, not dropped silently"
    assert "reconciles     yes" in out
    assert re.search(r"best \(\w+, max\): CV 0\.\d+", out)


def test_make_is_available_for_the_readme_commands() -> None:
    assert shutil.which("make"), "the README's commands are make targets"
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^demo:", makefile, re.M) and re.search(r"^test:", makefile, re.M)
