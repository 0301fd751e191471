"""Search plots for the MLflow parent run: score per trial, and score against each hyperparameter.

Matplotlib with the Agg backend (no display needed); pure apart from writing PNG files.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mlops_ray.tune.result import TrialSummary


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _scored(trials: list[TrialSummary]) -> list[TrialSummary]:
    return [t for t in trials if t.cv_mean is not None and math.isfinite(t.cv_mean)]


def plot_scores(trials: list[TrialSummary], metric: str, out_dir: Path) -> list[Path]:
    """Write ``score_per_trial.png`` and one ``score_vs_<param>.png`` per searched parameter."""
    plt = _plt()
    out_dir.mkdir(parents=True, exist_ok=True)
    scored = _scored(trials)
    paths: list[Path] = []
    if not scored:
        return paths
    colors = {"completed": "tab:blue", "stopped_early": "tab:orange", "time_budget": "tab:gray"}

    fig, ax = plt.subplots(figsize=(max(6.0, 0.25 * len(scored) + 2), 4))
    for i, t in enumerate(scored):
        ax.errorbar(i, t.cv_mean, yerr=t.cv_std if t.cv_std and math.isfinite(t.cv_std) else None, fmt="o",
                    color=colors.get(t.status, "tab:gray"), capsize=3)
    ax.set_xticks(range(len(scored)), [str(t.index) for t in scored], fontsize=7)
    ax.set_xlabel("trial (blue: all folds, orange: stopped early by the scheduler)")
    ax.set_ylabel(f"CV {metric} (mean ± std over folds)")
    ax.set_title("Score per trial")
    fig.tight_layout()
    paths.append(out_dir / "score_per_trial.png")
    fig.savefig(paths[-1], dpi=100)
    plt.close(fig)

    params = sorted({k for t in scored for k in t.config})
    for name in params:
        fig, ax = plt.subplots(figsize=(6, 4))
        values = [t.config.get(name) for t in scored]
        numeric = all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        if numeric:
            xs: list[Any] = values
        else:  # categorical (None, strings, tuples): one position per distinct value
            cats = sorted({repr(v) for v in values})
            xs = [cats.index(repr(v)) for v in values]
            ax.set_xticks(range(len(cats)), cats, rotation=30, fontsize=8)
        ys = [t.cv_mean for t in scored]
        ax.scatter(xs, ys, c=[colors.get(t.status, "tab:gray") for t in scored])
        if numeric and len(set(values)) > 1 and min(values) > 0 and max(values) / min(values) > 100:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(f"CV {metric}")
        ax.set_title(f"CV {metric} against {name}")
        fig.tight_layout()
        safe = "".join(c if c.isalnum() or c in "_-" else "_" for c in name)
        paths.append(out_dir / f"score_vs_{safe}.png")
        fig.savefig(paths[-1], dpi=100)
        plt.close(fig)
    return paths
