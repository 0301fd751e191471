"""`make bench` runs benchmarks/run_all.py: every benchmark in the folder must have its settings there."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _runner():
    spec = importlib.util.spec_from_file_location("run_all", ROOT / "benchmarks" / "run_all.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_benchmark_has_reported_and_quick_settings() -> None:
    run_all = _runner()
    assert set(run_all.scripts()) == set(run_all.RUNS)
    for reported, quick in run_all.RUNS.values():
        assert reported and quick


def test_makefile_bench_target_runs_the_runner() -> None:
    make = (ROOT / "Makefile").read_text()
    assert "benchmarks/run_all.py" in make
    assert (ROOT / "benchmarks" / "run_all.py").is_file()


@pytest.mark.parametrize("name", sorted(_runner().RUNS))
def test_each_settings_line_parses_in_its_benchmark(name: str) -> None:
    """A settings line with an option the benchmark no longer has would fail only after an hour of `make bench`."""
    run_all = _runner()
    script = run_all.scripts()[name]
    for extra in [*run_all.RUNS[name][0], *run_all.RUNS[name][1]]:
        # argparse stops at --help after checking nothing else; parse the options for real with a dry probe:
        probe = ("import runpy, sys, argparse\n"
                 "orig = argparse.ArgumentParser.parse_args\n"
                 "def parse(self, args=None, namespace=None):\n"
                 "    ns = orig(self, args, namespace)\n"
                 "    raise SystemExit(0)\n"
                 "argparse.ArgumentParser.parse_args = parse\n"
                 f"sys.argv = [{str(script)!r}, *{extra!r}]\n"
                 f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
        out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]


def test_unknown_benchmark_name_is_refused() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "run_all.py"), "--only", "nope"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "invalid choice" in out.stderr
