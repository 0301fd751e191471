"""Registration, gate, aliases, lineage, model card and step cache against a real MLflow SQLite store."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from sklearn.linear_model import LogisticRegression

from mlops_ray.config import parse_config
from mlops_ray.exceptions import GateRejected, RegistryError
from mlops_ray.registry import (
    alias_history,
    find_cached_registration,
    find_cached_run,
    format_registration,
    load_fitted_model,
    promote,
    register_model,
    resolve_version,
    rollback,
)
from mlops_ray.registry import register as register_mod
from mlops_ray.runtime import Runtime, ensure_experiment
from tests._registry_support import FakeSearch, fit_features, fit_model, make_frame, make_prepared


def _cfg(**gate: object):
    return parse_config({"name": "regtest", "data": {"source": {"bundled": "iris"}, "target": "label"},
                         "registry": {"gate": {"n_bootstrap": 300, **gate}}})


@pytest.fixture
def setup(runtime: Runtime):
    df = make_frame(360, seed=1)
    train, hold = df.iloc[:200], df.iloc[200:]
    features = fit_features(train)
    prepared = make_prepared(train, hold, features)
    return runtime, train, prepared


def _search(runtime: Runtime, cfg, model) -> FakeSearch:
    exp_id = ensure_experiment(runtime, cfg.experiment_name)
    with mlflow.start_run(experiment_id=exp_id, run_name="search") as run:
        mlflow.log_metric("cv_mean", 0.9)
    return FakeSearch(model=model, parent_run_id=run.info.run_id, experiment_id=exp_id,
                      best_config={"C": 1.0}, holdout_metrics={"accuracy": 0.9})


def test_gate_moves_aliases_and_records_everything(setup) -> None:
    runtime, train, prepared = setup
    cfg = _cfg(thresholds={"accuracy": 0.4})
    weak = fit_model(train, LogisticRegression(), prepared.features, columns=["x2"])
    strong = fit_model(train, LogisticRegression(), prepared.features)

    first = register_model(cfg, runtime, _search(runtime, cfg, weak), prepared)
    assert first.accepted and first.version == "1" and first.aliases == {"champion": "1"}
    assert "first model" in first.decision.reason

    better = register_model(cfg, runtime, _search(runtime, cfg, strong), prepared)
    assert better.accepted, better.decision.reason
    assert better.aliases == {"champion": "2", "previous": "1"}
    assert better.decision.bootstrap.ci_low > 0
    text = format_registration(better)
    assert "ACCEPTED" in text and "champion -> v2 (was v1)" in text

    worse = register_model(cfg, runtime, _search(runtime, cfg, weak), prepared)
    assert not worse.accepted and worse.decision.reason.startswith("worse than the champion")
    assert worse.aliases == {"champion": "2", "previous": "1", "challenger": "3"}

    # The same estimator refit: identical predictions, a tie that must not replace the champion.
    tie = register_model(cfg, runtime, _search(runtime, cfg, fit_model(train, LogisticRegression(),
                                                                        prepared.features)), prepared)
    assert not tie.accepted and "tie within noise" in tie.decision.reason
    assert tie.aliases["champion"] == "2" and tie.aliases["challenger"] == "4"

    info = resolve_version(runtime, cfg.model_name)  # default alias: champion
    assert info.version == "2" and info.aliases == ["champion"]
    tags = info.tags
    assert tags["mlops_ray.data_fingerprint"] == prepared.fingerprint
    assert tags["mlops_ray.config_hash"] == cfg.config_hash()
    assert tags["mlops_ray.search_run_id"] == better.run_id
    assert tags["mlops_ray.code_version"] and tags["mlops_ray.ray_job_id"] == "none"
    assert tags["mlops_ray.holdout.accuracy"] == "0.9"
    assert tags["mlops_ray.gate.decision"] == "accepted" and float(tags["mlops_ray.gate.ci_low"]) > 0
    rejected = resolve_version(runtime, cfg.model_name, alias="challenger")
    assert rejected.gate["decision"] == "rejected" and "tie within noise" in rejected.gate["reason"]

    # The card is an artifact of the search run and the version's description.
    cl = MlflowClient(runtime.tracking_uri)
    card = Path(mlflow.artifacts.download_artifacts(run_id=better.run_id, artifact_path=better.card_path,
                                                    tracking_uri=runtime.tracking_uri)).read_text()
    assert "# regtest v2" in card and "beats the champion" in card and prepared.fingerprint in card
    assert cl.get_model_version(cfg.model_name, "2").description.startswith("# regtest v2")

    # Serve/monitor load the champion back as a FittedModel; it predicts like the in-memory one.
    champ = load_fitted_model(f"models:/{cfg.model_name}@champion", tracking_uri=runtime.tracking_uri)
    np.testing.assert_array_equal(champ.predict(prepared.holdout_frame), strong.predict(prepared.holdout_frame))
    bare = load_fitted_model(f"models:/{cfg.model_name}", tracking_uri=runtime.tracking_uri)  # a bare name: champion
    np.testing.assert_array_equal(bare.predict(prepared.holdout_frame), champ.predict(prepared.holdout_frame))

    # Explicit promotion and rollback, each recorded with who and why.
    with pytest.raises(RegistryError, match=r"has no version 9 \(versions: 4, 3, 2, 1\)"):  # a typo, said so
        promote(runtime, cfg.model_name, 9)
    moves = promote(runtime, cfg.model_name, 4, reason="ops wants v4", actor="alice")
    assert {m.alias: m.version for m in moves} == {"champion": "4", "previous": "2", "challenger": None}
    back = rollback(runtime, cfg.model_name, reason="v4 misbehaves", actor="bob")
    assert {m.alias: m.version for m in back} == {"champion": "2", "previous": "4"}
    history = alias_history(cl, cfg.model_name)
    last = history[-1]
    assert (last.actor, last.reason, last.replaced) in {("bob", "rollback: v4 misbehaves", "4"),
                                                      ("bob", "rollback: v4 misbehaves", "2")}
    assert any(m.actor == "alice" and m.alias == "champion" and m.version == "4" for m in history)
    assert any(m.actor == "gate" for m in history)
    v4_tags = cl.get_model_version(cfg.model_name, "4").tags
    assert any(json.loads(v)["actor"] == "bob" for k, v in v4_tags.items() if k.startswith("mlops_ray.move."))


def test_threshold_failure_leaves_no_champion(setup) -> None:
    runtime, train, prepared = setup
    cfg = _cfg(thresholds={"accuracy": 0.99})
    reg = register_model(cfg, runtime, _search(runtime, cfg, fit_model(train, LogisticRegression(),
                                                                       prepared.features)), prepared)
    assert not reg.accepted and reg.aliases == {"challenger": "1"}
    assert "accuracy" in reg.decision.reason and "< min 0.99" in reg.decision.reason
    with pytest.raises(GateRejected, match=r"v2 was registered as challenger but not promoted.*< min 0\.99"):
        register_model(cfg, runtime, _search(runtime, cfg, fit_model(train, LogisticRegression(),
                                                                     prepared.features)), prepared, enforce=True)
    assert resolve_version(runtime, cfg.model_name, alias="challenger").version == "2"
    with pytest.raises(RegistryError, match="no alias 'champion'"):
        resolve_version(runtime, cfg.model_name)
    with pytest.raises(RegistryError, match="no 'previous' version"):
        rollback(runtime, cfg.model_name)


def test_step_cache_finds_the_earlier_registration(setup) -> None:
    runtime, train, prepared = setup
    cfg = _cfg()
    assert find_cached_registration(runtime, cfg, prepared.fingerprint) is None
    reg = register_model(cfg, runtime, _search(runtime, cfg, fit_model(train, LogisticRegression(),
                                                                       prepared.features)), prepared)
    hit = find_cached_registration(runtime, cfg, prepared.fingerprint)
    assert hit is not None and hit.cached and (hit.name, hit.version) == (reg.name, reg.version)
    assert hit.run_id == reg.run_id and hit.accepted
    assert find_cached_run(runtime, cfg.experiment_name, prepared.fingerprint, cfg.config_hash(), "register") \
        == reg.run_id
    assert find_cached_registration(runtime, cfg, "another-fingerprint") is None
    other = _cfg(margin=0.01)  # a different gate: a different training config
    assert find_cached_registration(runtime, other, prepared.fingerprint) is None
    # An identical rerun (--no-cache) registered v2, rejected (a tie with v1): the cache answers with the
    # champion v1, not with the newest rejected copy of it.
    again = register_model(cfg, runtime, _search(runtime, cfg, fit_model(train, LogisticRegression(),
                                                                         prepared.features)), prepared)
    assert not again.accepted and again.version != reg.version
    hit = find_cached_registration(runtime, cfg, prepared.fingerprint)
    assert (hit.version, hit.accepted) == (reg.version, True)


def test_failure_after_logging_leaves_nothing_half_registered(setup, monkeypatch) -> None:
    runtime, train, prepared = setup
    cfg = _cfg()
    model = fit_model(train, LogisticRegression(), prepared.features)
    first = register_model(cfg, runtime, _search(runtime, cfg, model), prepared)
    assert first.aliases == {"champion": "1"}

    def broken(*args, **kwargs):
        from mlflow.exceptions import MlflowException

        raise MlflowException("simulated outage while moving aliases")

    # The fault is injected after the model was logged and the version created.
    monkeypatch.setattr(register_mod, "move_aliases", broken)
    search = _search(runtime, cfg, fit_model(train, LogisticRegression(C=0.5), prepared.features))
    with pytest.raises(RegistryError, match=r"simulated outage.*logged to run .*undone: version 2 deleted") as err:
        register_model(cfg, runtime, search, prepared)
    assert "aliases restored" in str(err.value) and "logged model m-" in str(err.value)
    assert "NOT deleted" not in str(err.value)
    cl = MlflowClient(runtime.tracking_uri)
    versions = cl.search_model_versions(f"name = '{cfg.model_name}'")
    assert [str(v.version) for v in versions] == ["1"]
    assert {a: str(v) for a, v in cl.get_registered_model(cfg.model_name).aliases.items()} == {"champion": "1"}
    assert "mlops_ray.step.register" not in cl.get_run(search.parent_run_id).data.tags

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    # Ctrl-C at the same point: the same undo (a rerun must not find version 2 half made).
    monkeypatch.setattr(register_mod, "move_aliases", interrupted)
    with pytest.raises(KeyboardInterrupt):
        register_model(cfg, runtime, _search(runtime, cfg, fit_model(train, LogisticRegression(C=0.25),
                                                                     prepared.features)), prepared)
    assert [str(v.version) for v in cl.search_model_versions(f"name = '{cfg.model_name}'")] == ["1"]


def test_ctrl_c_while_the_model_is_logged_leaves_no_pending_model(setup, monkeypatch) -> None:
    """MLflow marks a LoggedModel FAILED when saving raises an Exception, but leaves it PENDING on Ctrl-C."""
    runtime, train, prepared = setup
    cfg = _cfg()
    search = _search(runtime, cfg, fit_model(train, LogisticRegression(), prepared.features))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mlflow.pyfunc, "save_model", interrupted)  # after MLflow created the LoggedModel
    with pytest.raises(KeyboardInterrupt):
        register_model(cfg, runtime, search, prepared)
    experiment = MlflowClient(runtime.tracking_uri).get_run(search.parent_run_id).info.experiment_id
    left = mlflow.search_logged_models(experiment_ids=[experiment], output_format="list")
    assert [(m.model_id, str(m.status)) for m in left if m.source_run_id == search.parent_run_id] == []
    monkeypatch.undo()
    assert register_model(cfg, runtime, search, prepared).version == "1"  # the rerun starts clean


def test_model_path_that_does_not_exist(runtime: Runtime, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="does not exist"):
        load_fitted_model(tmp_path / "no" / "such" / "model")
    with pytest.raises(RegistryError, match="not an mlops_ray model"):
        load_fitted_model(tmp_path)
    with pytest.raises(RegistryError, match="could not load model 'models:/ghost/1'"):
        load_fitted_model("models:/ghost/1", tracking_uri=runtime.tracking_uri)
    with pytest.raises(RegistryError, match=r"no model 'ghost' is registered in sqlite:.*is that the right store"):
        load_fitted_model("models:/ghost", tracking_uri=runtime.tracking_uri)
    MlflowClient(runtime.tracking_uri).create_registered_model("ghost2")  # registered, but no champion yet
    with pytest.raises(RegistryError, match=r"has no version with alias 'champion' in .*`mlops-ray models ghost2`"):
        load_fitted_model("models:/ghost2", tracking_uri=runtime.tracking_uri)
    with pytest.raises(RegistryError, match=r"model 'ghost2' has no version 9: it has no versions yet"):
        resolve_version(runtime, "ghost2", version=9)  # what deploy --version 9 asks (was MLflow's raw text)
    with pytest.raises(RegistryError, match="no registered model named 'ghost'"):
        resolve_version(runtime, "ghost")
    with pytest.raises(RegistryError, match="no registered model named 'ghost'; see `mlops-ray models`"):
        promote(runtime, "ghost", 1)


def test_search_run_must_exist(setup) -> None:
    runtime, train, prepared = setup
    cfg = _cfg()
    search = FakeSearch(model=fit_model(train, LogisticRegression(), prepared.features),
                        parent_run_id="0" * 32, experiment_id="0")
    with pytest.raises(RegistryError, match="registering regtest failed"):
        register_model(cfg, runtime, search, prepared)
    assert MlflowClient(runtime.tracking_uri).search_registered_models() == []


def test_gate_compares_only_on_rows_the_champion_never_trained_on(setup) -> None:
    """A champion registered with another split seed trained on some of today's holdout rows: those rows
    would flatter it. The gate compares both models on the rows new to both, and says so."""
    from mlops_ray.data.hashing import holdout_mask

    runtime, train, prepared = setup
    rng = np.random.default_rng(0)
    prepared.holdout_hashes = rng.integers(0, 2**63, size=len(prepared.y_holdout), dtype=np.uint64)
    strong = fit_model(train, LogisticRegression(), prepared.features)
    first = register_model(_cfg(), runtime, _search(runtime, _cfg(), strong), prepared)
    assert first.accepted
    assert resolve_version(runtime, "regtest").tags["mlops_ray.split_seed"] == "0"

    def cfg_with(seed: int, fraction: float):
        return parse_config({"name": "regtest", "seed": seed, "data": {"source": {"bundled": "iris"}, "target": "label",
                                                                       "split": {"holdout_fraction": fraction}},
                             "registry": {"gate": {"n_bootstrap": 300}}})

    cfg = cfg_with(7, 0.5)
    new_to_v1 = holdout_mask(prepared.holdout_hashes, 0, 0.2)  # v1's split: seed 0, fraction 0.2
    again = register_model(cfg, runtime, _search(runtime, cfg, strong), prepared)
    n = int(new_to_v1.sum())
    assert 30 <= n < len(new_to_v1)
    assert f"compared on the {n} of {len(new_to_v1)} holdout rows that neither model trained on" in \
        again.decision.reason
    assert again.decision.bootstrap.n_rows == n

    # Too few rows new to the champion: no comparison, no promotion, and the reason says why.
    prepared.holdout_hashes = np.full(len(prepared.y_holdout), np.uint64(1), dtype=np.uint64)
    if holdout_mask(prepared.holdout_hashes, 0, 0.2).all():  # hash 1 falls in v1's holdout: pick one that does not
        prepared.holdout_hashes[:] = next(h for h in range(2, 1000)
                                          if not holdout_mask(np.array([h], np.uint64), 0, 0.2)[0])
    few = register_model(cfg, runtime, _search(runtime, cfg, strong), prepared)
    assert not few.accepted and "only 0 of the" in few.decision.reason and "another split" in few.decision.reason
    # The hint names the version just registered (the gate ran before its number existed).
    assert few.decision.reason.endswith(f"mlops-ray promote {cfg.model_name} {few.version}")
    tags = MlflowClient(runtime.tracking_uri).get_model_version(cfg.model_name, few.version).tags
    assert tags["mlops_ray.gate.reason"] == few.decision.reason
    # A champion split under an older row hash: the same seed put other rows in its holdout, so no
    # comparison is fair; refused with the reason (a model registered before this version's hash).
    cl = MlflowClient(runtime.tracking_uri)
    champ = cl.get_model_version_by_alias(cfg.model_name, "champion").version
    cl.set_model_version_tag(cfg.model_name, champ, "mlops_ray.split_scheme", "1")
    old = register_model(cfg, runtime, _search(runtime, cfg, strong), prepared)
    assert not old.accepted and f"cannot tell which holdout rows the champion v{champ} trained on (it was split " \
        "by scheme 1 of the row hash" in old.decision.reason
