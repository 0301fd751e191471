"""The CLI answers without importing the heavy libraries (Typer's habit: keep start-up light)."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("ray", "mlflow", "torch", "sklearn", "pandas", "pyarrow")


def test_help_imports_no_heavy_library() -> None:
    code = (
        "import sys, json; from mlops_ray.cli import build_parser; build_parser(); "
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == []


def test_unknown_command_exits_nonzero() -> None:
    r = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "no-such-command"], capture_output=True, text=True)
    assert r.returncode != 0 and "invalid choice" in r.stderr


def test_bad_config_is_a_clear_error_without_traceback(tmp_path) -> None:  # type: ignore[no-untyped-def]
    p = tmp_path / "c.yaml"
    p.write_text("name: t\ndata: {source: {bundled: iris}, bogus: 1}\n")
    r = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "run", str(p)], capture_output=True, text=True)
    assert r.returncode == 1
    assert "data.bogus" in r.stderr and "Traceback" not in r.stderr


def test_a_bad_output_path_is_one_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    afile = tmp_path / "afile"
    afile.write_text("")
    for out in (afile, afile / "sub"):
        r = subprocess.run([sys.executable, "-m", "mlops_ray.cli", "data", "generate", "--rows", "10", "--out",
                            str(out)], capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.startswith("error: ") and str(afile) in r.stderr and len(r.stderr.splitlines()) == 1
    assert afile.read_text() == ""  # nothing written over it



def test_os_errors_read_as_one_line() -> None:
    from mlops_ray.cli import os_error_text

    assert os_error_text(FileExistsError(17, "File exists", "/tmp/afile")) == "File exists: /tmp/afile"
    # pyarrow raises FileNotFoundError with the path alone: say that the file is gone.
    assert os_error_text(FileNotFoundError("/w/monitor/m/v1/part.parquet")) == (
        "file not found: /w/monitor/m/v1/part.parquet (moved or deleted while the command ran? run it again)")
    assert os_error_text(ConnectionResetError("peer closed")) == "ConnectionResetError: peer closed"
