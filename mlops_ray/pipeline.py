"""Composes the stages: data -> tune -> register -> deploy. What `mlops-ray run CONFIG` calls.

Wiring only: every decision lives in a stage. Stages are imported lazily so that importing this
module (and the CLI) stays cheap.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mlops_ray.config import STEPS, PipelineConfig
from mlops_ray.exceptions import ConfigError
from mlops_ray.runtime import Runtime, configure_mlflow, connect_ray

if TYPE_CHECKING:
    from mlops_ray.data.prepared import PreparedData


@dataclass
class PipelineResult:
    """What a pipeline run produced; each field is None when its step did not run."""

    config_hash: str
    steps: list[str]
    prepared: PreparedData | None = None
    search: Any = None  # mlops_ray.tune.SearchResult
    registration: Any = None  # mlops_ray.registry.Registration
    deployment: Any = None  # mlops_ray.serve deployment summary
    cached: dict[str, Any] = field(default_factory=dict)  # step -> what was reused
    seconds: dict[str, float] = field(default_factory=dict)


def _order(steps: Sequence[str]) -> list[str]:
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise ConfigError(f"unknown step(s) {unknown}; allowed: {', '.join(STEPS)}")
    return [s for s in STEPS if s in steps]


def connect_for_steps(runtime: Runtime, steps: Sequence[str], *, check_cpu: bool = True) -> bool:
    """Join the Ray the steps need; a no-op when connected. True when that is the serving head.

    With a deploy step and no cluster address, the Serve application must outlive this process: the whole
    pipeline runs on this working directory's detached local head (started on first use, joined when it
    serves already), not on a Ray that exits with us. ``check_cpu=False``: the caller checks that the head
    has a CPU for the data and tune steps itself, once it knows they will run (``require_free_cpu``).
    """
    import ray

    on_serving_head = "deploy" in steps and not runtime.ray_address and not ray.is_initialized()
    if on_serving_head:
        from mlops_ray.serve.controller import connect, require_free_cpu

        connect(runtime, start_head=True)
        if check_cpu:
            require_free_cpu()
    connect_ray(runtime)
    return on_serving_head


def run_pipeline(
    cfg: PipelineConfig,
    runtime: Runtime,
    *,
    steps: Sequence[str] | None = None,
    use_cache: bool = True,
    canary_pct: float | None = None,
    resume: bool = False,
    log: Callable[[str], None] = print,
) -> PipelineResult:
    """Run the configured steps in order; reuses an earlier identical run unless ``use_cache`` is False.

    ``resume`` continues an interrupted search (same config and data) without rerunning finished trials.
    """
    todo = _order(steps or cfg.steps)
    if any(s in todo for s in ("tune", "register", "deploy")) and "data" not in todo:
        todo.insert(0, "data")  # later steps need the prepared data (and its fingerprint)
    result = PipelineResult(config_hash=cfg.config_hash(), steps=todo)
    from mlops_ray import data, registry

    data.check_input(cfg)  # a wrong path fails before a Ray (or a serving head) starts
    if "tune" in todo:  # so does a typo in the tune section (estimator path, params, search space, metric)
        from mlops_ray.tune.checks import check_config

        check_config(cfg)
    if "register" in todo:
        from mlops_ray.registry.gate import check_gate_spec

        check_gate_spec(cfg.registry.gate.thresholds, cfg.data.task)
    registry.check_reachable(runtime)  # so does a tracking server that is down (MLflow would retry for minutes)
    registry.check_local_store(runtime)  # or a damaged local store
    runtime.ensure_dirs()
    connect_for_steps(runtime, todo)
    if "tune" in todo:  # a trial bigger than the cluster: said before the data stage rewrites its outputs
        from mlops_ray.tune.search import check_resources

        check_resources(cfg, runtime)
    configure_mlflow(runtime)

    def timed(step: str, fn: Callable[[], Any]) -> Any:
        log(f"[{step}] starting")
        t0 = time.perf_counter()
        out = fn()
        result.seconds[step] = time.perf_counter() - t0
        log(f"[{step}] done in {result.seconds[step]:.1f}s")
        return out

    result.prepared = prepared = timed("data", lambda: data.prepare(cfg, runtime))
    log(data.format_report(prepared.report))

    if "register" in todo and use_cache and not resume:
        hit = registry.find_cached_registration(runtime, cfg, prepared.fingerprint)
        if hit is not None:
            result.cached["register"] = hit
            result.registration = hit
            log(f"[cache] data fingerprint {prepared.fingerprint[:12]} and config hash {result.config_hash} match "
                f"model {hit.name} version {hit.version}: reusing it (pass --no-cache to rerun tune+register)")
            todo = [s for s in todo if s not in ("tune", "register")]

    if "tune" in todo:
        from mlops_ray import tune

        result.search = timed("tune", lambda: tune.run_search(cfg, runtime, prepared, resume=resume))
        log(tune.format_result(result.search))

    if "register" in todo:
        result.registration = timed(
            "register", lambda: registry.register_model(cfg, runtime, result.search, prepared)
        )
        log(registry.format_registration(result.registration))
        from mlops_ray.monitor import attach_reference

        # The monitor compares live traffic with this version's own reference (training profile and the
        # model's predictions on the holdout), logged into the version's run.
        attach_reference(runtime, result)

    if "deploy" in todo:
        from mlops_ray import serve

        if result.registration is None:
            raise ConfigError("the deploy step needs a registered model: include 'register' in steps")
        reg = result.registration
        if not reg.is_champion:
            log(f"[deploy] {reg.name} v{reg.version} is not the champion (gate: "
                f"{'accepted' if reg.accepted else 'rejected'}): the champion "
                f"v{reg.aliases.get('champion', '?')} keeps serving; the challenger gets no traffic")
        result.deployment = timed(
            "deploy",
            lambda: serve.deploy_from_pipeline(cfg, runtime, reg, canary_pct=canary_pct),
        )
        log(serve.format_deployment(result.deployment))
    return result
