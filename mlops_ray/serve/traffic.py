"""Traffic weights and the weighted choice the ingress makes per request (pure: no Ray)."""

from __future__ import annotations

import bisect
import random
from collections.abc import Mapping

from mlops_ray.exceptions import ServeError


def normalize_weights(weights: Mapping[str, float]) -> dict[str, float]:
    """Percentages that sum to 100, dropping zero entries; raises ServeError on negative or empty weights."""
    bad = {v: w for v, w in weights.items() if w < 0 or w != w}
    if bad:
        raise ServeError(f"traffic weights must be >= 0, got {bad}")
    total = float(sum(weights.values()))
    if total <= 0:
        raise ServeError(f"traffic weights {dict(weights)} send no traffic anywhere; give one version a weight > 0")
    return {v: 100.0 * w / total for v, w in weights.items() if w > 0}


class WeightedRouter:
    """Picks a version per request in proportion to its weight; O(log n) per pick."""

    def __init__(self, weights: Mapping[str, float], rng: random.Random | None = None) -> None:
        norm = normalize_weights(weights)
        self.weights = norm
        self._versions = list(norm)
        self._cum: list[float] = []
        acc = 0.0
        for v in self._versions:
            acc += norm[v]
            self._cum.append(acc)
        self._rng = rng or random.Random()

    def choose(self) -> str:
        if len(self._versions) == 1:
            return self._versions[0]
        x = self._rng.random() * self._cum[-1]
        i = bisect.bisect_right(self._cum, x)
        return self._versions[min(i, len(self._versions) - 1)]
