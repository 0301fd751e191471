"""The rollout state machine and the weighted router, without Ray."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from mlops_ray.exceptions import ServeError
from mlops_ray.serve.rollout import Rollout
from mlops_ray.serve.traffic import WeightedRouter, normalize_weights


def test_first_version_takes_all_traffic() -> None:
    r = Rollout("m")
    d = r.deploy("1", now=0.0)
    assert d.action == "deploy" and r.weights() == {"1": 100.0} and r.phase == "stable"


def test_canary_steps_through_config_steps_then_promotes() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    d = r.deploy("2", 1.0, steps=[10.0, 50.0, 100.0])
    assert d.action == "canary" and r.weights() == {"1": 90.0, "2": 10.0}
    assert r.on_window("pass", 2.0, "ok").action == "step"
    assert r.weights() == {"1": 50.0, "2": 50.0}
    assert r.on_window("pass", 3.0, "ok").action == "step"
    assert r.weights() == {"2": 100.0}
    d = r.on_window("pass", 4.0, "ok")
    assert d.action == "promote" and r.stable == "2" and r.previous == "1" and r.canary is None
    assert r.weights() == {"2": 100.0} and r.warm_versions() == ["2", "1"]


def test_insufficient_window_extends_without_stepping_and_collapses_in_history() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    r.deploy("2", 1.0)
    r.on_window("insufficient", 5.0, "3 requests")
    r.on_window("insufficient", 9.0, "4 requests")
    assert r.step == 0 and r.window_started == 9.0
    assert [d.action for d in r.decisions] == ["deploy", "canary", "extend"]


def test_failed_window_rolls_back_at_once_and_keeps_previous() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    r.deploy("2", 1.0)
    r.on_window("pass", 2.0, "ok")
    d = r.on_window("fail", 3.0, "PSI 0.9 > 0.25")
    assert d.action == "rollback" and d.version == "2" and "PSI" in d.reason
    assert r.weights() == {"1": 100.0} and r.canary is None and r.warm_versions() == ["1"]


def test_canary_pct_sets_first_step_and_100_is_a_direct_switch() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    r.deploy("2", 1.0, canary_pct=25, steps=[10, 50, 100])
    assert r.steps == [25, 50, 100]
    r.rollback(2.0)
    r.deploy("3", 3.0, canary_pct=100)
    assert r.weights() == {"3": 100.0} and r.previous == "1"


def test_manual_rollback_swaps_with_warm_previous_and_back() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    r.deploy("2", 1.0, canary_pct=100)
    d = r.rollback(2.0, "bad")
    assert d.action == "manual_rollback" and r.weights() == {"1": 100.0} and r.previous == "2"
    r.rollback(3.0)
    assert r.weights() == {"2": 100.0}


def test_errors_name_the_way_out() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    with pytest.raises(ServeError, match="nothing to roll back"):
        r.rollback(1.0)
    with pytest.raises(ServeError, match="no canary"):
        r.promote(1.0)
    r.deploy("2", 1.0)
    with pytest.raises(ServeError, match="still a canary"):
        r.deploy("3", 2.0)
    with pytest.raises(ServeError, match=r"\(0, 100\]"):
        Rollout("x", stable="1").deploy("2", 0.0, canary_pct=150)


def test_manual_promote_skips_steps() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    r.deploy("2", 1.0)
    assert r.promote(2.0).action == "manual_promote" and r.stable == "2" and r.previous == "1"


def test_redeploying_the_stable_version_is_a_noop() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    for t in (1.0, 2.0, 3.0):  # cached reruns of a pipeline redeploy its champion
        d = r.deploy("1", t)
    assert r.weights() == {"1": 100.0} and r.previous is None
    assert "already serves all traffic" in d.reason
    assert [x.reason for x in r.decisions] == ["first version: all traffic"]  # no line per rerun


def test_state_round_trips_through_dict() -> None:
    r = Rollout("m")
    r.deploy("1", 0.0)
    r.deploy("2", 1.0)
    r.on_window("pass", 2.0, "ok", {"psi": 0.01})
    back = Rollout.from_dict(r.to_dict())
    assert back.weights() == r.weights() and back.decisions == r.decisions


def test_router_follows_weights() -> None:
    router = WeightedRouter({"1": 90.0, "2": 10.0}, rng=random.Random(0))
    counts = Counter(router.choose() for _ in range(20_000))
    assert abs(counts["2"] / 20_000 - 0.10) < 0.01
    assert WeightedRouter({"1": 100.0}).choose() == "1"


def test_weights_are_checked() -> None:
    assert normalize_weights({"a": 1, "b": 3}) == {"a": 25.0, "b": 75.0}
    with pytest.raises(ServeError, match=">= 0"):
        normalize_weights({"a": -1})
    with pytest.raises(ServeError, match="no traffic"):
        normalize_weights({"a": 0})


def test_the_pipeline_deploys_the_champion_never_a_rejected_challenger() -> None:
    from types import SimpleNamespace

    from mlops_ray.serve.controller import pipeline_target

    accepted = SimpleNamespace(name="m", version="3", accepted=True, aliases={"champion": "3", "previous": "2"})
    assert pipeline_target(accepted) == "3"
    rejected = SimpleNamespace(name="m", version="4", accepted=False, aliases={"champion": "3", "challenger": "4"})
    assert pipeline_target(rejected) == "3"  # the champion keeps serving; v4 gets no traffic
    # A cached registration whose version was rolled back since: the current champion, not the cached one.
    rolled_back = SimpleNamespace(name="m", version="3", accepted=True, aliases={"champion": "2", "previous": "3"})
    assert pipeline_target(rolled_back) == "2"
    with pytest.raises(ServeError, match=r"no champion to serve.*mlops-ray deploy m --version 1"):
        pipeline_target(SimpleNamespace(name="m", version="1", accepted=False, aliases={"challenger": "1"}))


def test_status_says_when_the_registry_missed_a_decision() -> None:
    """A promotion the MLflow store could not record left the champion alias on another version, unseen."""
    from mlops_ray.serve.client import format_status
    from mlops_ray.serve.state import ModelEntry

    entry = ModelEntry(Rollout("m"))
    entry.rollout.deploy("1", 0.0)
    assert entry.summary()["record_error"] is None
    entry.record_error = "promote v2: OperationalError: database is locked"
    st = {"running": True, "app_name": "a", "url": "http://x", "models": {"m": entry.summary()}}
    text = format_status(st)
    assert "! not recorded in the registry (promote v2: OperationalError: database is locked)" in text
    assert "`mlops-ray promote m 1`" in text
