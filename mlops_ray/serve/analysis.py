"""Canary analysis: is the canary as good as stable over one window? (pure: numbers in, verdict out)

Compared per window: error rate (canary minus stable), p99 latency (canary over stable), and either
accuracy on feedback labels (when enough arrived on both sides) or, without them, the distribution of
predictions (PSI, canary against stable) as a stand-in.
A window with fewer than ``min_requests`` canary requests is not judged: it is extended.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

MAX_SAMPLES = 5000  # per version and window: bounded memory under any load
P99_FLOOR_MS = 1.0  # below this, latency differences are noise
# A p99 of fewer samples is one or two requests (a GC pause): below this many on either side the latency
# check compares the p90, which 10 samples already support.
P99_MIN_SAMPLES = 100
PSI_EPS = 1e-4


@dataclass
class WindowStats:
    """What one version did during one analysis window (fed by the ingress per request)."""

    requests: int = 0
    errors: int = 0  # server-side failures (5xx); a client's bad input (4xx) is not the model's fault
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    predictions: deque[Any] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    labeled: int = 0
    correct: int = 0
    started: float = field(default_factory=time.time)  # a label for a request answered before belongs elsewhere

    def record(self, latency_ms: float, ok: bool, predictions: Iterable[Any] = ()) -> None:
        self.requests += 1
        if not ok:
            self.errors += 1
            return
        self.latencies_ms.append(latency_ms)
        self.predictions.extend(predictions)

    def record_feedback(self, correct: bool) -> None:
        self.labeled += 1
        self.correct += int(correct)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.labeled if self.labeled else None

    def p99_ms(self) -> float | None:
        return self.quantile_ms(99)

    def quantile_ms(self, q: float) -> float | None:
        return float(np.percentile(np.fromiter(self.latencies_ms, float), q)) if self.latencies_ms else None


@dataclass(frozen=True)
class Thresholds:
    """The limits a canary must stay within (``serve.canary`` in the config)."""

    min_requests: int = 20
    max_error_rate_delta: float = 0.02
    max_p99_ratio: float = 2.0
    max_prediction_psi: float | None = 0.25  # None: predictions may shift (labels alone judge)
    max_accuracy_drop: float = 0.05
    min_labeled: int = 10  # accuracy is compared only with this many labels on each side

    @classmethod
    def from_spec(cls, spec: Any) -> Thresholds:
        return cls(min_requests=spec.min_requests, max_error_rate_delta=spec.max_error_rate_delta,
                   max_p99_ratio=spec.max_p99_ratio, max_prediction_psi=spec.max_prediction_psi,
                   max_accuracy_drop=spec.max_accuracy_drop)


@dataclass
class Verdict:
    verdict: Literal["pass", "fail", "insufficient"]
    reason: str
    metrics: dict[str, Any]


def prediction_psi(expected: Sequence[Any], actual: Sequence[Any], bins: int = 10) -> float:
    """Population stability index of ``actual`` against ``expected``.

    Labels (str, bool, int classes) are compared as categories; floats go into quantile bins of
    ``expected``. Empty bins get a small epsilon so that an unseen class gives a large, finite PSI.
    """
    if not expected or not actual:
        return 0.0
    if all(isinstance(x, str | bool | int | np.integer) for x in expected[:100]):
        e_counts, a_counts = Counter(map(str, expected)), Counter(map(str, actual))
        keys = sorted(set(e_counts) | set(a_counts))
        e = np.array([e_counts[k] for k in keys], float)
        a = np.array([a_counts[k] for k in keys], float)
    else:
        ev, av = np.asarray(expected, float), np.asarray(actual, float)
        edges = np.unique(np.quantile(ev, np.linspace(0, 1, bins + 1)))
        if len(edges) < 2:
            edges = np.array([ev[0] - 0.5, ev[0] + 0.5])
        edges[0], edges[-1] = -np.inf, np.inf
        e, a = np.histogram(ev, edges)[0].astype(float), np.histogram(av, edges)[0].astype(float)
    e = np.maximum(e / e.sum(), PSI_EPS)
    a = np.maximum(a / a.sum(), PSI_EPS)
    return float(np.sum((a - e) * np.log(a / e)))


def analyze(stable: WindowStats, canary: WindowStats, th: Thresholds) -> Verdict:
    """Judge one window. ``stable`` may span more than the window (its baseline) when it got little traffic."""
    m: dict[str, Any] = {"canary_requests": canary.requests, "stable_requests": stable.requests,
                         "canary_error_rate": round(canary.error_rate, 4),
                         "stable_error_rate": round(stable.error_rate, 4)}
    if canary.requests < th.min_requests:
        return Verdict("insufficient", f"{canary.requests} canary requests < min_requests {th.min_requests}", m)
    failures: list[str] = []
    delta = canary.error_rate - stable.error_rate
    m["error_rate_delta"] = round(delta, 4)
    if delta > th.max_error_rate_delta:
        failures.append(f"error rate {canary.error_rate:.1%} vs stable {stable.error_rate:.1%} "
                        f"(delta {delta:.1%} > {th.max_error_rate_delta:.1%})")
    q = "p99" if min(len(canary.latencies_ms), len(stable.latencies_ms)) >= P99_MIN_SAMPLES else "p90"
    cp, sp = canary.quantile_ms(int(q[1:])), stable.quantile_ms(int(q[1:]))
    if cp is not None and sp is not None:
        ratio = max(cp, P99_FLOOR_MS) / max(sp, P99_FLOOR_MS)
        m.update({"latency_quantile": q, f"canary_{q}_ms": round(cp, 2), f"stable_{q}_ms": round(sp, 2),
                  f"{q}_ratio": round(ratio, 3)})
        if ratio > th.max_p99_ratio:
            failures.append(f"{q} latency {cp:.1f} ms vs stable {sp:.1f} ms over {len(canary.latencies_ms)}/"
                            f"{len(stable.latencies_ms)} answered requests (ratio {ratio:.2f} > {th.max_p99_ratio})")
    ca, sa = canary.accuracy, stable.accuracy
    labels_judge = ca is not None and sa is not None and min(canary.labeled, stable.labeled) >= th.min_labeled
    if labels_judge:
        m.update(canary_accuracy=round(ca, 4), stable_accuracy=round(sa, 4))
        if sa - ca > th.max_accuracy_drop:
            failures.append(f"accuracy {ca:.3f} vs stable {sa:.3f} (drop {sa - ca:.3f} > {th.max_accuracy_drop})")
    if stable.predictions and canary.predictions:
        psi = prediction_psi(list(stable.predictions), list(canary.predictions))
        m["prediction_psi"] = round(psi, 4)
        # PSI stands in for labels: a canary that predicts differently and is as accurate on labelled
        # requests is a better model (a retrain after drift disagrees with the model it replaces), not a broken one.
        if th.max_prediction_psi is not None and psi > th.max_prediction_psi and not labels_judge:
            failures.append(f"prediction distribution shifted: PSI {psi:.3f} > {th.max_prediction_psi} "
                            "(no feedback labels to judge by)")
    if failures:
        return Verdict("fail", "; ".join(failures), m)
    parts = [f"{canary.requests} requests", f"error delta {delta:+.1%}"]
    if "latency_quantile" in m:
        parts.append(f"{m['latency_quantile']} ratio {m[m['latency_quantile'] + '_ratio']}")
    if labels_judge:  # the labels decided: say what they showed, not the stand-in
        parts.append(f"accuracy {ca:.3f} vs stable {sa:.3f} on {canary.labeled}/{stable.labeled} labels")
    elif "prediction_psi" in m:
        parts.append(f"PSI {m['prediction_psi']}")
    return Verdict("pass", ", ".join(parts), m)
