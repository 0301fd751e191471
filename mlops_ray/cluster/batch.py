"""Offline batch inference: score a Parquet folder with Ray Data and a pool of model-holding actors.

The model URI is pinned to one concrete version on the driver first (an alias such as
``@champion`` could move while the job runs, and every actor must score with the same model), the
input schema is checked before any actor starts, and the output row count is checked against the
input's at the end: every input row is scored exactly once, or the call fails.
"""

from __future__ import annotations

import shutil
import tempfile
import time
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from mlops_ray.cluster.scoring import BatchScorer, check_input_columns, output_columns
from mlops_ray.exceptions import ClusterError, DataError, RegistryError
from mlops_ray.registry.uris import parse_model_uri

if TYPE_CHECKING:
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


# Ray Data 2.60 lists the input files in a task of its own that asks for 1 CPU (not configurable); it
# runs while the actor pool is already up, so the pool must leave that much free.
LIST_FILES_CPUS = 1.0


def _io_reserve(io_cpus: float) -> float:
    return max(LIST_FILES_CPUS, 2 * io_cpus)


def default_concurrency(cluster_cpus: float, cluster_gpus: float, num_cpus: float, num_gpus: float,
                        io_cpus: float) -> int:
    """As many actors as fit beside the file listing / read / write tasks (pure; see ``batch_predict``)."""
    if num_gpus > 0:
        return max(1, int(cluster_gpus // num_gpus))
    return max(1, int((cluster_cpus - _io_reserve(io_cpus)) // num_cpus + 1e-9))


def check_fits(cluster_cpus: float, concurrency: int, num_cpus: float, num_gpus: float, io_cpus: float) -> None:
    """Refuse a pool that would leave no CPU for the read/write tasks: Ray Data would wait forever."""
    reserve = _io_reserve(io_cpus)
    need = concurrency * (0 if num_gpus > 0 else num_cpus) + reserve
    if need > cluster_cpus + 1e-9:
        fit = max(0.05, (cluster_cpus - reserve) / concurrency)
        raise ClusterError(
            f"{concurrency} scoring actors x {num_cpus} CPU + {reserve:g} CPU for listing/reading/writing files "
            f"needs {need:g} CPUs but the cluster has {cluster_cpus:g}: Ray Data would wait forever. Lower "
            f"concurrency, or num_cpus (logical CPUs: num_cpus={fit:.2f} still lets each actor use a whole core)"
        )


def _raise_load_error(model_ref: Any) -> None:
    """Raise the model's own load error, if that is why scoring failed; else return (the caller re-raises)."""
    import ray
    from ray.exceptions import GetTimeoutError, RayTaskError

    try:
        ray.get(model_ref, timeout=60)
    except RayTaskError as e:
        cause = getattr(e, "cause", None)
        if isinstance(cause, RegistryError):
            raise RegistryError(f"the model did not load, so no row was scored: {cause}") from e
        raise
    except GetTimeoutError:
        return  # still loading: not what failed; the scoring error stands


def _count_parquet_rows(path: str) -> int:
    import pyarrow.dataset as pads

    return pads.dataset(path, format="parquet").count_rows()


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
    io_cpus: float = 0.25,
    num_blocks: int | None = None,
    overwrite: bool = False,
) -> BatchPredictResult:
    """Score every row of the Parquet data at ``input_path`` and write Parquet to ``output_path``.

    ``model_uri`` (``models:/NAME@champion``, ``models:/NAME/3``, a model folder) is fetched by the driver,
    which reads only its features (to check the input's schema before any actor starts); one task on the
    driver's node deserializes it while the actors start, and they take it from the object store;
    ``model`` (a FittedModel) is shipped as it is. Output columns: ``id_column`` and ``passthrough``,
    ``prediction``, ``proba_<class>`` (classification), and the lineage columns ``model_name``,
    ``model_version``, ``model_uri``, ``scored_at``, ``batch_run_id``. Ray must be connected.

    Each actor takes ``num_cpus`` (and ``num_gpus``: the model then runs on the GPU Ray assigned);
    Parquet read and write tasks take ``io_cpus`` each, so that they always fit beside the pool.
    ``concurrency`` defaults to as many actors as the cluster's CPUs (GPUs) allow. ``num_blocks``
    (default ``4 x concurrency``) splits the input so that every actor gets work, in a stream: Ray Data
    would otherwise read a small folder as one block, scored by one actor.
    """
    import ray

    if not ray.is_initialized():
        raise ClusterError("batch_predict needs a connected Ray; call mlops_ray.runtime.connect_ray(runtime) first")
    if (model is None) == (model_uri is None):
        raise ClusterError("pass exactly one of model_uri (a registered model) or model (a FittedModel)")
    if batch_size < 1:
        raise ClusterError(f"batch_size must be >= 1, got {batch_size}")
    if num_gpus < 0 or num_cpus <= 0 or io_cpus <= 0:
        raise ClusterError(f"num_cpus and io_cpus must be > 0 and num_gpus >= 0, got {num_cpus}, {io_cpus} "
                           f"and {num_gpus}")
    keep = [*([id_column] if id_column else []), *[c for c in (passthrough or []) if c != id_column]]

    out = Path(output_path)
    if "://" not in output_path and out.exists() and any(out.iterdir()):
        if not overwrite:
            raise ClusterError(f"output folder {output_path!r} is not empty; choose a new one or pass overwrite=True")
        shutil.rmtree(out)

    pinned = model_uri
    tmp: str | None = None
    folder: Path | None = None
    if model_uri is not None:
        pinned, model_name, model_version = pin_model_uri(model_uri, runtime)
        from mlops_ray.registry import fetch_fitted_dir, load_features_dir

        tmp = tempfile.mkdtemp(prefix="mlops_ray_batch_")
        folder = fetch_fitted_dir(pinned, tmp, tracking_uri=runtime.tracking_uri if runtime else None)
        features = load_features_dir(folder)  # JSON only: the schema is checked before any actor starts
    else:
        assert model is not None
        features = model.features
    try:
        return _score(input_path, output_path, features=features, model=model, folder=folder, keep=keep,
                      pinned=pinned, model_name=model_name, model_version=model_version, concurrency=concurrency,
                      batch_size=batch_size, num_cpus=num_cpus, num_gpus=num_gpus, io_cpus=io_cpus,
                      num_blocks=num_blocks)
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _load_model_here(folder: str) -> FittedModel:
    from mlops_ray.registry import load_fitted_model_dir

    return load_fitted_model_dir(folder)


def _model_ref(folder: Path | None, model: FittedModel | None) -> Any:
    """An object ref to the model that the actors resolve in ``__init__``.

    A folder is deserialized (skops, exactly the trusted types) by one task on this node, where the files
    are, while Ray Data lists the input and the actors start (the actors only wait for the object), instead
    of the driver loading it first (imports and deserialization: seconds) and starting everything after it.
    """
    import ray

    if folder is None:
        return ray.put(model)
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    # 0 CPUs: a one-off load must not wait behind the actor pool and the I/O tasks that fill the cluster.
    task = ray.remote(_load_model_here).options(num_cpus=0, scheduling_strategy=here, max_retries=0)
    return task.remote(str(folder))


def _score(input_path: str, output_path: str, *, features: FeaturePipeline, model: FittedModel | None,
           folder: Path | None, keep: list[str], pinned: str | None, model_name: str | None,
           model_version: str | None, concurrency: int | None, batch_size: int, num_cpus: float, num_gpus: float,
           io_cpus: float, num_blocks: int | None) -> BatchPredictResult:
    import ray

    res = ray.cluster_resources()
    n = concurrency or default_concurrency(res.get("CPU", 0), res.get("GPU", 0), num_cpus, num_gpus, io_cpus)
    check_fits(res.get("CPU", 0), n, num_cpus, num_gpus, io_cpus)
    try:
        ds = ray.data.read_parquet(input_path, num_cpus=io_cpus,
                                   override_num_blocks=num_blocks or 4 * n)
        columns = list(ds.schema().names)
    except (FileNotFoundError, OSError, ValueError) as e:
        raise DataError(f"cannot read Parquet input {input_path!r}: {e}") from e
    check_input_columns(columns, features, keep)
    rows_in = _count_parquet_rows(input_path) if "://" not in input_path else ds.count()

    scored_at = pd.Timestamp.now(tz="UTC")
    run_id = uuid.uuid4().hex[:12]
    lineage = {"model_name": model_name, "model_version": model_version, "model_uri": pinned,
               "scored_at": scored_at, "batch_run_id": run_id}
    # The model reaches the actors through the object store, once: loading it in every actor costs seconds
    # each and needs the registry reachable from every node.
    model_ref = _model_ref(folder, model)
    ctor: dict[str, Any] = {"lineage": lineage, "passthrough": keep, "model": model_ref}
    t0 = time.perf_counter()
    scored = ds.map_batches(
        BatchScorer,
        fn_constructor_kwargs=ctor,
        batch_size=batch_size,
        batch_format="pyarrow",  # zero-copy from the Parquet blocks and straight back to the writer
        concurrency=n,
        num_cpus=num_cpus,
        num_gpus=num_gpus or None,
    )
    try:
        scored.write_parquet(output_path, ray_remote_args={"num_cpus": io_cpus})
    except Exception:
        _raise_load_error(model_ref)  # an actor failed because the model did not load: say that, plainly
        raise
    duration = time.perf_counter() - t0

    rows_out = _count_parquet_rows(output_path) if "://" not in output_path else ray.data.read_parquet(
        output_path).count()
    if rows_out != rows_in:
        raise ClusterError(f"scored {rows_out} rows but the input has {rows_in}; output at {output_path!r} is "
                           "incomplete, rerun with overwrite=True")
    result = BatchPredictResult(
        output_path=str(output_path), rows_in=rows_in, rows_out=rows_out, model_name=model_name,
        model_version=model_version, model_uri=pinned, scored_at=scored_at.isoformat(), batch_run_id=run_id,
        concurrency=n, duration_s=round(duration, 3), columns=output_columns(features, keep),
    )
    if "://" not in output_path:
        import json

        (Path(output_path) / "_batch_predict.json").write_text(json.dumps(result.to_dict(), indent=2))
    return result
