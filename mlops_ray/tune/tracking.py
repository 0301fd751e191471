"""MLflow tracking of a search: a parent run, a child run per trial, written from the driver only.

A Tune ``Callback`` sees every trial event in the driver, so one process writes to the tracking store
(no concurrent writers, and workers need no MLflow access). Metric writes are asynchronous (MLflow's
own queue) so that the store's latency does not slow the Tune loop; runs are created synchronously.
The map trial id -> child run id is saved beside the Tune experiment, so a resumed search keeps
writing to the same parent and child runs.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunStatus, RunTag
from ray.tune import Callback

PARENT_TAG = "mlflow.parentRunId"
_SKIP_KEYS = {"trial_error", "trial_traceback", "pid", "final", "fold_done", "n_folds"}


def trial_index(trial_id: str) -> int:
    """Tune trial ids end in a running number (``abc12_00007``)."""
    try:
        return int(trial_id.rsplit("_", 1)[-1])
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
        self._pending: list[Any] = []

    # Tune pickles its RunConfig (callbacks included) with the experiment, and Tuner.restore brings this
    # object back: keep only what rebuilds the client, and re-read the state file.
    def __getstate__(self) -> dict[str, Any]:
        return {"tracking_uri": self.tracking_uri, "experiment_id": self.experiment_id,
                "state_path": str(self.state.path), "metric_key": self.metric_key, "prefix": self.prefix}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.__init__(d["tracking_uri"], d["experiment_id"], TrackingState(Path(d["state_path"])),  # type: ignore[misc]
                      d["metric_key"], d["prefix"])

    # -------------------------------------------------------------------------------------- helpers

    def _run_id(self, trial: Any) -> str:
        run_id = self.state.runs.get(trial.trial_id)
        if run_id is None:
            idx = trial_index(trial.trial_id)
            run = self.client.create_run(
                self.experiment_id, run_name=f"{self.prefix}-trial-{idx:03d}",
                tags={PARENT_TAG: self.state.parent_run_id or "", "mlops_ray.trial_id": trial.trial_id,
                      "mlops_ray.trial_index": str(idx), "mlops_ray.status": "running"})
            run_id = run.info.run_id
            params = [Param(k, _param_value(v)) for k, v in sorted(trial.config.items())]
            if params:
                self.client.log_batch(run_id, params=params)
            self.state.runs[trial.trial_id] = run_id
            self.state.save()
        return run_id

    def _log(self, run_id: str, metrics: dict[str, float], step: int) -> None:
        ts = int(time.time() * 1000)
        batch = [Metric(k, float(v), ts, step) for k, v in metrics.items()
                 if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)]
        if batch:
            self._pending.append(self.client.log_batch(run_id, metrics=batch, synchronous=False))

    def flush(self) -> None:
        """Wait until every queued metric write reached the store."""
        for op in self._pending:
            op.wait()
        self._pending.clear()

    def _finish(self, trial: Any, status: str, error: str | None = None) -> None:
        run_id = self._run_id(trial)
        self.flush()
        tags = [RunTag("mlops_ray.status", status), RunTag("mlops_ray.num_failures", str(trial.num_failures))]
        if error:
            tags.append(RunTag("mlops_ray.error", error[:5000]))
        self.client.log_batch(run_id, tags=tags)
        self.client.set_terminated(run_id, RunStatus.to_string(RunStatus.FAILED if status == "error"
                                                               else RunStatus.FINISHED))

    # -------------------------------------------------------------------------------------- events

    def on_trial_start(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self._run_id(trial)
        self.client.update_run(run_id, status="RUNNING")

    def on_trial_result(self, iteration: int, trials: list[Any], trial: Any, result: dict[str, Any],
                        **info: Any) -> None:
        run_id = self._run_id(trial)
        if result.get("trial_error"):
            return  # logged as the trial's error when it completes
        if result.get("fold_done", True):
            fold = int(result.get("fold", result.get("folds_done", 1) - 1))
            self._log(run_id, {k: v for k, v in result.items() if k.startswith("fold_") and k not in _SKIP_KEYS},
                      step=fold)
            running = {k: v for k, v in result.items()
                       if k.startswith(("mean_", "std_", self.metric_key)) or k in ("fit_s",)}
            self._log(run_id, running, step=int(result.get("folds_done", fold + 1)))
        else:  # a torch epoch inside a fold
            it = int(result.get("training_iteration", 0))
            self._log(run_id, {k: v for k, v in result.items() if k.startswith("epoch_")}, step=it)
            self._log(run_id, {f"{self.metric_key}_running": result.get(self.metric_key, math.nan)}, step=it)

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        last = trial.last_result or {}
        status = trial_status(last)
        self._finish(trial, status, last.get("trial_error"))

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        run_id = self._run_id(trial)
        self.client.set_tag(run_id, "mlops_ray.retries", str(trial.num_failures))

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        err = trial.get_error() or f"trial {trial.trial_id} failed {trial.num_failures} time(s)"
        msg = str(err).strip().splitlines()[-1][:2000] if str(err).strip() else str(err)
        self._finish(trial, "error", msg)
