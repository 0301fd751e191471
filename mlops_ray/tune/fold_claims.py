"""Which trial grows which (group, fold) path, and the finished paths' scores.

``FoldClaims`` is the bookkeeping, plain Python. ``FoldStore`` wraps it as a Ray async actor (one per
search, created by the driver): a trial asks for any of the folds it still needs and gets a finished
one, or a claim to grow one no one is growing, or waits until something changes. A claim lives only
while its grower says so: the growing trial touches its claims every few seconds (``touch``), and a
claim not touched for ``stale_after_s`` is granted to the next asker. That covers every way a grower can
vanish (its worker killed, a claim granted to a waiter whose process had died) without knowing how, and a
slow but live grower is never duplicated. The driver also gives back the claims of a trial that ended or
failed at once (``release_trial``). Imports nothing heavy: the actor's process loads only this module.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

Key = tuple[str, int]  # (group, fold)


# The grower touches its claims this often; a claim untouched for STALE_AFTER_S is given to the next asker.
HEARTBEAT_S = 5.0
STALE_AFTER_S = 60.0


@dataclass
class _Claim:
    trial_id: str
    worker: int
    since: float
    touched: float


@dataclass
class FoldClaims:
    """``stale_after_s``: how long a claim stays live without a ``touch`` from its grower."""

    stale_after_s: float = STALE_AFTER_S
    done: dict[Key, Any] = field(default_factory=dict)
    claims: dict[Key, _Claim] = field(default_factory=dict)
    slowest_s: float = 0.0  # the longest a fold took to grow (for stats)

    def take(self, group: str, folds: list[int], trial_id: str, worker: int,
             now: float) -> tuple[str, int | None, Any]:
        """("done", fold, scores) | ("grow", fold, None): now claimed by the caller | ("wait", None, None)."""
        for f in folds:
            if (group, f) in self.done:
                return "done", f, self.done[(group, f)]
        for f in folds:
            claim = self.claims.get((group, f))
            if claim is None or now - claim.touched > self.stale_after_s:
                self.claims[(group, f)] = _Claim(trial_id, worker, now, now)
                return "grow", f, None
        return "wait", None, None

    def put(self, group: str, fold: int, scores: Any, now: float) -> None:
        self.done[(group, fold)] = scores
        claim = self.claims.pop((group, fold), None)
        if claim is not None:
            self.slowest_s = max(self.slowest_s, now - claim.since)

    def touch(self, group: str, folds: list[int], trial_id: str, worker: int, now: float) -> None:
        """The grower is alive: keep its claims on ``folds``."""
        for f in folds:
            claim = self.claims.get((group, f))
            if claim is not None and (claim.trial_id, claim.worker) == (trial_id, worker):
                claim.touched = now

    def drop(self, group: str, fold: int, trial_id: str, worker: int) -> bool:
        claim = self.claims.get((group, fold))
        if claim is None or (claim.trial_id, claim.worker) != (trial_id, worker):
            return False
        del self.claims[(group, fold)]
        return True

    def release_trial(self, trial_id: str) -> int:
        """Give back every claim of a trial (its worker died or it ended); returns how many."""
        keys = [k for k, c in self.claims.items() if c.trial_id == trial_id]
        for k in keys:
            del self.claims[k]
        return len(keys)


class FoldStore:
    """The Ray actor (async: waiting trials do not block the others' calls)."""

    def __init__(self, stale_after_s: float = STALE_AFTER_S, poll_s: float = 10.0) -> None:
        self.claims = FoldClaims(stale_after_s=stale_after_s)
        self.poll_s = poll_s  # waiters re-check this often even without news (a claim may have gone stale)
        self._changed = asyncio.Event()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def take(self, group: str, folds: list[int], trial_id: str, worker: int) -> tuple[int, Any]:
        while True:
            kind, fold, scores = self.claims.take(group, folds, trial_id, worker, time.monotonic())
            if kind != "wait":
                return fold, scores  # type: ignore[return-value]
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), timeout=self.poll_s)
            except TimeoutError:
                pass

    def touch(self, group: str, folds: list[int], trial_id: str, worker: int) -> None:
        self.claims.touch(group, folds, trial_id, worker, time.monotonic())

    def put(self, group: str, fold: int, scores: Any) -> None:
        self.claims.put(group, fold, scores, time.monotonic())
        self._notify()

    def drop(self, group: str, fold: int, trial_id: str, worker: int) -> None:
        if self.claims.drop(group, fold, trial_id, worker):
            self._notify()

    def release_trial(self, trial_id: str) -> int:
        n = self.claims.release_trial(trial_id)
        if n:
            self._notify()
        return n

    def stats(self) -> dict[str, int]:
        return {"done": len(self.claims.done), "claimed": len(self.claims.claims)}
