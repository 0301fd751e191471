"""Failure and resume, for real: a trial's worker process is killed, and the driver itself is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
from mlflow import MlflowClient

from mlops_ray.config import parse_config
from mlops_ray.runtime import Runtime
from mlops_ray.tune import run_search
from tests.tune_helpers import make_prepared, tune_config

REPO = Path(__file__).resolve().parents[2]
SLOW = "tests.tune_helpers.SlowClassifier"


def _kill_first_pid(pid_dir: Path, killed: list[int], timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        files = sorted(pid_dir.glob("*.pid"), key=lambda p: p.stat().st_mtime)
        if files:
            pid = int(files[0].read_text())
            os.kill(pid, signal.SIGKILL)
            killed.append(pid)
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_trial_whose_worker_is_killed_is_retried(ray_session: str, runtime: Runtime, tmp_path: Path) -> None:
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    cfg = parse_config(tune_config(
        model={"estimator": SLOW, "params": {"sleep_s": 0.5, "pid_dir": str(pid_dir)}}, search="grid",
        max_failures=2, search_space={"C": {"grid": [0.5, 1.0]}}))
    killed: list[int] = []
    killer = threading.Thread(target=_kill_first_pid, args=(pid_dir, killed), daemon=True)
    killer.start()
    result = run_search(cfg, runtime, make_prepared(n=120, n_folds=3))
    killer.join(5)
    assert len(killed) == 1
    assert result.n_completed == 2 and all(t.folds_done == 3 for t in result.trials)
    retried = [t for t in result.trials if t.num_failures == 1]
    assert len(retried) == 1, [(t.config, t.num_failures) for t in result.trials]
    child = MlflowClient(runtime.tracking_uri).get_run(retried[0].run_id)
    assert child.data.tags["mlops_ray.num_failures"] == "1" and child.info.status == "FINISHED"


def _trial_pids() -> set[int]:
    import psutil

    return {p.pid for p in psutil.process_iter(["cmdline"]) if "ImplicitFunc" in " ".join(p.info["cmdline"] or [])}


def _kill_a_grower(store_name: str, before: set[int], killed: list[int], timeout_s: float = 90.0) -> None:
    """Once a trial holds a claim on a fold it grows, kill a trial process of this search."""
    import ray

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            claimed = ray.get(ray.get_actor(store_name).stats.remote())["claimed"]
        except ValueError:  # the store is not up yet
            claimed = 0
        new = sorted(_trial_pids() - before)
        if claimed and new:
            os.kill(new[0], signal.SIGKILL)
            killed.append(new[0])
            return
        time.sleep(0.05)


@pytest.mark.slow
def test_worker_killed_while_growing_a_shared_path_is_retried_and_nobody_waits_for_its_claim(
        ray_session: str, runtime: Runtime) -> None:
    from mlops_ray.tune import cross_validate
    from mlops_ray.tune.estimators import make_factory
    from mlops_ray.tune.fold_store import store_name
    from mlops_ray.tune.search import experiment_name

    model = {"estimator": "sklearn.ensemble.RandomForestClassifier", "params": {"n_jobs": 1}}
    space = {"n_estimators": {"grid": [50, 600]}}  # one group: both trials need the same three paths
    cfg = parse_config(tune_config(model=model, search="grid", max_failures=2, search_space=space))
    prepared = make_prepared(n=1500, n_folds=3)
    killed: list[int] = []
    killer = threading.Thread(target=_kill_a_grower, daemon=True,
                              args=(store_name(experiment_name(cfg, prepared)), _trial_pids(), killed))
    killer.start()
    t0 = time.monotonic()
    result = run_search(cfg, runtime, prepared)
    elapsed = time.monotonic() - t0
    killer.join(5)
    assert len(killed) == 1
    assert result.n_completed == 2 and sum(t.num_failures for t in result.trials) == 1
    factory = make_factory("sklearn", model["estimator"], "classification", model["params"], list(space), 0)
    for t in result.trials:
        assert t.fold_scores == cross_validate(factory, t.config, prepared.X_train, prepared.y_train, prepared.folds,
                                               "classification", 2).values("accuracy").tolist()
    assert elapsed < 300  # a lost claim would have held the other trial for the 600 s stale limit


DRIVER = """
import sys
sys.path.insert(0, {repo!r})
from mlops_ray.config import parse_config
from mlops_ray.runtime import resolve_runtime
from mlops_ray.tune import run_search
from tests.tune_helpers import make_prepared, tune_config

cfg = parse_config({cfg!r})
rt = resolve_runtime(None, workdir={workdir!r}, address={address!r}, tracking_uri={uri!r})
rt.ensure_dirs()
run_search(cfg, rt, make_prepared(n=120, n_folds=3), resume=len(sys.argv) > 1)
print("SEARCH DONE")
"""


GRID = [0.1, 0.2, 0.3, 0.4, 0.5]


def _start_driver(runtime: Runtime, address: str, tmp_path: Path, trials_done: int
                  ) -> tuple[subprocess.Popen[bytes], Path, dict]:
    """A search over GRID in a driver process of its own, returned once ``trials_done`` trials fitted all folds."""
    log = tmp_path / "fits.log"
    spec = tune_config(model={"estimator": SLOW, "params": {"sleep_s": 0.4, "log_path": str(log)}}, search="grid",
                       max_concurrent=1, search_space={"C": {"grid": GRID}})
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(DRIVER).format(repo=str(REPO), cfg=spec, workdir=str(runtime.workdir),
                                                     address=address, uri=runtime.tracking_uri))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        fits = Counter(log.read_text().split()) if log.exists() else Counter()
        if sum(n == 3 for n in fits.values()) >= trials_done:
            break
        time.sleep(0.1)
    return proc, log, spec


@pytest.mark.slow
def test_killed_driver_resumes_without_rerunning_finished_trials(ray_session: str, runtime: Runtime,
                                                                 tmp_path: Path) -> None:
    grid = GRID
    # Two trials have fitted all 3 folds: give Tune time to save its state (every 2 s), then kill.
    proc, log, spec = _start_driver(runtime, ray_session, tmp_path, trials_done=2)
    try:
        time.sleep(2.5)
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = Counter(log.read_text().split())
    finished_before = {c for c, n in before.items() if n == 3}
    assert 2 <= len(finished_before) < len(grid), before

    result = run_search(parse_config(spec), runtime, make_prepared(n=120, n_folds=3), resume=True)
    after = Counter(log.read_text().split())
    after[str(result.best_config["C"])] -= 1  # the refit of the winner on all rows is one more fit
    assert result.resumed and result.n_completed == len(grid)
    assert sorted(float(c) for c in after) == grid
    not_rerun = {c for c in finished_before if after[c] == 3}
    assert len(not_rerun) >= 2, (before, after)  # finished trials were restored, not fitted again
    # The resumed search wrote into the same parent run, with one child per trial.
    client = MlflowClient(runtime.tracking_uri)
    children = client.search_runs([result.experiment_id],
                                  filter_string=f"tags.mlflow.parentRunId = '{result.parent_run_id}'")
    assert len(children) == len(grid)
    assert all(c.info.status == "FINISHED" and c.data.tags["mlops_ray.status"] == "completed" for c in children)
    assert all(len(client.get_metric_history(c.info.run_id, "fold_accuracy")) >= 3 for c in children)
    assert client.get_run(result.parent_run_id).data.tags.get("mlops_ray.resumed") == "true"


@pytest.mark.slow
def test_ctrl_c_stops_the_search_without_a_result_and_resume_finishes_it(ray_session: str, runtime: Runtime,
                                                                         tmp_path: Path) -> None:
    """Tune returns normally after Ctrl-C; the search must not: a partial winner would be registered."""
    proc, _, spec = _start_driver(runtime, ray_session, tmp_path, trials_done=1)
    try:
        assert proc.poll() is None, proc.stdout.read().decode()[-3000:] if proc.stdout else ""
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=120)[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode != 0 and "SEARCH DONE" not in out, out[-3000:]
    assert "SearchInterrupted" in out and "--resume" in out, out[-3000:]

    result = run_search(parse_config(spec), runtime, make_prepared(n=120, n_folds=3), resume=True)
    assert result.resumed and result.n_completed == len(GRID)
    parent = MlflowClient(runtime.tracking_uri).get_run(result.parent_run_id)
    assert parent.info.status == "FINISHED" and "mlops_ray.error" not in parent.data.tags  # not a stale failure
    assert parent.data.tags["mlops_ray.interrupted_by"].startswith("SearchInterrupted")
