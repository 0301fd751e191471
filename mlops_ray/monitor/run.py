"""The monitor's edge: find the logs, the reference and the baseline, scan with Ray Data, report to MLflow.

``run_monitor(cfg, runtime, name, version=None)`` reads ``<runtime.monitor_dir>/<name>/v<version>/*.parquet``
with ``ray.data.read_parquet``; each block is summarised by ``aggregate.block_summary`` (counts in the
reference bins + rows joined to feedback labels) and only those summaries reach the driver.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import pyarrow.parquet as pq

from mlops_ray.config import MonitorSpec
from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.aggregate import (
    BlockSummary,
    block_summary,
    check_columns,
    feedback_map,
    merge_summaries,
    metric_over_time,
    overall_metric,
)
from mlops_ray.monitor.decision import REGRESSION_METRICS, Performance, assess_performance, decide_retrain
from mlops_ray.monitor.drift import compute_drift
from mlops_ray.monitor.feedback import log_columns, log_files, read_feedback
from mlops_ray.monitor.lookups import (
    REFERENCE_FILE,
    TAG,
    client,
    holdout_baseline,
    is_registered,
    logged_versions,
    model_version,
    predictions_dir,
    require_logs,
    resolve_reference,
)
from mlops_ray.monitor.profile import ReferenceProfile, load_profile
from mlops_ray.monitor.result import MonitorReport
from mlops_ray.monitor.window import empty_window, files_since

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig
    from mlops_ray.runtime import Runtime

REPORTS = "_reports"  # model names cannot start with "_", so this never clashes with a model's log folder


# ------------------------------------------------------------------------------------- scanning


def check_log_schema(files: list[Path], expected: list[str], reference: str | None = None) -> None:
    """Every log file must carry exactly the monitored model's features; else say which files and columns.

    ``reference``: the profile file the user passed (``--reference``), blamed when no log file matches it."""
    problems = []
    for f in files:
        cols = log_columns(f)
        version = f.parent.name[1:] if f.parent.name.startswith("v") else ""
        p = check_columns(str(f), cols, expected, [version] if version else [])
        if p is not None:
            problems.append(p)
    if problems and reference is not None and len(problems) == len(files):
        raise MonitorError(
            f"the reference profile {reference} has columns {expected}, but none of the {len(files)} prediction-log "
            f"files does ({problems[0].describe()}): it profiles another model's data. Pass the reference.json of "
            "the data this version was trained on, or leave --reference out (the version's own is used)")
    if problems:
        versions = sorted({v for p in problems for v in p.versions})
        shown = "\n  ".join(p.describe() for p in problems[:5])
        more = f"\n  ... and {len(problems) - 5} more files" if len(problems) > 5 else ""
        raise MonitorError(
            f"{len(problems)} of {len(files)} prediction-log files do not match the monitored model's features "
            f"{expected}:\n  {shown}{more}\nThey were written by model version(s) {', '.join(versions) or '?'} with "
            "another schema. Monitor that version on its own (--version), or move those files out of the log folder."
        )


def _summarise(batch: pd.DataFrame, profile: dict[str, Any], feedback: dict[str, tuple[str, float]],
               since: pd.Timestamp | None = None) -> dict[str, list[bytes]]:
    summary = block_summary(batch, load_profile(profile), feedback, since)
    return {"summary": [pickle.dumps(summary)]}


LOCAL_SCAN_BYTES = 32 * 2**20  # below this, Ray Data's task start-up costs more than the whole scan


def scan_engine(files: list[Path], engine: str = "auto") -> str:
    """"ray" or "local": ``auto`` scans small logs in this process and large ones with Ray Data."""
    if engine not in ("auto", "ray", "local"):
        raise MonitorError(f"engine must be auto, ray or local, got {engine!r}")
    if engine != "auto":
        return engine
    return "local" if sum(f.stat().st_size for f in files) < LOCAL_SCAN_BYTES else "ray"


def scan_logs(files: list[Path], profile: ReferenceProfile, feedback: dict[str, tuple[str, float]],
              engine: str = "ray", since: datetime | None = None) -> BlockSummary:
    """Counts and labelled rows of all ``files``: per block with Ray Data (``ray``), merged on the driver;
    ``local`` runs the same per-file summaries in this process. ``since``: only rows logged at or after it."""
    cut = pd.Timestamp(since) if since is not None else None
    # Only what the summaries need: ids only when there are labels to join (strings are the costly part).
    ids = ["request_id", "row", "model_version"] if feedback else []
    wanted = [*ids, "timestamp", "prediction", *profile.column_names]
    present = set(pq.read_schema(files[0]).names)
    columns = [c for c in wanted if c in present]
    if engine == "local":
        return merge_summaries((block_summary(pd.read_parquet(f, columns=columns), profile, feedback, cut)
                                for f in files), profile)
    import ray.data

    ds = ray.data.read_parquet([str(f) for f in files], columns=columns)
    rows = ds.map_batches(_summarise, batch_format="pandas", batch_size=None,
                          fn_kwargs={"profile": profile.to_dict(), "feedback": feedback, "since": cut}).take_all()
    return merge_summaries((pickle.loads(r["summary"]) for r in rows), profile)


def _task(cfg: PipelineConfig | None, files: list[Path], profile: ReferenceProfile) -> str:
    if any(c.startswith("proba_") for c in pq.read_schema(files[-1]).names):
        return "classification"
    if cfg is not None and cfg.data.task != "auto":
        return cfg.data.task
    if profile.target is not None:
        return "classification" if profile.target.kind == "categorical" else "regression"
    return "regression"


def _files_in_window(files: list[Path], since: datetime, name: str, version: str) -> list[Path]:
    kept = files_since(files, since)
    if not kept:
        newest = datetime.fromtimestamp(max(f.stat().st_mtime for f in files), UTC)
        raise empty_window(f"{name} v{version}", since,
                           f" (the newest log file is from {newest.isoformat(timespec='seconds')})")
    return kept


# ------------------------------------------------------------------------------------------ main


def run_monitor(
    cfg: PipelineConfig | None,
    runtime: Runtime,
    name: str | None = None,
    version: str | int | None = None,
    *,
    reference: ReferenceProfile | Mapping[str, Any] | str | Path | None = None,
    log_dir: str | Path | None = None,
    all_versions: bool = False,
    engine: str = "auto",
    write_report: bool = True,
    log_to_mlflow: bool = True,
    since: datetime | None = None,
) -> MonitorReport:
    """Drift, live performance and the retrain decision for one model version's prediction log.

    ``version`` None: the registry's champion, else the newest version with logs. ``all_versions``
    scans the logs of every version (more traffic for the input-drift tests; all must share a schema).
    ``engine``: ``ray`` (Ray Data; Ray must be connected), ``local`` (this process), or ``auto`` (local
    below 32 MiB of log files, Ray Data above). ``since`` (aware datetime): judge only the rows logged at or
    after it (``window.parse_since`` reads ``24h`` or an ISO time), e.g. the traffic since the last retrain.
    """
    if name is None:
        if cfg is None:
            raise MonitorError("run_monitor needs a model name or a config (whose model_name is used)")
        name = cfg.model_name
    spec = cfg.monitor if cfg is not None else MonitorSpec()
    root = Path(log_dir) if log_dir is not None else predictions_dir(runtime)
    folder = root / name
    require_logs(runtime, name, folder, spec.flush_interval_s)
    mv = model_version(runtime, name, None if version is None else str(version))
    notes: list[str] = []
    if version is None:
        version = str(mv.version) if mv is not None else logged_versions(folder)[-1]
        if mv is None:
            notes.append(f"no champion alias in the registry: monitoring the newest logged version v{version}")
    version = str(version)
    files = log_files(folder, None if all_versions else version)
    if not files:
        logged = ", ".join(logged_versions(folder))
        if mv is None and is_registered(runtime, name):  # a version number that was never registered
            raise MonitorError(f"model {name!r} has no version {version} in the registry; versions with logs: "
                               f"{logged}. Pass one of those to --version")
        raise MonitorError(
            f"prediction log of {name} v{version} is empty ({folder / ('v' + version)} has no files); "
            f"versions with logs: {logged}. Pass --version, or wait for traffic"
        )
    if since is not None:
        files = _files_in_window(files, since, name, version)
        notes.append(f"window: rows logged since {since.isoformat(timespec='seconds')}")
    if all_versions:
        notes.insert(0, f"logs of every version scanned ({', '.join('v' + v for v in logged_versions(folder))}); "
                        f"the reference and the holdout baseline are v{version}'s")
    profile, source = resolve_reference(runtime, name, version, mv, reference)
    notes.append(f"reference profile: {source}")
    given = None if reference is None else str(reference) if isinstance(reference, str | Path) else "passed in"
    check_log_schema(files, profile.column_names, given)
    task = _task(cfg, files, profile)
    if profile.prediction is None and profile.target is not None and task == "classification":
        # Without a profile of the model's own predictions, compare them with the training labels.
        profile.prediction = profile.target
        notes.append("prediction drift measured against the training label distribution")
    elif profile.prediction is None:
        notes.append("prediction drift not checked: the reference has no prediction profile")
    feedback = read_feedback(folder)
    used = scan_engine(files, engine)
    if used == "ray":
        from mlops_ray.runtime import connect_ray

        connect_ray(runtime)  # a no-op when connected
    total = scan_logs(files, profile, feedback_map(feedback) if len(feedback) else {}, used, since)
    if since is not None and total.counts.n_rows == 0:
        raise empty_window(f"{name} v{version}", since)
    notes.append(f"scanned {len(files)} files with {'Ray Data' if used == 'ray' else 'one local process'}")
    drift = compute_drift(profile, total.counts, spec.drift)
    metric = "accuracy" if task == "classification" else (
        cfg.tune.metric if cfg is not None and cfg.tune.metric in REGRESSION_METRICS else "r2")
    labelled = total.labelled
    if all_versions and len(labelled):
        # Drift pools every version's inputs; accuracy is the judged version's own, against its own holdout.
        mine = labelled[labelled["model_version"].astype(str) == version]
        notes.append(f"live {metric} from v{version}'s {len(mine)} labelled rows (of {len(labelled)} in all versions)")
        labelled = mine
    if len(labelled):
        metric, live = overall_metric(labelled, task, metric)
        baseline = holdout_baseline(mv if mv is not None and str(mv.version) == version
                                    else model_version(runtime, name, version), runtime, metric)
        perf = assess_performance(metric, live, baseline, spec.retrain.max_accuracy_drop)
    else:
        in_window = f" logged since {since.isoformat(timespec='seconds')}" if since is not None else ""
        why = ("no feedback labels received yet (POST /v1/models/{name}/feedback)" if feedback.empty
               else f"{len(feedback)} feedback labels received, none matches a request of v{version}{in_window} yet")
        perf = Performance(metric, "unknown", note=why.replace("{name}", name))
    decision = decide_retrain(drift, perf, spec.retrain)
    report = MonitorReport(
        model_name=name, version=version, generated_at=datetime.now(UTC).isoformat(timespec="seconds"),
        n_rows=total.counts.n_rows, n_files=len(files), n_feedback=len(feedback), n_labelled=len(labelled),
        time_range=(total.t_min, total.t_max), drift=drift, performance=perf, decision=decision,
        metric_over_time=metric_over_time(labelled, task, metric), notes=notes,
    )
    if write_report:
        from mlops_ray.monitor.report import write_report as _write

        # Microseconds: two runs in one second (a schedule and a manual run) must not share a folder.
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%f")
        out = runtime.monitor_dir / REPORTS / name / f"v{version}" / stamp
        paths = _write(report, out)
        report.report_dir, report.html_path = str(out), str(paths["html"])
        if log_to_mlflow:
            experiment = cfg.experiment_name if cfg is not None else name
            report.mlflow_run_id = log_report(runtime, experiment, report, out)
    return report


def _safe(name: str) -> str:
    return re.sub(r"[^\w\-./ ]", "_", name)[:200]


def log_report(runtime: Runtime, experiment: str, report: MonitorReport, out_dir: Path) -> str:
    """One MLflow run (tagged ``mlops_ray.stage=monitor``) with the numbers, the decision and the report files."""
    from mlops_ray.runtime import ensure_experiment

    exp_id = ensure_experiment(runtime, experiment)
    cl = client(runtime)
    d, p = report.drift, report.performance
    run = cl.create_run(exp_id, run_name=f"monitor-{report.model_name}-v{report.version}", tags={
        TAG + "stage": "monitor", TAG + "model_name": report.model_name, TAG + "model_version": report.version,
        TAG + "decision": "retrain" if report.retrain else "none",
        TAG + "reasons": "; ".join(report.decision.reasons)[:4900] or "-",
    })
    rid = run.info.run_id
    metrics = {"rows": report.n_rows, "labelled_rows": report.n_labelled, "drift_detected": float(d.drift_detected),
               "material_fraction": d.material_fraction, "retrain": float(report.retrain)}
    for f in d.features:
        metrics[_safe(f"psi.{f.name}")] = f.psi
        metrics[_safe(f"p_adjusted.{f.name}")] = f.p_adjusted
    if d.prediction is not None:
        metrics["psi.prediction"] = d.prediction.psi
    if p.live is not None and p.live.n:
        metrics.update({f"live_{p.metric}": p.live.estimate, f"live_{p.metric}_low": p.live.low,
                        f"live_{p.metric}_high": p.live.high})
    from mlflow.entities import Metric, Param

    now = int(datetime.now(UTC).timestamp() * 1000)
    params = {"alpha": d.alpha, "correction": d.correction, "psi_threshold": d.psi_threshold, "files": report.n_files}
    cl.log_batch(rid, metrics=[Metric(k, float(v), now, 0) for k, v in metrics.items() if v == v],
                 params=[Param(k, str(v)) for k, v in params.items()])
    cl.log_artifacts(rid, str(out_dir), "monitor")
    cl.set_terminated(rid)
    return rid


def with_prediction_profile(reference: ReferenceProfile | Mapping[str, Any], model: Any,
                            frame: pd.DataFrame) -> ReferenceProfile:
    """The reference plus a profile of ``model``'s predictions on ``frame`` (e.g. the holdout rows)."""
    from mlops_ray.monitor.profile import categorical_profile, numeric_profile

    profile = load_profile(dict(reference) if isinstance(reference, Mapping) else reference)
    preds = model.predict(frame)
    if getattr(model, "task", "classification") == "classification":
        from mlops_ray.monitor.logger import label_str

        profile.prediction = categorical_profile("prediction", pd.Series([label_str(p) for p in preds]))
    else:
        profile.prediction = numeric_profile("prediction", preds)
    return profile


def log_reference(runtime: Runtime, run_id: str, reference: ReferenceProfile | Mapping[str, Any], *,
                  model: Any | None = None, frame: pd.DataFrame | None = None) -> str:
    """Log ``reference.json`` into a model's run (where ``run_monitor`` finds it); with ``model`` and
    ``frame`` it includes the profile of the model's predictions, for the prediction-drift check."""
    profile = (with_prediction_profile(reference, model, frame) if model is not None and frame is not None
               else load_profile(reference))
    client(runtime).log_dict(run_id, profile.to_dict(), f"monitor/{REFERENCE_FILE}")
    return f"runs:/{run_id}/monitor/{REFERENCE_FILE}"
