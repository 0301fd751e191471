"""Offline batch inference: score a Parquet folder with Ray Data and a pool of model-holding actors.

The model URI is pinned to one concrete version on the driver first (an alias such as
``@champion`` could move while the job runs, and every actor must score with the same model), the
input schema is checked before any actor starts, and the output row count is checked against the
input's at the end: every input row is scored exactly once, or the call fails.
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_ray.cluster.scoring import PartScorer, check_input_columns, output_columns
from mlops_ray.exceptions import ClusterError, RegistryError
from mlops_ray.ray_errors import own_error, quiet_task_errors
from mlops_ray.registry.uris import parse_model_uri

if TYPE_CHECKING:
    from mlops_ray.cluster.parts import ParquetInput
    from mlops_ray.data.features import FeaturePipeline
    from mlops_ray.runtime import Runtime
    from mlops_ray.tune.fitted import FittedModel


@dataclass(frozen=True)
class BatchPredictResult:
    """What a batch scoring run did; also written as ``_batch_predict.json`` beside the output."""

    output_path: str
    rows_in: int
    rows_out: int
    model_name: str | None
    model_version: str | None
    model_uri: str | None
    scored_at: str
    batch_run_id: str
    concurrency: int
    duration_s: float
    columns: list[str]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def pin_model_uri(model_uri: str, runtime: Runtime | None) -> tuple[str, str | None, str | None]:
    """(pinned uri, name, version): ``models:/NAME@ALIAS`` (``models:/NAME``: the champion) -> ``models:/NAME/N``."""
    ref = parse_model_uri(model_uri)
    if not ref.registered or ref.version is not None:
        return ref.uri, ref.name, ref.version
    if runtime is None:
        raise ClusterError(f"resolving {model_uri!r} needs the runtime (its MLflow store); pass runtime=")
    from mlops_ray.exceptions import RegistryError
    from mlops_ray.registry import resolve_version

    assert ref.name is not None
    try:
        info = resolve_version(runtime, ref.name, alias=ref.effective_alias)
    except RegistryError as e:
        raise ClusterError(f"cannot score with {model_uri!r}: {e}") from e
    return f"models:/{ref.name}/{info.version}", ref.name, str(info.version)


def default_concurrency(cluster_cpus: float, cluster_gpus: float, num_cpus: float, num_gpus: float) -> int:
    """As many actors as the cluster's CPUs (GPUs, for GPU actors) hold (pure; see ``batch_predict``)."""
    if num_gpus > 0:
        return max(1, int(cluster_gpus // num_gpus + 1e-9))
    return max(1, int(cluster_cpus // num_cpus + 1e-9))


def check_fits(cluster_cpus: float, cluster_gpus: float, concurrency: int, num_cpus: float, num_gpus: float) -> None:
    """Refuse a pool bigger than the cluster: its last actors would never start and Ray Data would wait."""
    if concurrency * num_cpus > cluster_cpus + 1e-9:
        raise ClusterError(
            f"{concurrency} scoring actors x {num_cpus} CPU need {concurrency * num_cpus:g} CPUs but the cluster "
            f"has {cluster_cpus:g}: lower concurrency, or num_cpus (logical CPUs: "
            f"num_cpus={max(0.05, cluster_cpus / concurrency):.2f} still lets each actor use a whole core)"
        )
    if concurrency * num_gpus > cluster_gpus + 1e-9:
        raise ClusterError(f"{concurrency} scoring actors x {num_gpus} GPU need {concurrency * num_gpus:g} GPUs but "
                           f"the cluster has {cluster_gpus:g}: lower concurrency or num_gpus")


def batch_predict(
    input_path: str,
    output_path: str,
    *,
    model_uri: str | None = None,
    model: FittedModel | None = None,
    model_name: str | None = None,
    model_version: str | None = None,
    runtime: Runtime | None = None,
    id_column: str | None = None,
    passthrough: list[str] | None = None,
    concurrency: int | None = None,
    batch_size: int = 65_536,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    overwrite: bool = False,
) -> BatchPredictResult:
    """Score every row of the Parquet data at ``input_path`` and write Parquet to ``output_path``.

    ``model_uri`` (``models:/NAME@champion``, ``models:/NAME/3``, a model folder) is fetched by the driver,
    which reads only its features (to check the input's schema before any actor starts) and ships the
    folder's bytes through the object store: each actor deserializes it once (skops, exactly the trusted
    types) and reuses it for every batch; ``model`` (a FittedModel) is shipped as it is. Output columns:
    ``id_column`` and ``passthrough``, ``prediction``, ``proba_<class>`` (classification), and the lineage
    columns ``model_name``, ``model_version``, ``model_uri``, ``scored_at``, ``batch_run_id``. Ray must be
    connected.

    The input is cut into parts (runs of row groups, about 16 per actor) and Ray Data hands them to a
    pool of ``concurrency`` actors (default: as many as the cluster's CPUs, or GPUs, hold), one part at a
    time: each actor reads its part ``batch_size`` rows at a time, scores and writes
    ``part-<n>.parquet``. Each actor takes ``num_cpus`` (and ``num_gpus``: the model then runs on the GPU
    Ray assigned). Input and output paths must be reachable from every node (shared disk, s3://, gs://).
    """
    import ray

    if not ray.is_initialized():
        raise ClusterError("batch_predict needs a connected Ray; call mlops_ray.runtime.connect_ray(runtime) first")
    if (model is None) == (model_uri is None):
        raise ClusterError("pass exactly one of model_uri (a registered model) or model (a FittedModel)")
    if batch_size < 1:
        raise ClusterError(f"batch_size must be >= 1, got {batch_size}")
    if num_gpus < 0 or num_cpus <= 0:
        raise ClusterError(f"num_cpus must be > 0 and num_gpus >= 0, got {num_cpus} and {num_gpus}")
    keep = [*([id_column] if id_column else []), *[c for c in (passthrough or []) if c != id_column]]

    from mlops_ray.cluster.parts import inspect_input, resolve_filesystem

    out_fs, out_dir = resolve_filesystem(output_path)
    existing = _existing_output(out_fs, out_dir, output_path, overwrite)

    pinned = model_uri
    shipped: Any = model
    if model_uri is not None:
        pinned, model_name, model_version = pin_model_uri(model_uri, runtime)
        from mlops_ray.registry import FittedModelFiles, fetch_fitted_dir, load_features_dir

        with tempfile.TemporaryDirectory(prefix="mlops_ray_batch_") as tmp:
            folder = fetch_fitted_dir(pinned, tmp, tracking_uri=runtime.tracking_uri if runtime else None)
            features = load_features_dir(folder)  # JSON only: the schema is checked before any actor starts
            shipped = FittedModelFiles.read(folder)
    else:
        assert model is not None
        features = model.features

    inp = inspect_input(input_path)
    check_input_columns(inp.columns, features, keep)
    if existing:  # only now that the input and the model are known to be usable: bad input loses nothing
        out_fs.delete_dir_contents(out_dir)
    out_fs.create_dir(out_dir, recursive=True)
    return _score(input_path, output_path, inp=inp, out_fs=out_fs, out_dir=out_dir, features=features,
                  shipped=shipped, keep=keep, pinned=pinned, model_name=model_name, model_version=model_version,
                  concurrency=concurrency, batch_size=batch_size, num_cpus=num_cpus, num_gpus=num_gpus)


def _existing_output(fs: Any, out_dir: str, output_path: str, overwrite: bool) -> bool:
    """Whether the output folder has files to replace; refused unless ``overwrite``."""
    import pyarrow.fs as pafs

    info = fs.get_file_info(out_dir)
    if info.type == pafs.FileType.File:
        raise ClusterError(f"output {output_path!r} is a file; give a folder")
    if info.type != pafs.FileType.Directory or not fs.get_file_info(pafs.FileSelector(out_dir)):
        return False
    if not overwrite:
        raise ClusterError(f"output folder {output_path!r} is not empty; choose a new one, or replace it: "
                           "overwrite=True (--overwrite in the batch_predict job)")
    return True


def _count_rows(fs: Any, out_dir: str) -> int:
    import pyarrow.dataset as pads

    return pads.dataset(out_dir, filesystem=fs, format="parquet").count_rows()


def _score(input_path: str, output_path: str, *, inp: ParquetInput, out_fs: Any, out_dir: str,
           features: FeaturePipeline, shipped: Any, keep: list[str], pinned: str | None, model_name: str | None,
           model_version: str | None, concurrency: int | None, batch_size: int, num_cpus: float,
           num_gpus: float) -> BatchPredictResult:
    import ray

    from mlops_ray.cluster.parts import absolute, plan_parts, remove_partial_files, target_part_rows

    res = ray.cluster_resources()
    n = concurrency or default_concurrency(res.get("CPU", 0), res.get("GPU", 0), num_cpus, num_gpus)
    check_fits(res.get("CPU", 0), res.get("GPU", 0), n, num_cpus, num_gpus)
    parts = plan_parts(inp.files, inp.row_group_rows, target_part_rows(inp.rows, n, batch_size))

    scored_at = pd.Timestamp.now(tz="UTC")
    run_id = uuid.uuid4().hex[:12]
    lineage = {"model_name": model_name, "model_version": model_version, "model_uri": pinned,
               "scored_at": scored_at, "batch_run_id": run_id}
    t0 = time.perf_counter()
    done: list[dict[str, Any]] = []
    if parts:
        # Paths as the driver resolved them: an actor's working directory may differ (another node's copy of
        # the job's working_dir), and a relative path would land there.
        ctor = {"parts": parts, "model": ray.put(shipped), "input_path": absolute(input_path),
                "output_path": absolute(output_path), "lineage": lineage, "passthrough": keep,
                "batch_size": batch_size}
        # Two parts in flight per actor: the next one is queued while the actor scores (with one, Ray Data's
        # round trip between parts cost 1.7 s of 11 on the benchmark), and a longer queue behind a busy
        # actor would leave the others idle at the end.
        pool = ray.data.ActorPoolStrategy(size=min(n, len(parts)), max_tasks_in_flight_per_actor=2)
        ds = ray.data.from_items([{"part": p.index} for p in parts], override_num_blocks=len(parts))
        # The actor's own exception (DataError, RegistryError), not a UserCodeException that lost its cause.
        ds.context.raise_original_map_exception = True
        try:
            with quiet_task_errors():
                done = ds.map_batches(PartScorer, fn_constructor_kwargs=ctor, batch_size=1, compute=pool,
                                      num_cpus=num_cpus, num_gpus=num_gpus or None).take_all()
        except Exception as e:
            own = own_error(e)
            if isinstance(own, RegistryError):
                raise RegistryError(f"the model did not load, so no row was scored: {own}") from e
            if own is not None:
                raise type(own)(f"scoring failed: {own}; output at {output_path!r} is incomplete") from e
            raise
    duration = time.perf_counter() - t0

    remove_partial_files(out_fs, out_dir)
    expected = {p.index: p.rows for p in parts}
    short = {int(d["part"]): int(d["rows"]) for d in done if int(d["rows"]) != expected[int(d["part"])]}
    rows_out = _count_rows(out_fs, out_dir) if parts else 0
    if short or len(done) != len(parts) or rows_out != inp.rows:
        raise ClusterError(f"scored {rows_out} rows but the input has {inp.rows} (parts with the wrong count: "
                           f"{short or 'none'}); output at {output_path!r} is incomplete, rerun with overwrite=True")
    result = BatchPredictResult(
        output_path=str(output_path), rows_in=inp.rows, rows_out=rows_out, model_name=model_name,
        model_version=model_version, model_uri=pinned, scored_at=scored_at.isoformat(), batch_run_id=run_id,
        concurrency=n, duration_s=round(duration, 3), columns=output_columns(features, keep),
    )
    with out_fs.open_output_stream(f"{out_dir}/_batch_predict.json") as f:
        f.write(json.dumps({**result.to_dict(), "parts": len(parts), "files": len(inp.files)}, indent=2).encode())
    return result
