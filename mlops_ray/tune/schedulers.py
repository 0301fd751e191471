"""ASHA that records the trials it stops, so that a trial the time budget cut is not called "stopped early".

Tune ends both the same way (TERMINATED, last result before the final fold); only the scheduler knows
which of them it stopped. The ids go to a file in the experiment folder, so a resumed search (whose
scheduler Tune restores from its own pickle) adds to the same list.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

STOPPED_FILE = "mlops_ray_asha_stopped.txt"


class RecordingASHA(ASHAScheduler):
    def __init__(self, *, record_to: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.record_to = record_to

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict[str, Any]) -> str:
        decision = super().on_trial_result(tune_controller, trial, result)
        if decision == TrialScheduler.STOP:  # also at max_t: such a trial is final, "completed" all the same
            path = Path(self.record_to)
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("a") as f:
                f.write(f"{trial.trial_id}\n")
        return decision


def asha_stopped(experiment_path: str | Path) -> set[str]:
    """The trial ids ASHA stopped in this experiment (empty without ASHA)."""
    path = Path(experiment_path) / STOPPED_FILE
    return set(path.read_text().split()) if path.is_file() else set()
