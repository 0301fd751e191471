"""The data stage on Ray Data: the one module of this stage that talks to Ray and writes files.

``prepare(cfg, runtime)`` streams the input three times through ``map_batches`` (see blocks.py for
what each pass computes), merges the per-block partials on the driver, writes the outputs under
``runtime.data_dir / cfg.name`` and returns a ``PreparedData``. The caller connects Ray first
(``runtime.connect_ray``).
"""

from __future__ import annotations

import json
import logging
import pickle
import shutil
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from mlops_ray.data import blocks
from mlops_ray.data.clean import make_plan
from mlops_ray.data.csv_reader import MalformedLines, read_csv_dataset
from mlops_ray.data.fitting import (
    build_reference,
    categorical_entry,
    check_feature_spec,
    fit_features,
    numeric_entry,
    reference_edges,
    summary_bin_counts,
)
from mlops_ray.data.hashing import assign_folds
from mlops_ray.data.prepared import DataReport, PreparedData, format_report, report_dict
from mlops_ray.data.schema import REJECT_REASON, Schema, check_columns, schema_from_spec
from mlops_ray.data.sources import Source, check_consistent_kinds, resolve_files, resolve_source
from mlops_ray.exceptions import DataError, SchemaError
from mlops_ray.ray_errors import own_error, quiet_task_errors

if TYPE_CHECKING:
    import ray.data

    from mlops_ray.config import PipelineConfig
    from mlops_ray.runtime import Runtime

logger = logging.getLogger(__name__)

MAX_CLASSES = 50  # an integer target with at most this many distinct values is a classification target
SMALL_INPUT_BYTES = 32 * 2**20
MIN_FILES_TO_FUSE = 2
OUTPUTS = ("train", "holdout", "holdout_raw", "_rejects_parts")


# ------------------------------------------------------------------------------------------- reading


def _read(source: Source, malformed: MalformedLines) -> ray.data.Dataset:
    import ray.data

    if source.format == "bundled":
        assert source.frame is not None
        return ray.data.from_arrow(pa.Table.from_pandas(source.frame, preserve_index=False))
    if source.format == "parquet":
        # One read task per file whenever there are files enough to keep the CPUs busy (or the input is
        # small): the read then fuses with the pass into one task that streams the file's batches, instead
        # of splitting blocks into the object store and reading them back (2M rows: several times faster).
        many = len(source.files) >= MIN_FILES_TO_FUSE or source.total_bytes() < SMALL_INPUT_BYTES
        blocks_hint = len(source.files) if many else None
        # Ray 2.60's default V2 Parquet reader spent 10-40 s per pass on a one-file input on a loaded 2-core
        # machine (file listing and its own worker start-ups); the V1 reader takes well under a second.
        # The switch is read when the Dataset is built, so it is set for this call only.
        ctx = ray.data.DataContext.get_current()
        old = getattr(ctx, "use_datasource_v2", False)
        ctx.use_datasource_v2 = False
        try:
            return ray.data.read_parquet(source.files, file_extensions=None, override_num_blocks=blocks_hint)
        finally:
            ctx.use_datasource_v2 = old
    # Every column is read as text and parsed in validation: a malformed value then rejects one row
    # instead of failing the file's type inference, and a line of the wrong field count is a reject too.
    # One task per file, as Ray Data's read_csv (which never splits a CSV file) does.
    return read_csv_dataset(source.files, source.all_columns(), malformed, source.delimiter)


def _pack(obj: Any) -> pa.Table:
    return pa.table({"partial": pa.array([pickle.dumps(obj, protocol=5)], pa.binary())})


def _collect(ds: ray.data.Dataset, what: str) -> list[Any]:
    try:
        with quiet_task_errors():
            rows = ds.take_all()
    except Exception as e:
        own = own_error(e)  # ours (raised in a task, or here): as raised, without Ray's wrapping
        if own is not None:
            raise own from None
        cause = _root_cause(e)
        detail = str(cause).split("\n")[0]  # Ray Data's retry advice follows on later lines
        raise DataError(f"the data stage failed while {what}: {type(cause).__name__}: {detail}. A corrupt or "
                        "unreadable input file is the usual cause; the full error is in Ray Data's log") from e
    return [pickle.loads(r["partial"]) for r in rows]


def _root_cause(e: BaseException) -> BaseException:
    seen = e
    while True:
        nxt = getattr(seen, "cause", None) or seen.__cause__
        if nxt is None or nxt is seen:
            return seen
        seen = nxt


# ------------------------------------------------------------------------------------------- passes


def _scan(batch: pa.Table, schema: Schema, seed: int, fraction: float) -> pa.Table:
    return _pack(blocks.scan_block(batch, schema, seed, fraction))


def _profile(batch: pa.Table, schema: Schema, plan: Any, seed: int, fraction: float,
             edges: dict[str, np.ndarray], classification: bool) -> pa.Table:
    return _pack(blocks.profile_block(batch, schema, plan, seed, fraction, edges, classification))


def _write(batch: pa.Table, schema: Schema, plan: Any, features: Any, seed: int, fraction: float,
           out_dir: str) -> pa.Table:
    out = blocks.transform_block(batch, schema, plan, features, seed, fraction)
    _write_parts(out_dir, train=out.train, holdout=out.holdout, holdout_raw=out.holdout_raw,
                 _rejects_parts=out.rejects)
    return _pack(out.partial)


def _write_rejects(batch: pa.Table, schema: Schema, seed: int, fraction: float, out_dir: str) -> pa.Table:
    """Only the rejected rows: what a user needs to see when no row was valid."""
    rejects = blocks.validate_and_split(batch, schema, seed, fraction).rejects
    _write_parts(out_dir, _rejects_parts=rejects)
    return _pack(rejects.num_rows)


def _write_parts(out_dir: str, **tables: pa.Table) -> None:
    """One part file per non-empty table, into the folder its keyword names; one part name per input block."""
    name = f"part-{uuid.uuid4().hex}.parquet"
    for folder, table in tables.items():
        if table.num_rows:
            pq.write_table(table, f"{out_dir}/{folder}/{name}")


def _map(ds: ray.data.Dataset, fn: Any, **kwargs: Any) -> ray.data.Dataset:
    return ds.map_batches(fn, batch_format="pyarrow", batch_size=None, zero_copy_batch=True, fn_kwargs=kwargs)


# ------------------------------------------------------------------------------------------- decisions


def decide_task(spec_task: str, schema: Schema, labels: Any) -> str:
    """Classification for text/bool labels or integers with few values; regression otherwise."""
    if spec_task != "auto":
        return spec_task
    kind = schema.target_column.type
    if kind in ("str", "category", "bool"):
        return "classification"
    if kind == "int" and len(labels.counts) <= MAX_CLASSES:
        return "classification"
    return "regression"


def check_task_fits_target(task: str, schema: Schema, labels: Any) -> None:
    """A regression on text labels fails deep in pass 2 with "could not convert string to float": say why here."""
    kind = schema.target_column.type
    if task == "regression" and kind in ("str", "category", "bool"):
        sample = sorted(map(str, labels.counts))[:5]
        raise DataError(f"data.task is regression but target {schema.target!r} is {kind} (values like {sample}); "
                        "regression needs numbers: set data.task: classification (or auto), or pick a numeric "
                        "target")
    if task == "classification" and kind == "float":
        fractional = [v for v in labels.counts if isinstance(v, float) and not float(v).is_integer()]
        if fractional:  # 0.37 as a class label: a continuous target, one "class" per value
            raise DataError(f"data.task is classification but target {schema.target!r} holds fractional numbers "
                            f"({len(labels.counts)} distinct values, e.g. {sorted(fractional)[:3]}): set data.task: "
                            "regression (or auto)")


def _prepare_output(out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in OUTPUTS:
        shutil.rmtree(out_dir / name, ignore_errors=True)
        (out_dir / name).mkdir()
    for name in ("rejects.parquet", "features.json", "reference.json", "report.json"):
        (out_dir / name).unlink(missing_ok=True)


def _merge_rejects(out_dir: Path, input_columns: list[str]) -> Path:
    """One rejects.parquet (every input column as text, plus the reason), streamed part by part."""
    parts_dir = out_dir / "_rejects_parts"
    parts = sorted(parts_dir.glob("*.parquet"))
    columns = list(input_columns)
    for p in parts:
        columns += [n for n in pq.read_schema(p).names if n not in columns and n != REJECT_REASON]
    schema = pa.schema([pa.field(c, pa.string()) for c in columns] + [pa.field(REJECT_REASON, pa.string())])
    path = out_dir / "rejects.parquet"
    with pq.ParquetWriter(path, schema) as writer:
        for p in parts:
            t = pq.read_table(p)
            cols = [t.column(c).cast(pa.string()) if c in t.column_names else pa.nulls(t.num_rows, pa.string())
                    for c in schema.names]
            writer.write_table(pa.Table.from_arrays(cols, schema=schema))
    shutil.rmtree(parts_dir, ignore_errors=True)
    return path


def _read_folder(folder: Path) -> pa.Table | None:
    files = sorted(folder.glob("*.parquet"))
    if not files:
        return None
    return pa.concat_tables([pq.read_table(f) for f in files], promote_options="default")


# ------------------------------------------------------------------------------------------- prepare


def check_input(cfg: PipelineConfig) -> None:
    """Fail at once, before Ray starts, when ``data.source.path`` matches no file of the format."""
    src = cfg.data.source
    if src.path:
        resolve_files(cfg.resolve_path(src.path), src.format)


def prepare(cfg: PipelineConfig, runtime: Runtime, *, materialize: bool = True) -> PreparedData:
    """Read, validate, clean, split, fit features, fingerprint and profile; write the outputs.

    With ``materialize=False`` the training arrays are not loaded (X_* empty): the streaming path
    alone, for tables too large for one process (the outputs on disk are the same). Two runs of one
    pipeline on one working directory take turns: both wrote part files into the same folders and each
    read back the other's rows too (twice the training and holdout rows).
    """
    from mlops_ray.locks import exclusive

    with exclusive(runtime.data_dir / f".{cfg.name}.lock", f"data stage of {cfg.name!r}"):
        return _prepare(cfg, runtime, materialize)


def _prepare(cfg: PipelineConfig, runtime: Runtime, materialize: bool) -> PreparedData:
    t_start = time.perf_counter()
    spec = cfg.data
    timings: dict[str, float] = {}
    src = spec.source
    source = resolve_source(src.bundled, cfg.resolve_path(src.path) if src.path else None, src.format,
                            src.delimiter)
    schema = schema_from_spec(spec, source.unified_schema, source.description)
    if schema.inferred:
        check_consistent_kinds(source)
    check_feature_spec(schema, spec.features)
    ignored: list[str] = []
    for where, arrow_schema in source.schemas.items():
        ignored += [c for c in check_columns(schema, arrow_schema.names, where) if c not in ignored]
    out_dir = runtime.data_dir / cfg.name  # emptied just before pass 3: a run that fails sooner leaves the last outputs
    seed, frac = cfg.seed, spec.split.holdout_fraction
    malformed = spec.schema_.malformed_lines
    timings["inspect"] = time.perf_counter() - t_start

    t = time.perf_counter()
    scan = blocks.merge_scans(_collect(_map(_read(source, malformed), _scan, schema=schema, seed=seed,
                                            fraction=frac), "validating and profiling the input (pass 1 of 3)"))
    timings["scan"] = time.perf_counter() - t
    if scan.rows == 0:
        raise DataError(f"no rows in {source.description}: the input files hold a header at most")
    if scan.train_rows == 0:
        where = ""
        if scan.rejected:  # the run's rejects replace the last run's outputs: they are what to look at now
            _prepare_output(out_dir)
            _collect(_map(_read(source, malformed), _write_rejects, schema=schema, seed=seed, fraction=frac,
                          out_dir=str(out_dir)), "writing the rejected rows")
            where = f"; every rejected row, with its reason, is in {_merge_rejects(out_dir, source.all_columns())}"
            for name in OUTPUTS:  # rejects.parquet alone: no empty train/holdout folders that look like a result
                shutil.rmtree(out_dir / name, ignore_errors=True)
        raise DataError(f"no valid training rows in {source.description}: {scan.rows} read, rejected by reason "
                        f"{scan.rejected}{where}. Fix the input or the schema.")
    task = decide_task(spec.task, schema, scan.labels)
    check_task_fits_target(task, schema, scan.labels)
    classification = task == "classification"
    classes = sorted(scan.labels.counts) if classification else None
    if classification and classes is not None and len(classes) < 2:
        raise DataError(f"target {schema.target!r} has a single class {classes} among the valid rows; "
                        "classification needs at least two")
    plan = make_plan(schema, spec.clean, scan.numeric, scan.categorical)
    edges = {k: reference_edges(st) for k, st in scan.numeric.items()}

    t = time.perf_counter()
    prof = blocks.merge_profiles(_collect(_map(
        _read(source, malformed), _profile, schema=schema, plan=plan, seed=seed, fraction=frac, edges=edges,
        classification=classification), "computing training statistics (pass 2 of 3)"))
    timings["profile"] = time.perf_counter() - t
    if prof.train_rows == 0:
        raise DataError("the cleaning rules dropped every training row; relax data.clean (drop strategies)")
    features = fit_features(schema, plan, prof.cleaned, scan.numeric, prof.categories, spec.features,
                            task, classes)  # type: ignore[arg-type]
    names = features.feature_names_out
    clash = sorted({n for n in names if names.count(n) > 1})
    if clash:  # a column "cat=a" beside category "a" of column "cat": one would overwrite the other
        raise SchemaError(f"feature name(s) {clash} come out twice (a column's name equals a one-hot column "
                          "<column>=<category>); rename the input column")

    _prepare_output(out_dir)
    t = time.perf_counter()
    wrote = blocks.merge_writes(_collect(_map(
        _read(source, malformed), _write, schema=schema, plan=plan, features=features, seed=seed, fraction=frac,
        out_dir=str(out_dir)), "cleaning, transforming and writing (pass 3 of 3)"))
    timings["write"] = time.perf_counter() - t
    if wrote.rows != scan.rows:
        raise DataError(f"the input changed while it was read: {scan.rows} rows in pass 1, {wrote.rows} in pass 3")

    rejects_path = _merge_rejects(out_dir, source.all_columns())
    fingerprint = wrote.fingerprint.hexdigest(_fingerprint_context(schema, cfg))
    report = DataReport(
        rows_read=wrote.rows, rows_clean=wrote.train_rows + wrote.holdout_rows, rows_rejected=wrote.rows_rejected,
        rejected_by_reason=dict(sorted(wrote.rejected.items(), key=lambda kv: -kv[1])),
        rows_dropped_missing=wrote.dropped_missing, rows_dropped_outlier=wrote.dropped_outlier,
        missing_filled=dict(sorted(wrote.missing_filled.items())),
        outliers_handled=dict(sorted(wrote.outliers_handled.items())),
        rows_train=wrote.train_rows, rows_holdout=wrote.holdout_rows, fingerprint=fingerprint,
        rejects_path=str(rejects_path), output_dir=str(out_dir), source=source.description, task=task,
        columns_ignored=ignored, quantiles_exact=all(st.summary.exact for st in scan.numeric.values()),
        classes_without_training_rows=_untrained_classes(classes, prof.target),
    )
    if report.classes_without_training_rows:
        logger.warning("class(es) %s of %r have no training row (all in the holdout): no model can predict them",
                       report.classes_without_training_rows, schema.target)
    if not report.reconciles():  # pragma: no cover - a bug, never an input problem
        raise DataError(f"row counts do not reconcile: {report.rows_read} read != {report.rows_clean} clean + "
                        f"{report.rows_rejected} rejected")
    reference = _reference(schema, scan, prof, edges, classification)
    features.save(out_dir / "features.json")
    (out_dir / "reference.json").write_text(json.dumps(reference, indent=1))

    t = time.perf_counter()
    prepared = _load(out_dir, features, report, reference, wrote, cfg, materialize)
    timings["load"] = time.perf_counter() - t
    report.seconds_by_pass = {k: round(v, 3) for k, v in timings.items()}
    report.seconds = round(time.perf_counter() - t_start, 3)
    (out_dir / "report.json").write_text(json.dumps(report_dict(report), indent=1, default=str))
    return prepared


def _untrained_classes(classes: list[Any] | None, train_counts: Any) -> list[str]:
    """Labels seen only in the holdout rows: the model never learns them (rare classes, a small data set)."""
    if not classes or train_counts is None:
        return []
    seen = getattr(train_counts, "counts", {})
    return [str(c) for c in classes if not seen.get(c)]


def _fingerprint_context(schema: Schema, cfg: PipelineConfig) -> str:
    # The rows' content plus what shapes the cleaned values; not the path, so moved or re-split files match.
    cols = ",".join(sorted(f"{c.name}:{c.type}" for c in schema.columns))  # column order is not content
    clean = json.dumps(cfg.data.clean.model_dump(mode="json"), sort_keys=True)
    return f"{cols}|clean={clean}"


def _reference(schema: Schema, scan: blocks.ScanPartial, prof: blocks.ProfilePartial,
               edges: dict[str, np.ndarray], classification: bool) -> dict[str, Any]:
    numeric = {k: (scan.numeric[k], edges[k], prof.hist[k], prof.raw_missing[k]) for k in prof.hist}
    target: tuple[str, dict[str, Any]] | None = None
    if classification:
        target = (schema.target, categorical_entry(prof.target))
    elif prof.target is not None:
        st = prof.target
        e = reference_edges(st)
        target = (schema.target, numeric_entry(st, e, summary_bin_counts(st.summary, e), st.missing))
    return build_reference(prof.train_rows, numeric, prof.raw_categorical, [c.name for c in schema.features], target)


def _labels(table: pa.Table, target: str, classes: list[Any] | None) -> np.ndarray:
    y = table.column(target).to_pylist()
    if classes is None:
        return np.asarray(y, dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    return np.asarray([index[v] for v in y], dtype=np.int64)


def _load(out_dir: Path, features: Any, report: DataReport, reference: dict[str, Any], wrote: blocks.WritePartial,
          cfg: PipelineConfig, materialize: bool) -> PreparedData:
    import pandas as pd

    names = features.feature_names_out
    # Input columns only (the contract: what a caller sends a model), in the features' input order.
    inputs = features.input_columns
    sample = pd.DataFrame([row for _, row in wrote.sample], columns=inputs)
    empty = PreparedData(features, np.zeros((0, len(names))), np.zeros(0), np.zeros(0, dtype=np.int64),
                         np.zeros((0, len(names))), np.zeros(0), pd.DataFrame(), sample, report.fingerprint,
                         report, reference, out_dir)
    if not materialize:
        return empty
    train = _read_folder(out_dir / "train")
    assert train is not None  # at least one training row exists (checked after pass 1)
    train = train.sort_by(blocks.ROW_HASH)  # a row order that does not depend on files or blocks
    x_train = np.column_stack([train.column(n).to_numpy() for n in names]) if names else np.zeros((train.num_rows, 0))
    y_train = _labels(train, features.target, features.classes)
    h = train.column(blocks.ROW_HASH).to_numpy()
    strata = y_train if features.task == "classification" and cfg.data.split.stratify else None
    folds = assign_folds(h, cfg.data.split.folds, cfg.seed, strata)
    filled = len(np.unique(folds))
    if filled < cfg.data.split.folds:  # CV would quietly run on fewer folds than asked
        raise DataError(f"only {filled} of the {cfg.data.split.folds} folds (data.split.folds) hold training rows "
                        f"({len(folds)} rows in all); add rows or lower data.split.folds")
    holdout = _read_folder(out_dir / "holdout")
    raw = _read_folder(out_dir / "holdout_raw")
    hashes = np.zeros(0, dtype=np.uint64)
    if holdout is None or raw is None:
        x_hold, y_hold, frame = np.zeros((0, len(names))), np.zeros(0), pd.DataFrame(columns=features.input_columns)
    else:
        holdout = holdout.sort_by(blocks.ROW_HASH)
        raw = raw.sort_by(blocks.ROW_HASH)
        x_hold = np.column_stack([holdout.column(n).to_numpy() for n in names]) if names else \
            np.zeros((holdout.num_rows, 0))
        y_hold = _labels(holdout, features.target, features.classes)
        frame = raw.select(inputs).to_pandas()
        hashes = holdout.column(blocks.ROW_HASH).to_numpy()
    return PreparedData(features, x_train, y_train, folds, x_hold, y_hold, frame, sample, report.fingerprint,
                        report, reference, out_dir, holdout_hashes=hashes)


__all__ = ["SchemaError", "check_input", "format_report", "prepare"]
