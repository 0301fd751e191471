"""MLflow tracking of a search: a parent run, a child run per trial, written from the driver only.

A Tune ``Callback`` sees every trial event in the driver, so one process writes to the tracking store
(no concurrent writers, and workers need no MLflow access). The callback only enqueues: one writer
thread does the writes in order, so the store's latency never slows the Tune loop (and no two writes
race on a SQLite store); the search waits for the queue at the end of the experiment.
The map trial id -> child run id is saved beside the Tune experiment, so a resumed search keeps
writing to the same parent and child runs.
"""

from __future__ import annotations

import json
import logging
import math
import queue
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from ray.tune import Callback

from mlops_ray.runtime import config_code_version, package_version, ray_job_id
from mlops_ray.tune.result import SearchResult, TrialSummary

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig
    from mlops_ray.data.prepared import PreparedData

logger = logging.getLogger(__name__)
PARENT_TAG = "mlflow.parentRunId"
_SKIP_KEYS = {"trial_error", "trial_traceback", "pid", "final", "fold_done", "n_folds", "device"}


def trial_index(trial_id: str, experiment_tag: str = "") -> int:
    """The trial's number from 0: grid/random trial ids end in it (``abc12_00007``); a searcher's trials
    (Optuna) have bare ids, and Tune's experiment tag starts with their 1-based count (``3_C=0.1``)."""
    try:
        return int(trial_id.rsplit("_", 1)[-1]) if "_" in trial_id else int(experiment_tag.split("_", 1)[0]) - 1
    except ValueError:
        return -1


def trial_status(last_result: dict[str, Any], n_folds_expected: int | None = None) -> str:
    """completed / stopped_early / error from a trial's last result."""
    if not last_result:
        return "not_run"
    if last_result.get("trial_error"):
        return "error"
    if last_result.get("final"):
        return "completed"
    return "stopped_early"


def _param_value(v: Any) -> str:
    s = json.dumps(v) if not isinstance(v, str) else v
    return s[:6000]


class TrackingState:
    """Parent run id and trial -> child run ids, persisted as JSON so that a resumed search reuses them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        data = json.loads(path.read_text()) if path.is_file() else {}
        self.parent_run_id: str | None = data.get("parent_run_id")
        self.runs: dict[str, str] = data.get("runs", {})

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps({"parent_run_id": self.parent_run_id, "runs": self.runs}, indent=1))
        tmp.replace(self.path)


class _Writer:
    """One thread that does every MLflow write of the trials, in order, off the Tune loop.

    A single writer means no two writes ever race on the store (SQLite locks), and the Tune loop only
    enqueues. Consecutive metric batches for the same run are merged into one ``log_batch``.
    """

    def __init__(self, do: Callable[[tuple[Any, ...]], None]) -> None:
        self._do = do
        self._q: queue.Queue[tuple[Any, ...] | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.errors: list[str] = []

    def put(self, item: tuple[Any, ...]) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._loop, name="mlops-ray-mlflow", daemon=True)
            self._thread.start()
        self._q.put(item)

    def drain(self) -> None:
        """Block until everything queued so far is written."""
        if self._thread is not None:
            self._q.join()

    def _loop(self) -> None:
        while True:
            items = [self._q.get()]
            while True:  # take what is already queued, to merge metric batches
                try:
                    items.append(self._q.get_nowait())
                except queue.Empty:
                    break
            merged: list[tuple[Any, ...]] = []
            for it in items:
                if it is not None and it[0] == "metrics" and merged and merged[-1][0] == "metrics" \
                        and merged[-1][1] == it[1]:
                    merged[-1] = ("metrics", it[1], merged[-1][2] + it[2])
                else:
                    merged.append(it)  # type: ignore[arg-type]
            for it in merged:
                if it is None:
                    continue
                try:
                    self._do(it)
                except Exception as e:  # tracking must not take the search down; report at the end
                    self.errors.append(f"{it[0]} for trial {it[1]}: {type(e).__name__}: {e}")
                    logger.warning("MLflow write failed (%s for trial %s): %s", it[0], it[1], e)
            for _ in items:
                self._q.task_done()


class MlflowTrialCallback(Callback):
    """One child run per trial: params at start, per-fold and running metrics, status at the end."""

    def __init__(self, tracking_uri: str, experiment_id: str, state: TrackingState, metric_key: str,
                 run_name_prefix: str) -> None:
        self.tracking_uri = tracking_uri
        self.client = MlflowClient(tracking_uri)
        self.experiment_id = experiment_id
        self.state = state
        self.metric_key = metric_key
        self.prefix = run_name_prefix
        self.writer = _Writer(self._apply)

    # Tune pickles its RunConfig (callbacks included) with the experiment, and Tuner.restore brings this
    # object back: keep only what rebuilds the client, and re-read the state file.
    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                "state_path": str(self.state.path), "metric_key": self.metric_key, "prefix": self.prefix}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__init__(d["tracking_uri"], d["experiment_id"], TrackingState(Path(d["state_path"])),  # type: ignore[misc]
                      d["metric_key"], d["prefix"])

    # ------------------------------------------------------------------------ the writer thread's side

    def _apply(self, item: tuple[Any, ...]) -> None:
        kind, trial_id = item[0], item[1]
        if kind == "start":
            run_id = self.state.runs.get(trial_id)
            if run_id is not None:  # a resumed or retried trial keeps its run
                self.client.update_run(run_id, status="RUNNING")
                return
            config, idx = item[2], item[3]
            run = self.client.create_run(
                self.experiment_id, run_name=f"{self.prefix}-trial-{idx:03d}",
                tags={PARENT_TAG: self.state.parent_run_id or "", "mlops_ray.trial_id": trial_id,
                      "mlops_ray.trial_index": str(idx), "mlops_ray.status": "running"})
            params = [Param(k, _param_value(v)) for k, v in sorted(config.items())]
            if params:
                self.client.log_batch(run.info.run_id, params=params)
            self.state.runs[trial_id] = run.info.run_id
            self.state.save()
            return
        run_id = self.state.runs.get(trial_id)
        if run_id is None:
            return
        if kind == "metrics":
            for i in range(0, len(item[2]), 1000):  # MLflow's log_batch limit
                self.client.log_batch(run_id, metrics=item[2][i:i + 1000])
        elif kind == "tags":
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in item[2].items()])
        elif kind == "finish":
            status, tags = item[2], item[3]
            self.client.log_batch(run_id, tags=[RunTag(k, v) for k, v in tags.items()])
            self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if status == "error"
                                                                   else RunStatus.FINISHED))

    # ------------------------------------------------------------------------ the Tune loop's side

    def _metrics(self, trial: Any, metrics: dict[str, Any], step: int) -> None:
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        if batch:
            self.writer.put(("metrics", trial.trial_id, batch))

    def flush(self) -> None:
        """Wait until every queued write reached the store."""
        self.writer.drain()

    def _finish(self, trial: Any, status: str, error: str | None = None) -> None:
        tags = {"mlops_ray.status": status, "mlops_ray.num_failures": str(trial.num_failures)}
        if error:
            tags["mlops_ray.error"] = error[:5000]
        self.writer.put(("finish", trial.trial_id, status, tags))

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        idx = trial_index(trial.trial_id, trial.experiment_tag)
        self.writer.put(("start", trial.trial_id, dict(trial.config), idx))

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        if result.get("trial_error"):
            return  # logged as the trial's error when it completes
        if result.get("fold_done", True):
            fold = int(result.get("fold", result.get("folds_done", 1) - 1))
            self._metrics(trial, {k: v for k, v in result.items() if k.startswith("fold_") and k not in _SKIP_KEYS},
                          step=fold)
            running = {k: v for k, v in result.items()
                       if k.startswith(("mean_", "std_", self.metric_key)) or k in ("fit_s", "folds_reused")}
            self._metrics(trial, running, step=int(result.get("folds_done", fold + 1)))
        else:  # a torch epoch inside a fold
            it = int(result.get("training_iteration", 0))
            self._metrics(trial, {k: v for k, v in result.items() if k.startswith("epoch_")}, step=it)
            self._metrics(trial, {f"{self.metric_key}_running": result.get(self.metric_key, math.nan)}, step=it)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        self._finish(trial, trial_status(last), last.get("trial_error"))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self.writer.put(("tags", trial.trial_id, {"mlops_ray.retries": str(trial.num_failures)}))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        err = trial.get_error() or f"trial {trial.trial_id} failed {trial.num_failures} time(s)"
        msg = str(err).strip().splitlines()[-1][:2000] if str(err).strip() else str(err)
        self._finish(trial, "error", msg)

    def on_experiment_end(self, trials: list[Any], **info: Any) -> None:
        self.flush()


def reconcile_children(client: MlflowClient, experiment_id: str, state: TrackingState, trials: list[Any],
                       prefix: str, metric: str) -> int:
    """After a resume: close (or create) the child runs whose last writes died with the old driver.

    ``trials`` are ``TrialSummary`` objects. Returns how many runs were fixed.
    """
    fixed = 0
    for t in trials:
        if t.status == "not_run":
            continue
        run_id = state.runs.get(t.trial_id)
        if run_id is None:
            run = client.create_run(experiment_id, run_name=f"{prefix}-trial-{t.index:03d}",
                                    tags={PARENT_TAG: state.parent_run_id or "", "mlops_ray.trial_id": t.trial_id,
                                          "mlops_ray.trial_index": str(t.index)})
            run_id = run.info.run_id
            client.log_batch(run_id, params=[Param(k, _param_value(v)) for k, v in sorted(t.config.items())])
            state.runs[t.trial_id] = run_id
            state.save()
        elif client.get_run(run_id).info.status != "RUNNING":
            continue
        ts = int(time.time() * 1000)
        metrics = [Metric(k, v, ts, t.folds_done) for k, v in t.metrics.items()]
        metrics += [Metric(f"fold_{metric}", float(v), ts, i) for i, v in enumerate(t.fold_scores)
                    if math.isfinite(v)]
        tags = [RunTag("mlops_ray.status", t.status), RunTag("mlops_ray.num_failures", str(t.num_failures))]
        if t.error:
            tags.append(RunTag("mlops_ray.error", t.error[:5000]))
        client.log_batch(run_id, metrics=metrics, tags=tags)
        client.set_terminated(run_id, "FAILED" if t.status == "error" else "FINISHED")
        fixed += 1
    return fixed


# ------------------------------------------------------------------------------ the parent run


def start_parent_run(client: Any, experiment_id: str, state: Any, cfg: PipelineConfig, prepared: PreparedData,
                  settings: dict[str, Any], resume: bool) -> str:
    if resume and state.parent_run_id:
        rid = state.parent_run_id
        client.update_run(rid, status="RUNNING")
        client.set_tag(rid, "mlops_ray.resumed", "true")
        error = client.get_run(rid).data.tags.get("mlops_ray.error")
        if error is not None:  # what stopped the earlier attempt is history now, not this run's outcome
            client.set_tag(rid, "mlops_ray.interrupted_by", error)
            client.delete_tag(rid, "mlops_ray.error")
        return str(rid)
    tags = {"mlops_ray.stage": "tune", "mlops_ray.data_fingerprint": prepared.fingerprint,
            "mlops_ray.config_hash": cfg.config_hash(), "mlops_ray.pipeline": cfg.name,
            "mlops_ray.code_version": config_code_version(cfg.source_file),
            "mlops_ray.package_version": package_version(), "mlops_ray.ray_job_id": ray_job_id() or ""}
    run = client.create_run(experiment_id, run_name=f"{cfg.name}-search", tags=tags)
    params = [Param(f"search.{k}", json.dumps(v)[:6000] if not isinstance(v, str) else v)
              for k, v in settings.items() if v is not None]
    client.log_batch(run.info.run_id, params=params)
    state.parent_run_id = run.info.run_id
    state.save()
    return str(run.info.run_id)


def log_search_artifacts(client: Any, run_id: str, trials: list[TrialSummary], settings: dict[str, Any],
                          metric: str, best_config: dict[str, Any]) -> None:
    from mlops_ray.tune.plots import plot_scores

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        (out / "search_settings.json").write_text(json.dumps(settings, indent=1, default=str))
        (out / "trials.json").write_text(json.dumps([asdict(t) for t in trials], indent=1, default=str))
        (out / "best_config.json").write_text(json.dumps(best_config, indent=1, default=str))
        client.log_artifacts(run_id, str(out), artifact_path="search")
        plot_dir = out / "plots"
        plot_scores(trials, metric, plot_dir)
        if plot_dir.exists():
            client.log_artifacts(run_id, str(plot_dir), artifact_path="plots")


def finish_parent_run(client: Any, result: SearchResult, best: TrialSummary) -> None:
    rid = result.parent_run_id
    ts = int(time.time() * 1000)
    metrics = {"best_cv_mean": result.cv_mean, "best_cv_std": result.cv_std,
               **{f"holdout_{k}": v for k, v in result.holdout_metrics.items()},
               "n_trials": len(result.trials), "n_completed": result.n_completed,
               "n_stopped_early": sum(t.status == "stopped_early" for t in result.trials),
               "n_time_budget": sum(t.status == "time_budget" for t in result.trials),
               "n_errors": sum(t.status == "error" for t in result.trials), "search_seconds": result.seconds,
               "refit_seconds": result.refit_s}
    client.log_batch(rid, metrics=[Metric(k, float(v), ts, 0) for k, v in metrics.items() if math.isfinite(v)],
                     params=[Param(f"best.{k}", json.dumps(v) if not isinstance(v, str) else v)
                             for k, v in sorted(result.best_config.items())],
                     tags=[RunTag("mlops_ray.best_trial_id", best.trial_id),
                           RunTag("mlops_ray.best_child_run_id", best.run_id or ""),
                           RunTag("mlops_ray.metric", result.metric), RunTag("mlops_ray.mode", result.mode),
                           RunTag("mlops_ray.refit_on", result.refit_on)])
    client.set_terminated(rid, "FINISHED")
