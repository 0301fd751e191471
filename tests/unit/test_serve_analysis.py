"""The canary analysis decision, on hand-made windows."""

from __future__ import annotations

import numpy as np

from mlops_ray.serve.analysis import Thresholds, WindowStats, analyze, prediction_psi
from mlops_ray.serve.rollout import Rollout
from mlops_ray.serve.state import ModelEntry, VersionInfo

TH = Thresholds(min_requests=20, max_error_rate_delta=0.02, max_p99_ratio=2.0, max_prediction_psi=0.25,
                max_accuracy_drop=0.05, min_labeled=10)


def window(n: int, latency: float = 5.0, errors: int = 0, preds: list[str] | None = None) -> WindowStats:
    w = WindowStats()
    rng = np.random.default_rng(0)
    labels = preds or ["a", "b"]
    for i in range(n):
        w.record(latency * (1 + 0.1 * rng.random()), ok=i >= errors, predictions=[labels[i % len(labels)]])
    return w


def test_too_few_canary_requests_is_not_judged() -> None:
    v = analyze(window(100), window(5), TH)
    assert v.verdict == "insufficient" and "min_requests 20" in v.reason


def test_a_similar_canary_passes() -> None:
    v = analyze(window(200), window(50), TH)
    assert v.verdict == "pass", v.reason
    assert v.metrics["prediction_psi"] < 0.01


def test_error_rate_delta_fails() -> None:
    v = analyze(window(200), window(50, errors=5), TH)
    assert v.verdict == "fail" and "error rate" in v.reason


def test_p99_ratio_fails() -> None:
    v = analyze(window(200, latency=5.0), window(150, latency=30.0), TH)
    assert v.verdict == "fail" and "p99 latency" in v.reason and v.metrics["p99_ratio"] > 2
    assert "over 150/200 answered requests" in v.reason and v.metrics["latency_quantile"] == "p99"


def test_a_small_window_compares_the_p90_so_one_slow_request_does_not_roll_back() -> None:
    canary = window(40, latency=5.0)
    canary.record(400.0, ok=True, predictions=["a"])  # one pause: it is the p99 of 41 samples
    v = analyze(window(200, latency=5.0), canary, TH)
    assert v.verdict == "pass", v.reason
    assert v.metrics["latency_quantile"] == "p90" and v.metrics["p90_ratio"] < 1.5 and "p90 ratio" in v.reason
    v = analyze(window(200, latency=5.0), window(40, latency=30.0), TH)  # a slow canary still fails
    assert v.verdict == "fail" and "p90 latency" in v.reason and "over 40/200 answered requests" in v.reason


def test_p99_ratio_ignores_sub_millisecond_noise() -> None:
    v = analyze(window(200, latency=0.01), window(150, latency=0.3), TH)
    assert v.verdict == "pass" and v.metrics["p99_ratio"] == 1.0


def test_shifted_predictions_fail_on_psi() -> None:
    v = analyze(window(200, preds=["a", "b"]), window(50, preds=["b", "b", "b", "a"]), TH)
    assert v.verdict == "fail" and "PSI" in v.reason


def test_labels_overrule_psi_and_psi_can_be_off() -> None:
    """A retrain after drift predicts differently from the model it replaces: labels, when there are
    enough, say whether that is better; PSI only stands in for them."""
    stable, canary = window(200, preds=["a", "b"]), window(50, preds=["b", "b", "b", "a"])
    assert "no feedback labels to judge by" in analyze(stable, canary, TH).reason
    for i in range(20):
        stable.record_feedback(i % 2 == 0)  # the degraded stable: 50%
        canary.record_feedback(True)
    v = analyze(stable, canary, TH)
    assert v.verdict == "pass" and v.metrics["prediction_psi"] > 0.25 and v.metrics["canary_accuracy"] == 1.0
    off = Thresholds(**{**TH.__dict__, "max_prediction_psi": None})
    v = analyze(window(200, preds=["a", "b"]), window(50, preds=["b", "b", "b", "a"]), off)
    assert v.verdict == "pass" and v.metrics["prediction_psi"] > 0.25  # still measured, shown


def test_accuracy_drop_fails_only_with_enough_labels() -> None:
    stable, canary = window(200), window(50)
    for i in range(20):
        stable.record_feedback(True)
        canary.record_feedback(i % 2 == 0)
    v = analyze(stable, canary, TH)
    assert v.verdict == "fail" and "accuracy" in v.reason
    few_s, few_c = window(200), window(50)
    few_c.record_feedback(False)
    few_s.record_feedback(True)
    assert analyze(few_s, few_c, TH).verdict == "pass"


def test_psi_for_numbers_and_labels() -> None:
    rng = np.random.default_rng(0)
    same = prediction_psi(list(rng.normal(size=2000)), list(rng.normal(size=2000)))
    shifted = prediction_psi(list(rng.normal(size=2000)), list(rng.normal(2.0, size=2000)))
    assert same < 0.05 < 1.0 < shifted
    assert prediction_psi(["a"] * 50, ["c"] * 50) > 5  # an unseen class is large but finite
    assert prediction_psi([], ["a"]) == 0.0


def test_entry_tick_steps_and_rolls_back_on_schedule() -> None:
    e = ModelEntry(Rollout("m"))
    meta = {"schema": {"columns": ["x"], "types": {"x": "double"}, "nullable": {}}}
    e.deploy(VersionInfo("1", "app-1", meta=meta), 0.0, None, None)
    e.deploy(VersionInfo("2", "app-2", meta=meta), 0.0, None, [10, 50, 100])
    assert e.tick(5.0, TH, window_s=10.0) is None  # window not over
    for _ in range(30):
        e.window("1").record(5.0, True, ["a"])
        e.window("2").record(5.0, True, ["a"])
    d = e.tick(10.0, TH, window_s=10.0)
    assert d is not None and d.action == "step" and e.rollout.weights() == {"1": 50.0, "2": 50.0}
    assert e.window("2").requests == 0 and e.window("1").requests == 30  # stable keeps its baseline
    for _ in range(30):
        e.window("2").record(5.0, True, ["b"])
    d = e.tick(20.0, TH, window_s=10.0)
    assert d is not None and d.action == "rollback"
    assert [g.version for g in e.retire()] == ["2"] and e.router.choose() == "1"


def test_feedback_scores_the_version_that_answered() -> None:
    e = ModelEntry(Rollout("m"))
    e.remember("r1", "1", ["pos"])
    assert e.feedback("r1", "pos") and not e.feedback("nope", "pos")
    assert e.window("1").accuracy == 1.0
    # A request of three rows: the plain id is its row 0, "<id>#k" its row k, a row it lacks is unknown.
    e.remember("r2", "1", ["neg", "pos", "neg"])
    assert e.feedback("r2", "neg") and e.feedback("r2#1", "pos") and e.feedback("r2#2", "neg")
    assert not e.feedback("r2#3", "neg") and e.window("1").accuracy == 1.0  # was scored against the whole list


def test_labels_count_once_and_only_in_the_window_that_answered() -> None:
    """A label for a request answered before the canary began, or sent twice, must not weigh a window."""
    e = ModelEntry(Rollout("m"))
    meta = {"schema": {"columns": ["a"], "types": {"a": "double"}}}
    e.deploy(VersionInfo("1", "app-1", meta=meta), 0.0, None, None)
    e.window("1").record(5.0, True, ["pos"])
    e.remember("old", "1", ["pos"])
    e.deploy(VersionInfo("2", "app-2", meta=meta), 0.0, None, [10, 50, 100])  # fresh windows on both sides
    e.window("1").record(5.0, True, ["pos"])
    e.remember("new", "1", ["pos"])
    assert e.feedback("old", "neg") and e.feedback("new", "pos") and e.feedback("new", "neg")  # all matched
    assert (e.window("1").labeled, e.window("1").accuracy) == (1, 1.0)  # only "new", once
