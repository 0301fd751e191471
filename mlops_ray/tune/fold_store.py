"""Ray glue for shared warm-start paths: the search's ``FoldStore`` actor, the driver callback that gives
back a failed trial's claims, and the trial's side of the store (``RayFoldSource``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import ray
from ray import tune

from mlops_ray.tune.cv import FoldScore


def store_name(experiment: str) -> str:
    """Named after the experiment, so that a resumed search's restored callback finds the new store."""
    return f"mlops_ray-fold-store-{experiment}"


def start_fold_store(experiment: str) -> Any:
    import time

    from mlops_ray.tune.fold_claims import FoldStore

    name = store_name(experiment)
    try:  # left by an interrupted search of this driver: its scores may be stale, start empty
        ray.kill(ray.get_actor(name))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            ray.get_actor(name)
            time.sleep(0.05)
    except ValueError:
        pass
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    # No CPU: it only holds scores, and must never wait for a slot the trials hold. On the driver's node:
    # a worker node that dies (or is scaled down) must not take every trial's shared scores with it.
    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(), soft=True)
    return ray.remote(num_cpus=0)(FoldStore).options(name=name, scheduling_strategy=here).remote()


def stop_fold_store(store: Any) -> None:
    try:
        ray.kill(store)
    except Exception:  # already gone with its node: nothing to free
        pass


class FoldStoreCallback(tune.Callback):
    """Gives back the claims of a trial that ended or whose worker died, so that no trial waits for them."""

    def __init__(self, experiment: str) -> None:
        self.name = store_name(experiment)
        self._store: Any = None

    def __getstate__(self) -> dict[str, Any]:  # Tune saves callbacks with the experiment: never a handle
        return {"name": self.name}

    def __setstate__(self, d: dict[str, Any]) -> None:
        self.name, self._store = d["name"], None

    def _release(self, trial: Any) -> None:
        try:
            if self._store is None:
                self._store = ray.get_actor(self.name)
            self._store.release_trial.remote(trial.trial_id)
        except ValueError:  # no store (the search shares no paths, or it is being torn down)
            pass

    def on_trial_complete(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._release(trial)

    def on_trial_recover(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._release(trial)

    def on_trial_error(self, iteration: int, trials: list[Any], trial: Any, **info: Any) -> None:
        self._release(trial)


class RayFoldSource:
    """One trial's view of the store, for ``iter_path_cv``."""

    def __init__(self, store: Any, group: str, trial_id: str) -> None:
        self.store, self.group, self.trial_id = store, group, trial_id

    def take(self, folds: list[int], worker: int) -> tuple[int, dict[int, FoldScore] | None]:
        fold, scores = ray.get(self.store.take.remote(self.group, folds, self.trial_id, worker))
        return fold, None if scores is None else {int(n): FoldScore(**s) for n, s in scores.items()}

    def put(self, fold: int, scores: dict[int, FoldScore]) -> None:
        # Plain dicts: the store's process never needs this package's classes to hold them.
        ray.get(self.store.put.remote(self.group, fold, {n: asdict(s) for n, s in scores.items()}))

    def touch(self, folds: list[int], worker: int) -> None:
        self.store.touch.remote(self.group, folds, self.trial_id, worker)  # no reply needed

    def drop(self, fold: int, worker: int) -> None:
        try:
            ray.get(self.store.drop.remote(self.group, fold, self.trial_id, worker))
        except ray.exceptions.RayError:  # the store is gone: there is no claim left to give back
            pass
