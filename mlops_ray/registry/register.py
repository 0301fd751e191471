"""Register a search's winner: package, log, register with lineage, model card, gate, alias moves.

Order matters for "nothing half-registered": the gate is decided before anything is written; then
the model is logged, the version created with all its tags at once, the card written and the
aliases moved. A failure after the model was logged deletes the new version (and the registered
model if this call created it), puts the aliases back, and says so in the RegistryError.
"""

from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from mlops_ray.data.hashing import SPLIT_SCHEME
from mlops_ray.exceptions import GateRejected, RegistryError
from mlops_ray.registry import gate as gate_mod
from mlops_ray.registry.artifacts import load_fitted_model_dir, save_fitted_model
from mlops_ray.registry.card import model_card
from mlops_ray.registry.scoring import score_on_holdout
from mlops_ray.registry.store import (
    ALIASES,
    TAG,
    AliasMove,
    client,
    get_aliases,
    mlflow_errors,
    model_exists,
    move_aliases,
    restore_aliases,
)
from mlops_ray.runtime import Runtime, config_code_version, package_version, ray_job_id

logger = logging.getLogger(__name__)

if TYPE_CHECKING:
    from mlflow import MlflowClient

    from mlops_ray.config import PipelineConfig
    from mlops_ray.data.prepared import PreparedData

GATE_ACTOR = "gate"
CARD_DIR = "model_cards"


@dataclass
class Registration:
    """A registered version and what the gate did with it."""

    name: str
    version: str
    accepted: bool
    decision: gate_mod.GateDecision | None  # None for a registration reused from the cache
    moves: list[AliasMove] = field(default_factory=list)
    aliases: dict[str, str] = field(default_factory=dict)  # alias -> version after the moves
    model_uri: str = ""  # models:/NAME/VERSION
    run_id: str | None = None
    model_id: str | None = None
    card_path: str | None = None  # artifact path of the Markdown card in the run
    lineage: dict[str, str] = field(default_factory=dict)
    cached: bool = False

    @property
    def is_champion(self) -> bool:
        return self.aliases.get("champion") == self.version


def training_config_hash(cfg: PipelineConfig) -> str:
    """The part of the config that decides the model (not serving/monitoring): the step-cache key.

    Where the rows were read from is left out: the data fingerprint (the other half of the key) covers the
    rows themselves, and a retrain writes the same rows to a new timestamped file each time (every retrain
    with nothing new registered another copy of the same version)."""
    return cfg.config_hash("name", "seed", "data", "tune", "registry",
                           exclude={"data": {"source": {"path", "bundled"}}})


def lineage_tags(cfg: PipelineConfig, result: Any, prepared: PreparedData) -> dict[str, str]:
    tags = {
        "data_fingerprint": prepared.fingerprint,
        "config_hash": cfg.config_hash(),
        "train_config_hash": training_config_hash(cfg),
        "code_version": config_code_version(cfg.source_file),
        "mlops_ray_version": package_version(),
        "search_run_id": str(result.parent_run_id),
        "ray_job_id": ray_job_id() or "none",
        "pipeline": cfg.name,
        # The split this version's holdout came from: a later gate scores it only on rows it never saw.
        "split_seed": str(cfg.seed),
        "holdout_fraction": repr(float(cfg.data.split.holdout_fraction)),
        "split_scheme": SPLIT_SCHEME,
        "kind": result.model.kind,
        "task": result.model.task,
        "metric": str(result.metric),
        "cv_mean": f"{float(result.cv_mean):.6g}",
        "cv_std": f"{float(result.cv_std):.6g}",
    }
    tags.update({f"holdout.{k}": f"{float(v):.6g}" for k, v in (result.holdout_metrics or {}).items()})
    return {TAG + k: v for k, v in tags.items()}


def _score_champion(runtime: Runtime, name: str, version: str, prepared: PreparedData) -> gate_mod.Predictions:
    from mlops_ray.registry.packaging import load_fitted_model

    champion = load_fitted_model(f"models:/{name}/{version}", tracking_uri=runtime.tracking_uri)
    return score_on_holdout(champion, prepared.holdout_frame, prepared.y_holdout, prepared.task,
                            prepared.features.classes)


MIN_UNSEEN_ROWS = 30  # below this, a comparison on the rows the champion never saw is noise


def unseen_by_champion(cfg: PipelineConfig, prepared: PreparedData, champion_tags: dict[str, str]) -> Any:
    """Which holdout rows the champion never trained on: a boolean mask, or None when that is all of them.

    The split is a seeded function of each row's content hash, so the champion's own split (its
    ``split_seed``, ``holdout_fraction`` and ``split_scheme`` tags) tells which of today's holdout rows were
    in its training split; a RegistryError when it cannot (split by another hash scheme, or untagged).
    Rows it never saw at all (new data) but that its split would have trained on are left out too: the
    comparison errs towards fewer rows, never towards rows one model memorised.
    """
    from mlops_ray.data.hashing import holdout_mask

    seed, frac = champion_tags.get(TAG + "split_seed"), champion_tags.get(TAG + "holdout_fraction")
    scheme = champion_tags.get(TAG + "split_scheme")
    if seed is None or frac is None or scheme != SPLIT_SCHEME:  # the same seed may have split other rows
        raise RegistryError(f"it was split {'by an older version' if scheme is None else f'by scheme {scheme}'} "
                            f"of the row hash (now scheme {SPLIT_SCHEME})")
    if int(seed) == cfg.seed and float(frac) == float(cfg.data.split.holdout_fraction):
        return None
    if prepared.holdout_hashes is None or len(prepared.holdout_hashes) != len(prepared.y_holdout):
        raise RegistryError("the prepared data has no row hashes for its holdout: rerun the data step")
    return holdout_mask(np.asarray(prepared.holdout_hashes, dtype=np.uint64), int(seed), float(frac))


PROMOTE_HINT = "mlops-ray promote {name} VERSION"  # VERSION: filled in once the version is registered


def run_gate(cfg: PipelineConfig, runtime: Runtime, result: Any, prepared: PreparedData,
             champion_version: str | None, packaged: Any = None) -> gate_mod.GateDecision:
    """Score the packaged challenger and the champion on the same holdout rows, none of which either trained on.

    ``packaged`` is the challenger after a save/load round trip (exactly what will be served); made here if None.
    """
    g = cfg.registry.gate
    if packaged is None:
        with tempfile.TemporaryDirectory(prefix="mlops_ray_gate_") as tmp:
            packaged = load_fitted_model_dir(save_fitted_model(result.model, Path(tmp) / "fitted"))
    challenger = score_on_holdout(packaged, prepared.holdout_frame, prepared.y_holdout, prepared.task,
                                  prepared.features.classes)
    kwargs: dict[str, Any] = dict(thresholds=g.thresholds, margin=g.margin, confidence=g.confidence,
                                  n_bootstrap=g.n_bootstrap, seed=cfg.seed if g.seed is None else g.seed)
    if champion_version is None:
        return gate_mod.decide(result.metric, challenger, None, **kwargs)

    def refuse(why: str) -> gate_mod.GateDecision:
        # Without a fair comparison the gate cannot support a promotion: record why and reject.
        d = gate_mod.decide(result.metric, challenger, None, **kwargs)
        d.accepted, d.champion_version = False, champion_version
        d.reason = f"{why}; not promoted; promote by hand if intended: {PROMOTE_HINT.format(name=cfg.model_name)}"
        return d

    try:
        from mlops_ray.registry.store import resolve_version

        tags = resolve_version(runtime, cfg.model_name, version=champion_version).tags
        champion = _score_champion(runtime, cfg.model_name, champion_version, prepared)
    except RegistryError as e:
        return refuse(f"the champion v{champion_version} could not be scored on this holdout ({e})")
    try:
        unseen = unseen_by_champion(cfg, prepared, tags)
    except RegistryError as e:
        return refuse(f"cannot tell which holdout rows the champion v{champion_version} trained on ({e})")
    if unseen is None:
        return gate_mod.decide(result.metric, challenger, champion, champion_version=champion_version, **kwargs)
    n = int(unseen.sum())
    split = f"split seed {tags[TAG + 'split_seed']}, holdout fraction {tags[TAG + 'holdout_fraction']}"
    if n < MIN_UNSEEN_ROWS:
        return refuse(f"the champion v{champion_version} was trained with another split ({split}): only {n} of "
                      f"the {len(unseen)} holdout rows are new to it (fewer than {MIN_UNSEEN_ROWS})")
    d = gate_mod.decide(result.metric, challenger.subset(unseen), champion.subset(unseen),
                        champion_version=champion_version, **kwargs)
    d.reason += (f" (compared on the {n} of {len(unseen)} holdout rows that neither model trained on: "
                 f"v{champion_version} came from another split, {split})")
    return d


def _target_aliases(decision: gate_mod.GateDecision, version: str, current: dict[str, str]) -> dict[str, str | None]:
    if not decision.accepted:
        return {"challenger": version}
    target: dict[str, str | None] = {"champion": version}
    if current.get("champion"):
        target["previous"] = current["champion"]
    if "challenger" in current:  # the latest candidate is now the champion: no open challenger
        target["challenger"] = None
    return target


def register_model(cfg: PipelineConfig, runtime: Runtime, result: Any, prepared: PreparedData, *,
                   enforce: bool = False) -> Registration:
    """Log ``result.model`` into the search's run, register it under ``cfg.model_name``, gate it, move aliases.

    A rejected version is still registered (as ``challenger``); with ``enforce=True`` a rejection then
    raises GateRejected (for CI or retrain jobs that must fail when no promotion happened).
    """
    name = cfg.model_name
    if getattr(result, "model", None) is None or not getattr(result, "parent_run_id", None):
        raise RegistryError("register_model needs a search result with .model and .parent_run_id; run the tune step")
    with mlflow_errors(f"registering {name}", runtime):
        cl = client(runtime)
        cl.get_run(result.parent_run_id)  # the search's run must exist before anything is logged
        existed = bool(get_aliases(cl, name)) or model_exists(cl, name)
        current = get_aliases(cl, name)
    with tempfile.TemporaryDirectory(prefix="mlops_ray_pkg_") as tmp:
        # Packaged once: the gate scores this folder's model and exactly this folder is logged.
        fitted_dir = save_fitted_model(result.model, Path(tmp) / "fitted")
        packaged = load_fitted_model_dir(fitted_dir)
        decision = run_gate(cfg, runtime, result, prepared, current.get("champion"), packaged)
        lineage = lineage_tags(cfg, result, prepared)
        with mlflow_errors(f"registering {name}", runtime):
            model_info = _log_model(cl, cfg, result, prepared, fitted_dir)
    made: dict[str, str] = {}  # what this call created, for the undo
    try:
        with mlflow_errors(f"registering {name}", runtime):
            reg = _register_logged(cl, cfg, result, prepared, model_info, decision, lineage, current, made)
    except KeyboardInterrupt:  # Ctrl-C half-way: the same undo, so a rerun starts from a clean registry
        _undo(cl, name, model_info, existed, made.get("version"), current)
        raise
    except RegistryError as e:
        undone = _undo(cl, name, model_info, existed, made.get("version"), current)
        raise RegistryError(f"{e}. The model had been logged to run {result.parent_run_id} "
                            f"({model_info.model_uri}); undone: {undone}. Fix the cause and run register again") from e
    if enforce and not reg.accepted:
        raise GateRejected(f"{name} v{reg.version} was registered as challenger but not promoted: {decision.reason}")
    return reg


def _log_model(cl: MlflowClient, cfg: PipelineConfig, result: Any, prepared: PreparedData, fitted_dir: Path) -> Any:
    import mlflow

    from mlops_ray.registry.packaging import log_fitted_model

    active = mlflow.active_run()
    try:
        if active is not None and active.info.run_id == result.parent_run_id:
            return log_fitted_model(result.model, input_example=prepared.train_frame_sample,
                                    bundle_code=cfg.registry.bundle_code, fitted_dir=fitted_dir)
        with mlflow.start_run(run_id=result.parent_run_id, nested=active is not None):
            return log_fitted_model(result.model, input_example=prepared.train_frame_sample,
                                    bundle_code=cfg.registry.bundle_code, fitted_dir=fitted_dir)
    except KeyboardInterrupt:
        _drop_pending_model(cl, result.parent_run_id)
        raise


def _drop_pending_model(cl: MlflowClient, run_id: str) -> None:
    """Delete the LoggedModel a Ctrl-C left PENDING in ``run_id`` (MLflow marks it FAILED only on an Exception)."""
    import mlflow
    from mlflow.entities import LoggedModelStatus

    try:
        lm = mlflow.last_logged_model()
        if lm is not None and lm.source_run_id == run_id and lm.status == LoggedModelStatus.PENDING:
            cl.delete_logged_model(lm.model_id)
    except Exception:  # best effort while the user is stopping the command
        logger.warning("could not delete the half-logged model of run %s", run_id, exc_info=True)


def _register_logged(cl: MlflowClient, cfg: PipelineConfig, result: Any, prepared: PreparedData, model_info: Any,
                     decision: gate_mod.GateDecision, lineage: dict[str, str],
                     current: dict[str, str], made: dict[str, str]) -> Registration:
    from mlflow.exceptions import MlflowException

    name = cfg.model_name
    try:
        cl.create_registered_model(name, description=f"mlops_ray pipeline {cfg.name} ({prepared.task})")
    except MlflowException as e:
        if e.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise
    tags = {**lineage, **decision.to_tags()}
    mv = cl.create_model_version(name, source=model_info.model_uri, run_id=result.parent_run_id, tags=tags,
                                 model_id=model_info.model_id)
    version = str(mv.version)
    made["version"] = version
    if decision.reason.endswith(PROMOTE_HINT.format(name=name)):  # the gate ran before the number existed
        decision.reason = decision.reason.removesuffix("VERSION") + version
        cl.set_model_version_tag(name, version, "mlops_ray.gate.reason", decision.reason)
    target = _target_aliases(decision, version, current)
    after = {**current, **{a: v for a, v in target.items() if v is not None}}
    after = {a: v for a, v in after.items() if target.get(a, v) is not None}
    card = _card(cfg, result, prepared, version, decision, lineage, after)
    card_path = f"{CARD_DIR}/{name}-v{version}.md"
    cl.log_text(result.parent_run_id, card, card_path)
    cl.update_model_version(name, version, description=card[:4900])
    cl.set_model_version_tag(name, version, TAG + "card", card_path)
    moves = move_aliases(cl, name, target, actor=GATE_ACTOR, reason=decision.reason)
    mark_step_success(cl, result.parent_run_id, "register", prepared.fingerprint, cfg,
                      extra={TAG + "registered_model": name, TAG + "registered_version": version})
    return Registration(name=name, version=version, accepted=decision.accepted, decision=decision, moves=moves,
                        aliases=after, model_uri=f"models:/{name}/{version}", run_id=result.parent_run_id,
                        model_id=model_info.model_id, card_path=card_path, lineage=lineage)


def _undo(cl: MlflowClient, name: str, model_info: Any, existed: bool, version: str | None,
          aliases: dict[str, str]) -> str:
    """Best-effort removal of what a failed registration left; returns what was undone."""
    done = []
    steps: list[tuple[str, Any]] = []
    if version is not None:
        steps.append((f"version {version} deleted", lambda: cl.delete_model_version(name, version)))
    if existed:
        steps.append(("aliases restored", lambda: restore_aliases(cl, name, aliases, list(ALIASES))))
    else:
        steps.append((f"registered model {name} deleted", lambda: cl.delete_registered_model(name)))
    steps.append((f"logged model {model_info.model_id} deleted", lambda: cl.delete_logged_model(model_info.model_id)))
    for what, fn in steps:
        try:
            fn()
            done.append(what)
        except Exception as e:
            done.append(f"{what.split(' deleted')[0]} NOT deleted ({type(e).__name__})")
    return "; ".join(done)


def mark_step_success(cl: MlflowClient, run_id: str, step: str, fingerprint: str, cfg: PipelineConfig,
                      extra: dict[str, str] | None = None) -> None:
    """Tag a run as a successful ``step`` for this data and config, so a later identical run can reuse it."""
    from mlops_ray.registry.cache import step_tags

    for k, v in {**step_tags(step, fingerprint, cfg), **(extra or {})}.items():
        cl.set_tag(run_id, k, v)


def _card(cfg: PipelineConfig, result: Any, prepared: PreparedData, version: str, decision: gate_mod.GateDecision,
          lineage: dict[str, str], aliases: dict[str, str]) -> str:
    f = prepared.features
    rep = prepared.report
    return model_card(
        name=cfg.model_name, version=version, task=prepared.task,
        lineage={k.removeprefix(TAG): v for k, v in lineage.items()
                 if not k.startswith((TAG + "holdout.", TAG + "cv_"))},
        data={"source": cfg.data.source.bundled or cfg.data.source.path, "target": f.target,
              "rows read / clean / rejected": f"{rep.rows_read} / {rep.rows_clean} / {rep.rows_rejected}",
              "train / holdout rows": f"{rep.rows_train or len(prepared.y_train)} / {len(prepared.y_holdout)}",
              "fingerprint": prepared.fingerprint},
        features={"inputs": ", ".join(f"{c} ({t})" for c, t in f.input_types().items()),
                  "model features": len(f.feature_names_out), "classes": f.classes if f.classes else "-"},
        config={"estimator": f"{result.model.kind}: {type(result.model.estimator).__name__}",
                "best config": result.best_config, "search": f"{cfg.tune.search}, {cfg.tune.num_samples} samples",
                "gate": cfg.registry.gate.model_dump()},
        cv={"metric": result.metric, "mean": float(result.cv_mean), "std": float(result.cv_std)},
        holdout={**(result.holdout_metrics or {}),
                 **{f"{k} (gate)": v for k, v in decision.challenger_metrics.items()}},
        decision=decision, aliases=sorted(a for a, v in aliases.items() if v == version),
    )


def format_registration(reg: Registration) -> str:
    """Human-readable summary for the CLI and the pipeline log."""
    if reg.cached:
        return (f"registry: reused {reg.name} v{reg.version} (same data fingerprint and config); "
                f"aliases {_fmt_aliases(reg.aliases)}")
    lines = [f"registry: {reg.name} v{reg.version} registered ({reg.model_uri}, run {reg.run_id})"]
    if reg.decision is not None:
        lines.append(reg.decision.summary())
    lines += [f"  alias {m.describe()}" for m in reg.moves]
    lines.append(f"  aliases now: {_fmt_aliases(reg.aliases)}; model card: {reg.card_path}")
    return "\n".join(lines)


def _fmt_aliases(aliases: dict[str, str]) -> str:
    return ", ".join(f"{a}=v{v}" for a, v in sorted(aliases.items())) or "none"
