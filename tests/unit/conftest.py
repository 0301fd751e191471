"""Unit tests run without Ray: any attempt to start or join a cluster fails loudly."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _forbid_ray_init(monkeypatch: pytest.MonkeyPatch) -> None:
    try:
        import ray
    except ImportError:  # pragma: no cover
        return

    def _fail(*args: object, **kwargs: object) -> None:
        raise AssertionError("unit tests must not start Ray; move this test to tests/integration/")

    monkeypatch.setattr(ray, "init", _fail)
