"""Picking the best trial, printing the result, and the search plots."""

from __future__ import annotations

from pathlib import Path

from mlops_ray.tune.plots import plot_scores
from mlops_ray.tune.result import SearchResult, TrialSummary, format_result, pick_best
from mlops_ray.tune.tracking import trial_index, trial_status


def _t(i: int, mean: float | None, status: str = "completed", std: float = 0.01, **config: object) -> TrialSummary:
    return TrialSummary(trial_id=f"abc_{i:05d}", index=i, config=dict(config), status=status, cv_mean=mean,
                        cv_std=std)


def test_pick_best_uses_only_trials_that_scored_every_fold() -> None:
    trials = [_t(0, 0.8), _t(1, 0.95, status="stopped_early"), _t(2, 0.85, std=0.05), _t(3, 0.85, std=0.02),
              _t(4, None, status="error")]
    assert pick_best(trials, "max").index == 3  # ties broken by the smaller spread
    assert pick_best(trials, "min").index == 0
    assert pick_best([_t(0, None, status="error")], "max") is None


def test_status_from_last_result() -> None:
    assert trial_status({"final": True}) == "completed"
    assert trial_status({"final": False, "folds_done": 1}) == "stopped_early"
    assert trial_status({"trial_error": "ValueError: x", "final": True}) == "error"
    assert trial_status({}) == "not_run"
    assert trial_index("c8bbb_00012") == 12
    assert trial_index("e5d1f2a3", "3_C=0.1,l1_ratio=0.5") == 2  # a searcher's (Optuna's) trial: its tag counts


def test_plots_score_per_trial_and_per_parameter(tmp_path: Path) -> None:
    trials = [_t(0, 0.8, C=0.1, kernel="rbf", depth=None), _t(1, 0.9, C=10.0, kernel="linear", depth=3),
              _t(2, 0.7, status="stopped_early", C=1.0, kernel="rbf", depth=3), _t(3, None, status="error", C=2.0)]
    paths = plot_scores(trials, "accuracy", tmp_path)
    names = sorted(p.name for p in paths)
    assert names == ["score_per_trial.png", "score_vs_C.png", "score_vs_depth.png", "score_vs_kernel.png"]
    assert all(p.stat().st_size > 1000 and p.read_bytes()[:4] == b"\x89PNG" for p in paths)


def test_result_says_when_there_was_no_holdout() -> None:
    def result(holdout: dict[str, float]) -> SearchResult:
        return SearchResult(model=None, best_config={"C": 1.0}, best_trial_id="abc_00000", cv_mean=0.9,  # type: ignore[arg-type]
                            cv_std=0.01, metric="accuracy", mode="max", holdout_metrics=holdout, parent_run_id="r",
                            experiment_id="1", trials=[_t(0, 0.9)], search_settings={}, experiment_path="/x")

    assert "holdout: accuracy=0.8000" in format_result(result({"accuracy": 0.8}))
    assert "holdout: none (no holdout rows: raise data.split.holdout_fraction" in format_result(result({}))
