"""Prometheus metrics of the ingress: requests, errors, latency and batch-size histograms per version (no Ray)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    """One private registry per ingress replica (not Ray's global one), rendered at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ("model", "version", "route", "code")
        self.requests = Counter("mlops_ray_requests_total", "Requests answered, by status code",
                                labels, registry=self.registry)
        self.errors = Counter("mlops_ray_request_errors_total", "Requests answered with a 4xx or 5xx",
                              ("model", "version", "route", "kind"), registry=self.registry)
        self.latency = Histogram("mlops_ray_request_latency_seconds", "Ingress latency of predict requests",
                                 ("model", "version", "route"), buckets=LATENCY_BUCKETS, registry=self.registry)
        self.batch = Histogram("mlops_ray_batch_size", "Rows in the model batch that served each request",
                               ("model", "version"), buckets=BATCH_BUCKETS, registry=self.registry)
        self.rows = Counter("mlops_ray_rows_predicted_total", "Rows predicted", ("model", "version"),
                            registry=self.registry)
        self.traffic = Gauge("mlops_ray_traffic_percent", "Share of traffic routed to a version",
                             ("model", "version"), registry=self.registry)
        self.retries = Counter("mlops_ray_retries_total", "Predict calls retried after a replica failure",
                               ("model", "version"), registry=self.registry)

    def observe(self, model: str, version: str, route: str, code: int, seconds: float,
                batch_size: int | None = None, rows: int = 0) -> None:
        self.requests.labels(model, version, route, str(code)).inc()
        if code >= 400:
            self.errors.labels(model, version, route, "client" if code < 500 else "server").inc()
        else:
            self.latency.labels(model, version, route).observe(seconds)
            self.rows.labels(model, version).inc(rows)
        if batch_size is not None:
            self.batch.labels(model, version).observe(batch_size)

    def set_traffic(self, model: str, weights: dict[str, float], versions: list[str]) -> None:
        for v in versions:
            self.traffic.labels(model, v).set(weights.get(v, 0.0))

    def render(self) -> bytes:
        return generate_latest(self.registry)
