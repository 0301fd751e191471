"""The retrain trigger: original data + labelled logged rows -> the same pipeline (data, tune, gate, canary).

``retrain(cfg, runtime)`` asks ``run_monitor`` for a decision (unless ``force``), then writes the new
training table to ``<monitor_dir>/_retrain/<model>/<UTC stamp>/train.parquet``: the configured source
(bundled sets exported first), ``monitor.retrain.new_data`` if set, and every logged row that has a
feedback label, with the label in the target column. The pipeline then runs on a copy of the config
whose ``data.source.path`` points there: the new version meets the same promotion gate and, when the
config deploys, the same canary rollout as any model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_ray.exceptions import MonitorError
from mlops_ray.monitor.aggregate import feature_columns
from mlops_ray.monitor.feedback import log_columns, log_files, read_feedback, read_log
from mlops_ray.monitor.logger import feedback_key

if TYPE_CHECKING:
    from mlops_ray.config import PipelineConfig
    from mlops_ray.monitor.result import MonitorReport
    from mlops_ray.runtime import Runtime


@dataclass
class RetrainData:
    """The combined training table and where its rows came from."""

    path: Path
    rows_original: int
    rows_new_data: int
    rows_feedback: int
    skipped_files: list[str] = field(default_factory=list)


@dataclass
class RetrainResult:
    """Whether a retrain ran, why, on what data, and what the pipeline made of it."""

    retrained: bool
    reasons: list[str]
    data: RetrainData | None = None
    config: PipelineConfig | None = None
    pipeline: Any = None  # mlops_ray.pipeline.PipelineResult
    monitor: MonitorReport | None = None

    def summary(self) -> str:
        if not self.retrained:
            return "no retrain: " + ("; ".join(self.reasons) or "the monitor found no reason")
        d = self.data
        lines = ["retrained because: " + "; ".join(self.reasons)]
        if d is not None:
            lines.append(f"  data: {d.path} ({d.rows_original} original + {d.rows_new_data} new + "
                         f"{d.rows_feedback} labelled logged rows)")
        reg = getattr(self.pipeline, "registration", None)
        if reg is not None:
            lines.append(f"  registered {reg.name} v{reg.version}: gate {'accepted' if reg.accepted else 'rejected'}")
        dep = getattr(self.pipeline, "deployment", None)
        if dep is not None:
            traffic = ", ".join(f"v{v}: {p:g}%" for v, p in dep.status.get("traffic", {}).items())
            lines.append(f"  serving {dep.model} at {dep.url}: {dep.decision.get('reason', '')} ({traffic})")
        return "\n".join(lines)


def _read_source(cfg: PipelineConfig) -> pd.DataFrame:
    src = cfg.data.source
    if src.bundled is not None:
        from mlops_ray.data import load_bundled

        return load_bundled(src.bundled)
    return _read_path(cfg.resolve_path(src.path or ""), src.format)


def _read_path(path: str, fmt: str = "auto") -> pd.DataFrame:
    from mlops_ray.data.sources import resolve_files

    files, kind = resolve_files(path, fmt)  # type: ignore[arg-type]
    read = pd.read_parquet if kind == "parquet" else pd.read_csv
    return pd.concat([read(f) for f in files], ignore_index=True)


def labelled_log_rows(model_folder: Path, columns: list[str], target: str) -> tuple[pd.DataFrame, list[str]]:
    """Logged rows (any version) that have a feedback label, as ``columns`` + ``target``; files whose
    features lack one of ``columns`` are skipped and returned by name."""
    feedback = read_feedback(model_folder)
    if feedback.empty:
        return pd.DataFrame(columns=[*columns, target]), []
    labels = dict(zip(feedback["request_id"].astype(str), feedback["label"].astype(str), strict=True))
    parts, skipped = [], []
    for f in log_files(model_folder):
        df = read_log(f)
        if not set(columns) <= set(feature_columns(df.columns)):
            skipped.append(str(f))
            continue
        rows = df["row"] if "row" in df.columns else pd.Series(0, index=df.index)
        keys = [feedback_key(str(r), int(k)) for r, k in zip(df["request_id"], rows, strict=True)]
        df["_key"] = keys
        df = df[df["_key"].isin(labels)]
        if len(df):
            out = df[columns].copy()
            out[target] = [labels[k] for k in df["_key"]]
            out["_key"] = df["_key"].to_numpy()
            parts.append(out)
    if not parts:
        return pd.DataFrame(columns=[*columns, target]), skipped
    rows = pd.concat(parts, ignore_index=True).drop_duplicates("_key", keep="last").drop(columns="_key")
    return rows.reset_index(drop=True), skipped


def _align(rows: pd.DataFrame, like: pd.DataFrame) -> pd.DataFrame:
    """Give ``rows`` the dtypes of ``like`` (numbers stay numbers, labels parse back to the target's type)."""
    out = pd.DataFrame(index=rows.index)
    for c in like.columns:
        if c not in rows.columns:
            out[c] = pd.Series([None] * len(rows), index=rows.index, dtype=like[c].dtype if len(like) else "object")
        elif pd.api.types.is_bool_dtype(like[c]):
            out[c] = rows[c].map({"True": True, "False": False, True: True, False: False})
        elif pd.api.types.is_numeric_dtype(like[c]):
            out[c] = pd.to_numeric(rows[c], errors="coerce")
            if pd.api.types.is_integer_dtype(like[c]) and out[c].notna().all():
                out[c] = out[c].astype(like[c].dtype)
        else:
            out[c] = rows[c].astype("object")
    return out


def build_retrain_data(cfg: PipelineConfig, runtime: Runtime, name: str | None = None, *,
                       log_dir: str | Path | None = None) -> RetrainData:
    """Write the combined training table (original + new data + labelled logged rows) as Parquet."""
    from mlops_ray.monitor.run import predictions_dir

    name = name or cfg.model_name
    target = cfg.data.target
    original = _read_source(cfg)
    if target not in original.columns:
        raise MonitorError(f"the training data has no target column {target!r} (columns {list(original.columns)})")
    new = pd.DataFrame()
    if cfg.monitor.retrain.new_data:
        new = _read_path(cfg.resolve_path(cfg.monitor.retrain.new_data))
        if target not in new.columns:
            raise MonitorError(f"monitor.retrain.new_data {cfg.monitor.retrain.new_data!r} has no target column "
                               f"{target!r}; it must be labelled data with the training columns")
    features = [c for c in original.columns if c != target]
    lacking = [c for c in features if len(new) and c not in new.columns]
    if lacking:  # aligned, they would be missing values the cleaning fills: made-up training rows
        raise MonitorError(f"monitor.retrain.new_data {cfg.monitor.retrain.new_data!r} lacks training column(s) "
                           f"{lacking[:10]}; it must have every column of the training data")
    folder = Path(log_dir or predictions_dir(runtime)) / name
    logged_features = _logged_features(folder)
    # The training features that were logged; a file lacking one of them is skipped (another schema).
    columns = [c for c in features if c in logged_features]
    labelled, skipped = (labelled_log_rows(folder, columns, target) if columns else (pd.DataFrame(), []))
    parts = [original]
    if len(new):
        parts.append(_align(new, original))
    if len(labelled):
        parts.append(_align(labelled, original))
    combined = pd.concat(parts, ignore_index=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    out = runtime.monitor_dir / "_retrain" / name / stamp
    out.mkdir(parents=True, exist_ok=True)
    path = out / "train.parquet"
    combined.to_parquet(path, index=False)
    data = RetrainData(path, len(original), len(new), len(labelled), skipped)
    (out / "manifest.json").write_text(json.dumps({
        "source": cfg.data.source.model_dump(exclude_none=True), "new_data": cfg.monitor.retrain.new_data,
        "rows_original": data.rows_original, "rows_new_data": data.rows_new_data,
        "rows_feedback": data.rows_feedback, "skipped_log_files": skipped, "target": target,
    }, indent=1))
    return data


def _logged_features(folder: Path) -> set[str]:
    out: set[str] = set()
    for f in log_files(folder):
        out |= set(feature_columns(log_columns(f)))
    return out


def retrain_config(cfg: PipelineConfig, data_path: Path) -> PipelineConfig:
    """A copy of ``cfg`` whose data source is the combined table (everything else unchanged)."""
    from mlops_ray.config import SourceSpec

    source = SourceSpec(path=str(data_path.resolve()), format="parquet")
    new = cfg.model_copy(update={"data": cfg.data.model_copy(update={"source": source})})
    new.source_file = cfg.source_file
    return new


def retrain(
    cfg: PipelineConfig,
    runtime: Runtime,
    name: str | None = None,
    *,
    version: str | int | None = None,
    force: bool = False,
    report: MonitorReport | None = None,
    steps: list[str] | None = None,
    use_cache: bool = True,
    log_dir: str | Path | None = None,
    since: datetime | None = None,
) -> RetrainResult:
    """Retrain when the monitor says so (or ``force``): combined data through the whole pipeline.

    ``since``: the monitor judges only the rows logged since then; the retrain uses every labelled row."""
    from mlops_ray.pipeline import connect_for_steps

    name = name or cfg.model_name
    if report is None and not force:  # nothing to decide on: say so before a Ray (or a serving head) starts
        from mlops_ray.monitor.run import predictions_dir, require_logs

        root = Path(log_dir) if log_dir is not None else predictions_dir(runtime)
        require_logs(runtime, name, root / name, cfg.monitor.flush_interval_s)
        if since is not None:
            from mlops_ray.monitor.feedback import log_files
            from mlops_ray.monitor.window import empty_window, files_since

            if not files_since(log_files(root / name), since):  # before Ray or a serving head starts
                raise empty_window(name, since)
    # With a deploy step: the head that serves the model (a local Ray would exit with us, and its Serve
    # could not bind the port the serving head holds). Whether it has a CPU to train with matters only once
    # the monitor says to retrain: "no retrain" must not fail because two versions are serving.
    on_serving_head = connect_for_steps(runtime, steps or cfg.steps, check_cpu=False)
    if report is None and not force:
        from mlops_ray.monitor.run import run_monitor

        report = run_monitor(cfg, runtime, name, version, log_dir=log_dir, since=since)
    if not force:
        assert report is not None
        if not report.decision.retrain:
            return RetrainResult(False, [*report.decision.notes] or ["no rule fired"], monitor=report)
        reasons = list(report.decision.reasons)
    else:
        reasons = ["forced (--force)"]
    if on_serving_head:
        from mlops_ray.serve.controller import require_free_cpu

        require_free_cpu()
    data = build_retrain_data(cfg, runtime, name, log_dir=log_dir)
    new_cfg = retrain_config(cfg, data.path)
    from mlops_ray.pipeline import run_pipeline

    result = run_pipeline(new_cfg, runtime, steps=steps, use_cache=use_cache)
    attach_reference(runtime, result)
    return RetrainResult(True, reasons, data, new_cfg, result, report)


def attach_reference(runtime: Runtime, result: Any) -> str | None:
    """Log the reference profile (with the new model's prediction profile) into the registered version's run,
    where ``run_monitor`` looks for it. A no-op when the pipeline registered nothing."""
    from mlops_ray.monitor.run import log_reference

    reg, prepared = getattr(result, "registration", None), getattr(result, "prepared", None)
    if reg is None or prepared is None or not getattr(reg, "run_id", None):
        return None
    model = getattr(getattr(result, "search", None), "model", None)
    frame = prepared.holdout_frame if model is not None and len(prepared.holdout_frame) else None
    return log_reference(runtime, reg.run_id, prepared.reference, model=model, frame=frame)
