"""Shared test settings: small Ray resources, no usage stats, quiet logs."""

from __future__ import annotations

import os

# Set before Ray is imported anywhere: no telemetry, and no dashboard start-up cost in tests.
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_DEDUP_LOGS", "0")
os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")
os.environ.setdefault("MLFLOW_ENABLE_TELEMETRY", "false")
