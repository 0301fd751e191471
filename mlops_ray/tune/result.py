"""What a search returns (handed to the registry stage) and how it prints."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from mlops_ray.tune.fitted import FittedModel


@dataclass
class TrialSummary:
    """One trial as the search saw it; ``status`` is completed, stopped_early (by ASHA), time_budget (cut by
    ``tune.time_budget_s``), error or not_run."""

    trial_id: str
    index: int
    config: dict[str, Any]
    status: str
    folds_done: int = 0
    fold_scores: list[float] = field(default_factory=list)  # the optimised metric, per fold, in fold order
    cv_mean: float | None = None
    cv_std: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)  # mean_<m>/std_<m> over the folds done
    error: str | None = None
    num_failures: int = 0  # worker deaths Tune retried
    run_id: str | None = None  # the MLflow child run
    seconds: float | None = None
    device: str = "cpu"  # where the trial trained: cuda when Ray gave it a GPU (torch_mlp)
    folds_reused: int = 0  # folds scored by another trial's warm-start path (tune.warm_start_path)


@dataclass
class SearchResult:
    """The winner refit on all training rows, its scores, and where everything was recorded."""

    model: FittedModel
    best_config: dict[str, Any]
    best_trial_id: str
    cv_mean: float
    cv_std: float
    metric: str
    mode: str
    holdout_metrics: dict[str, float]
    parent_run_id: str
    experiment_id: str
    trials: list[TrialSummary]
    search_settings: dict[str, Any]
    experiment_path: str
    seconds: float = 0.0
    resumed: bool = False
    refit_on: str = "ray_task"  # where the winner was refit: "driver" (one-node Ray) or "ray_task"
    refit_s: float = 0.0

    @property
    def n_completed(self) -> int:
        return sum(t.status == "completed" for t in self.trials)

    @property
    def holdout_score(self) -> float:
        return self.holdout_metrics[self.metric]


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}" if math.isfinite(v) else str(v)
    return repr(v) if isinstance(v, str) else str(v)


def format_result(result: SearchResult) -> str:
    """A few lines for the terminal: best config, CV and holdout scores, trial counts, the MLflow run."""
    counts: dict[str, int] = {}
    for t in result.trials:
        counts[t.status] = counts.get(t.status, 0) + 1
    cfg = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(result.best_config.items())) or "(estimator defaults)"
    holdout = ", ".join(f"{k}={v:.4f}" for k, v in sorted(result.holdout_metrics.items())) or \
        "none (no holdout rows: raise data.split.holdout_fraction or add rows)"
    lines = [
        f"search: {len(result.trials)} trials ({', '.join(f'{n} {s}' for s, n in sorted(counts.items()))}) "
        f"in {result.seconds:.1f}s{' (resumed)' if result.resumed else ''}",
        f"best ({result.metric}, {result.mode}): CV {result.cv_mean:.4f} ± {result.cv_std:.4f}  [{cfg}]",
        f"holdout: {holdout}",
        f"MLflow parent run {result.parent_run_id} (experiment {result.experiment_id}); "
        f"Tune experiment at {result.experiment_path}",
    ]
    return "\n".join(lines)


def pick_best(trials: list[TrialSummary], mode: str) -> TrialSummary | None:
    """The best trial that scored every fold (ties: smaller spread, then the earlier trial)."""
    full = [t for t in trials if t.status == "completed" and t.cv_mean is not None and math.isfinite(t.cv_mean)]
    if not full:
        return None
    sign = -1.0 if mode == "max" else 1.0
    return min(full, key=lambda t: (sign * t.cv_mean,  # type: ignore[operator]
                                    t.cv_std if t.cv_std is not None and math.isfinite(t.cv_std) else math.inf,
                                    t.index))
