"""The FoldStore actor on the session's Ray: waiters wake when a fold is grown, and no claim outlives its grower."""

from __future__ import annotations

import time

import ray

from mlops_ray.tune.fold_claims import FoldStore


@ray.remote(num_cpus=0)
class _Trial:
    """A trial process blocked in take(), as one is while another trial grows the folds it needs."""

    def take(self, store: object, folds: list[int], trial_id: str) -> tuple[int, object]:
        return ray.get(store.take.remote("g", folds, trial_id, 0))  # type: ignore[attr-defined]


def test_a_waiter_gets_the_scores_as_soon_as_they_are_put(ray_session: str) -> None:
    store = ray.remote(num_cpus=0)(FoldStore).remote(stale_after_s=60.0, poll_s=10.0)
    try:
        assert tuple(ray.get(store.take.remote("g", [0], "y", 0))) == (0, None)  # y grows fold 0
        waiting = store.take.remote("g", [0], "z", 0)
        assert not ray.wait([waiting], timeout=0.5)[0]
        t0 = time.monotonic()
        ray.get(store.put.remote("g", 0, {"25": {"acc": 0.9}}))
        assert tuple(ray.get(waiting, timeout=5)) == (0, {"25": {"acc": 0.9}})
        assert time.monotonic() - t0 < 2  # woken by the put, not by the 10 s poll
    finally:
        ray.kill(store)


def test_a_claim_granted_to_a_dead_waiter_goes_stale_and_is_grown_by_another(ray_session: str) -> None:
    """Found by review: a waiter killed in take() was later handed the claim its grower gave back, and the
    group waited for it; untouched claims now expire."""
    store = ray.remote(num_cpus=0)(FoldStore).remote(stale_after_s=2.0, poll_s=0.2)
    trial = _Trial.remote()
    try:
        assert tuple(ray.get(store.take.remote("g", [0], "y", 0))) == (0, None)  # y grows fold 0
        trial.take.remote(store, [0], "x")  # x waits for it
        time.sleep(1.0)
        ray.kill(trial)  # x's worker dies while it waits: the store cannot tell
        assert ray.get(store.release_trial.remote("x")) == 0  # the driver's callback finds nothing to free
        assert ray.get(store.release_trial.remote("y")) == 1  # y dies too: fold 0 goes to the dead x's call
        time.sleep(0.5)
        assert ray.get(store.stats.remote()) == {"done": 0, "claimed": 1}  # held by nobody alive
        t0 = time.monotonic()
        got = ray.get(store.take.remote("g", [0], "z", 0), timeout=30)
        assert tuple(got) == (0, None) and time.monotonic() - t0 < 10  # z grows it after 2 s untouched
    finally:
        ray.kill(store)
