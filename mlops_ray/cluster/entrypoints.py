"""The job entrypoints behind ``jobs/*.py``: parse ``--config``, resolve the runtime, call the library.

Each runs the same way locally (``python jobs/train.py --config ...``) and on a cluster
(``ray job submit --working-dir . -- python jobs/train.py --config ...``): under the Jobs API the
driver joins the cluster it was submitted to (``address="auto"``). A JSON summary is printed as the
last log line and written to ``<workdir>/jobs/<submission id>.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from collections.abc import Callable, Sequence
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mlops_ray.exceptions import ClusterError, MlopsRayError

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig
    from mlops_ray.runtime import Runtime

SUMMARY_MARKER = "MLOPS_RAY_JOB_RESULT "


def _parser(job: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"jobs/{job}.py", description=description)
    p.add_argument("--config", required=True, help="pipeline spec (YAML), relative to the working directory")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set tune.num_samples=4")
    p.add_argument("--workdir", help="outputs root (default: $MLOPS_RAY_WORKDIR, the config's workdir, ./work)")
    p.add_argument("--address", help="Ray address (default: the cluster this job was submitted to, else local)")
    return p


def load_job(args: argparse.Namespace) -> tuple[PipelineConfig, Runtime]:
    """Config + runtime; under ``ray job submit`` the address defaults to the submitting cluster."""
    from mlops_ray.cli._common import parse_overrides
    from mlops_ray.config import load_config
    from mlops_ray.runtime import env, ray_job_id, resolve_runtime

    cfg = load_config(args.config, parse_overrides(args.overrides))
    address = args.address
    if address is None and ray_job_id() is not None and not env("RAY_ADDRESS"):
        address = "auto"
    rt = resolve_runtime(cfg, workdir=args.workdir, address=address)
    check_workdir_outlives_job(rt)
    return cfg, rt


def check_workdir_outlives_job(rt: Runtime, cwd: Path | None = None) -> None:
    """Refuse a job whose MLflow store would live in Ray's temporary copy of the uploaded directory.

    Under ``ray job submit --working-dir`` the job runs in ``.../runtime_resources/working_dir_files/...``,
    which Ray deletes; a relative workdir there takes the registry with it, and every later job would
    register a "first" model against an empty store.
    """
    store = rt.local_store
    if store is None or _upload_dir(store, cwd) is None:
        return  # a tracking server, or a store outside the upload: the registry outlives the job
    raise ClusterError(
        f"this job's MLflow store would be {store}, inside Ray's temporary copy of the uploaded directory: "
        "the registry would vanish with the job. Pass a lasting working directory (mlops-ray submit --workdir "
        "/shared/path; with ray job submit: --runtime-env-json '{\"env_vars\": {\"MLOPS_RAY_WORKDIR\": "
        "\"/shared/path\"}}') or a tracking server (MLFLOW_TRACKING_URI=http://...)")


def check_output_outlives_job(output: str, rt: Runtime, cwd: Path | None = None) -> None:
    """An output folder inside Ray's temporary upload would be deleted with the job, the job still SUCCEEDED."""
    if "://" in output or _upload_dir(Path(output), cwd) is None:
        return
    raise ClusterError(
        f"--output {output} would be written inside Ray's temporary copy of the uploaded directory, which Ray "
        f"deletes after the job: pass a folder that outlives it, e.g. --output {rt.workdir / 'scored'} (the job's "
        "workdir) or s3://...")


def _upload_dir(path: Path, cwd: Path | None) -> Path | None:
    """The Ray upload this job runs in (``.../runtime_resources/working_dir_files/...``) when ``path`` lies in it."""
    here = (cwd or Path.cwd()).resolve()
    if "working_dir_files" not in here.parts:
        return None
    target = (path if path.is_absolute() else here / path).resolve()
    return here if target.is_relative_to(here) else None


def to_jsonable(obj: Any, depth: int = 0) -> Any:
    """A JSON-friendly view of a result object (dataclasses, numpy, paths); big arrays are summarised."""
    if depth > 6:
        return repr(obj)
    if obj is None or isinstance(obj, bool | int | float | str):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, date):  # datetime and pandas' Timestamp too: ISO text, not a repr
        return None if obj != obj else obj.isoformat()  # NaT is not equal to itself
    if hasattr(obj, "to_dict") and callable(obj.to_dict) and not hasattr(obj, "columns"):
        try:
            return to_jsonable(obj.to_dict(), depth + 1)
        except TypeError:
            pass
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name), depth + 1) for f in dataclasses.fields(obj)
                if not f.name.startswith("_")}
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v, depth + 1) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set):
        return [to_jsonable(v, depth + 1) for v in obj]
    if hasattr(obj, "shape") and not isinstance(obj, type):  # numpy / pandas: shape only
        if getattr(obj, "ndim", 1) == 0 or getattr(obj, "shape", ()) == ():
            return obj.item() if hasattr(obj, "item") else repr(obj)
        return f"<{type(obj).__name__} shape={tuple(obj.shape)}>"
    return repr(obj)


def pipeline_summary(result: Any) -> dict[str, Any]:
    """The parts of a PipelineResult worth printing: steps, timings, winner, registration, deployment."""
    out: dict[str, Any] = {"config_hash": getattr(result, "config_hash", None),
                           "steps": getattr(result, "steps", None),
                           "seconds": to_jsonable(getattr(result, "seconds", {}))}
    search = getattr(result, "search", None)
    if search is not None:
        out["search"] = {k: to_jsonable(getattr(search, k, None)) for k in (
            "metric", "mode", "best_config", "cv_mean", "cv_std", "holdout_metrics", "parent_run_id", "trials",
            "refit_on")}
    for key in ("registration", "deployment"):
        value = getattr(result, key, None)
        if value is not None:
            out[key] = to_jsonable(value)
    if getattr(result, "cached", None):
        out["cached"] = sorted(result.cached)
    return out


def submission_id() -> str | None:
    """The Jobs API submission id of this driver (Ray passes it in the job config's metadata), if any."""
    from mlops_ray.runtime import env, ray_job_id

    raw = env("RAY_JOB_CONFIG_JSON_ENV_VAR")
    if raw:
        try:
            sid = (json.loads(raw).get("metadata") or {}).get("job_submission_id")
        except (ValueError, AttributeError):
            sid = None
        if sid:
            return str(sid)
    return ray_job_id()


def _emit(runtime: Runtime, job: str, summary: dict[str, Any]) -> None:
    sid = submission_id()
    summary = {"job": job, "submission_id": sid, **summary}
    text = json.dumps(summary, default=str)
    out_dir = runtime.workdir / "jobs"
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{sid or job + '-local'}.json").write_text(json.dumps(summary, indent=2, default=str))
    print(SUMMARY_MARKER + text, flush=True)


# ----------------------------------------------------------------------------------------- jobs


def _connect(rt: Runtime) -> None:
    """Join the cluster the job was submitted to (RAY_ADDRESS) and point MLflow at the job's store."""
    from mlops_ray.runtime import configure_mlflow, connect_ray

    connect_ray(rt)
    configure_mlflow(rt)


def train(argv: Sequence[str] | None = None) -> int:
    p = _parser("train", "Run the pipeline (data -> tune -> register [-> deploy]) on the cluster.")
    p.add_argument("--steps", help="comma-separated subset of data,tune,register,deploy (default: the config's)")
    p.add_argument("--no-cache", action="store_true", help="rerun tune+register even if an identical run exists")
    p.add_argument("--canary", type=float, metavar="PCT", help="first canary traffic share when deploying")
    p.add_argument("--resume", action="store_true",
                   help="continue a search that was stopped (job stopped, driver or head lost) without rerunning "
                        "finished trials; needs the same config, data and working directory storage")
    args = p.parse_args(argv)
    cfg, rt = load_job(args)
    from mlops_ray.cli._common import parse_steps
    from mlops_ray.pipeline import run_pipeline
    from mlops_ray.runtime import connect_ray, ensure_experiment

    steps = parse_steps(args.steps)  # an empty --steps is an error, not "every step, deploy included"
    connect_ray(rt)
    rt.ensure_dirs()
    # A first run on a fresh working directory: create the MLflow store before the cache lookup reads it.
    ensure_experiment(rt, cfg.experiment_name)
    result = run_pipeline(cfg, rt, steps=steps, use_cache=not args.no_cache, canary_pct=args.canary,
                          resume=args.resume)
    _emit(rt, "train", pipeline_summary(result))
    return 0


def deploy(argv: Sequence[str] | None = None) -> int:
    p = _parser("deploy", "Deploy a registered model version with Ray Serve (as a canary when one serves).")
    p.add_argument("--version", help="model version (default: the @champion alias)")
    p.add_argument("--canary", type=float, metavar="PCT", help="first canary traffic share")
    args = p.parse_args(argv)
    cfg, rt = load_job(args)
    from mlops_ray import serve
    _connect(rt)
    result = serve.deploy(cfg, rt, version=args.version, canary_pct=args.canary)
    _emit(rt, "deploy", {"deployment": to_jsonable(result)})
    return 0


def retrain(argv: Sequence[str] | None = None) -> int:
    p = _parser("retrain", "Retrain when the monitor says so (or always with --force), then gate and roll out.")
    p.add_argument("--force", action="store_true", help="retrain even if the trigger did not fire")
    p.add_argument("--since", help="the monitor judges only the rows logged since then (24h, 7d, an ISO time)")
    args = p.parse_args(argv)
    cfg, rt = load_job(args)
    from mlops_ray import monitor
    from mlops_ray.monitor.window import parse_since
    _connect(rt)
    since = parse_since(args.since) if args.since is not None else None
    result = monitor.retrain(cfg, rt, force=args.force, since=since)
    _emit(rt, "retrain", {"retrain": to_jsonable(result)})
    return 0


def monitor_job(argv: Sequence[str] | None = None) -> int:
    p = _parser("monitor", "Join predictions with feedback, test drift, write the report, decide on retraining.")
    p.add_argument("--version", help="model version whose predictions to analyse (default: the champion)")
    p.add_argument("--since", help="only the rows logged since then (24h, 7d, an ISO time)")
    args = p.parse_args(argv)
    cfg, rt = load_job(args)
    from mlops_ray import monitor
    from mlops_ray.monitor.window import parse_since
    _connect(rt)
    result = monitor.run_monitor(cfg, rt, version=args.version,
                                 since=parse_since(args.since) if args.since is not None else None)
    _emit(rt, "monitor", {"monitor": to_jsonable(result)})
    return 0


def batch_predict(argv: Sequence[str] | None = None) -> int:
    p = _parser("batch_predict", "Score a Parquet folder with the registered model (Ray Data, actor pool).")
    p.add_argument("--input", required=True,
                   help="Parquet file or folder to score (relative to the working directory, or s3://, gs://)")
    p.add_argument("--output", required=True, help="output folder for the scored Parquet files")
    p.add_argument("--model-uri", help="default: models:/<model name>@champion")
    p.add_argument("--id-column", help="input column copied to the output to join predictions back")
    p.add_argument("--passthrough", action="append", default=[], metavar="COLUMN",
                   help="another input column to copy to the output (repeatable)")
    p.add_argument("--concurrency", type=int, help="number of scoring actors (default: from cluster CPUs/GPUs)")
    p.add_argument("--batch-size", type=int, default=65_536)
    p.add_argument("--num-cpus", type=float, default=1.0, help="CPUs per scoring actor")
    p.add_argument("--num-gpus", type=float, default=0.0, help="GPUs per scoring actor (fractions allowed)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty output folder")
    args = p.parse_args(argv)
    cfg, rt = load_job(args)
    check_output_outlives_job(args.output, rt)
    from mlops_ray.cluster.batch import batch_predict as run
    _connect(rt)
    result = run(
        args.input, args.output, model_uri=args.model_uri or f"models:/{cfg.model_name}@champion", runtime=rt,
        id_column=args.id_column, passthrough=args.passthrough, concurrency=args.concurrency,
        batch_size=args.batch_size, num_cpus=args.num_cpus, num_gpus=args.num_gpus, overwrite=args.overwrite,
    )
    _emit(rt, "batch_predict", {"batch_predict": result.to_dict()})
    return 0


JOB_MAINS: dict[str, Callable[[Sequence[str] | None], int]] = {
    "train": train, "deploy": deploy, "retrain": retrain, "monitor": monitor_job, "batch_predict": batch_predict,
}


def main(job: str, argv: Sequence[str] | None = None) -> int:
    """Run one job; a package error prints its message and exits 1 (the job shows FAILED with it)."""
    try:
        return JOB_MAINS[job](argv)
    except MlopsRayError as e:
        print(f"error: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        return 1
