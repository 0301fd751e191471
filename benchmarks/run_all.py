"""Run every benchmark in benchmarks/, one process each, with the settings BENCHMARKS.md reports.

    .venv/bin/python benchmarks/run_all.py              # the reported settings (roughly an hour on 2 cores)
    .venv/bin/python benchmarks/run_all.py --quick      # small sizes: checks that each benchmark runs (~12 min)
    .venv/bin/python benchmarks/run_all.py --only tune serve

`make bench` runs the first form. Each benchmark prints its own table and writes benchmarks/out/*.json;
this script prints one line per benchmark (exit status, minutes) and exits 1 if any failed. The serving
benchmark needs `wrk` and is skipped, with the reason, when it is not installed. The 20M-row memory runs
of the preprocessing and batch benchmarks are in the reported settings; --quick leaves them out.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# name -> (reported settings, quick settings); a benchmark may need more than one invocation.
RUNS: dict[str, tuple[list[list[str]], list[list[str]]]] = {
    "tune": ([["--reps", "3"]], [["--reps", "1", "--default-noop-trials", "5"]]),
    "preprocess": ([["--rows", "2000000", "--repeats", "3", "--mem-rows", "20000000"]],
                   [["--rows", "100000", "--repeats", "1"]]),
    "batch_predict": ([["--rows", "5000000", "--repeats", "5"], ["--rows", "20000000", "--repeats", "1"]],
                      [["--rows", "200000", "--repeats", "1"]]),
    "serve": ([["--duration", "15", "--repeats", "5"]], [["--duration", "3", "--repeats", "1"]]),
    "registry": ([["--repeats", "3", "--rows", "2000"]], [["--repeats", "1", "--rows", "500"]]),
    "monitor_drift": ([["--rows", "1000000", "--files", "20", "--repeats", "3", "--seeds", "200"]],
                      [["--rows", "50000", "--files", "4", "--repeats", "1", "--seeds", "20"]]),
}


def scripts() -> dict[str, Path]:
    """Every bench_<name>.py beside this file, by name."""
    return {p.stem.removeprefix("bench_"): p for p in sorted(HERE.glob("bench_*.py"))}


def skip_reason(name: str) -> str | None:
    if name == "serve" and shutil.which("wrk") is None:
        return "needs wrk (Debian/Ubuntu: apt-get install wrk)"
    return None


def main(argv: list[str] | None = None) -> int:
    found = scripts()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes, one repeat: a check that each one runs")
    ap.add_argument("--only", nargs="+", choices=sorted(found), metavar="NAME",
                    help=f"run only these ({', '.join(sorted(found))})")
    args = ap.parse_args(argv)
    missing = sorted(set(found) - set(RUNS))
    if missing:  # a new benchmark must say how it is run here, or `make bench` would silently skip it
        ap.error(f"no settings in run_all.py for {', '.join(missing)}: add them to RUNS")
    failed, lines = [], []
    for name in args.only or sorted(found):
        reason = skip_reason(name)
        if reason:
            lines.append(f"{name:<14} skipped: {reason}")
            continue
        for extra in RUNS[name][1 if args.quick else 0]:
            cmd = [sys.executable, str(found[name]), *extra]
            print(f"\n=== {' '.join(cmd[1:])}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.call(cmd, cwd=HERE.parent)
            minutes = (time.perf_counter() - t0) / 60
            lines.append(f"{name:<14} {'ok' if rc == 0 else f'FAILED (exit {rc})':<16} {minutes:5.1f} min  "
                         f"{' '.join(extra)}")
            if rc != 0:
                failed.append(name)
    print("\n" + "\n".join(lines))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
