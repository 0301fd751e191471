"""Bearer tokens (checks, storage 0600) and the Prometheus text."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from mlops_ray.serve.auth import Tokens, check_bearer, load_or_create_tokens, read_tokens
from mlops_ray.serve.metrics import ServeMetrics
from mlops_ray.serve.validation import RequestError

T = Tokens("user-tok", "admin-tok")


def status(header: str | None, admin: bool) -> int:
    try:
        check_bearer(header, T, admin=admin)
    except RequestError as e:
        return e.status
    return 200


def test_predict_and_admin_tokens() -> None:
    assert status("Bearer user-tok", admin=False) == 200
    assert status("Bearer admin-tok", admin=False) == 200
    assert status(None, admin=False) == 401
    assert status("Basic abc", admin=False) == 401
    assert status("Bearer wrong", admin=False) == 403
    assert status("Bearer user-tok", admin=True) == 403
    assert status("Bearer admin-tok", admin=True) == 200
    check_bearer(None, Tokens(None, None), admin=True)  # auth disabled


def test_tokens_generated_once_stored_0600(tmp_path: Path) -> None:
    env: dict[str, str] = {}
    t1 = load_or_create_tokens(tmp_path, enabled=True, token_env="T", admin_token_env="A", env=env.get)
    assert t1.created and t1.token and t1.admin_token and t1.token != t1.admin_token
    mode = stat.S_IMODE((tmp_path / "tokens.json").stat().st_mode)
    assert mode == 0o600
    t2 = load_or_create_tokens(tmp_path, enabled=True, token_env="T", admin_token_env="A", env=env.get)
    assert not t2.created and (t2.token, t2.admin_token) == (t1.token, t1.admin_token)
    env.update(T="from-env", A="admin-env")
    t3 = load_or_create_tokens(tmp_path, enabled=True, token_env="T", admin_token_env="A", env=env.get)
    assert (t3.token, t3.admin_token, t3.source) == ("from-env", "admin-env", "env")
    assert read_tokens(tmp_path, token_env="T", admin_token_env="A", env=env.get).token == "from-env"
    off = load_or_create_tokens(tmp_path, enabled=False, token_env="T", admin_token_env="A", env=env.get)
    assert off.token is None


def test_metrics_text_per_version() -> None:
    m = ServeMetrics()
    m.observe("iris", "2", "v1", 200, 0.004, batch_size=8, rows=1)
    m.observe("iris", "2", "v1", 422, 0.001)
    m.observe("iris", "3", "v2", 503, 0.2)
    m.set_traffic("iris", {"2": 90.0, "3": 10.0}, ["2", "3"])
    text = m.render().decode()
    assert 'mlops_ray_requests_total{code="200",model="iris",route="v1",version="2"} 1.0' in text
    assert 'mlops_ray_request_errors_total{kind="server",model="iris",route="v2",version="3"} 1.0' in text
    assert 'mlops_ray_batch_size_bucket{le="8.0",model="iris",version="2"} 1.0' in text
    assert 'mlops_ray_request_latency_seconds_count{model="iris",route="v1",version="2"} 1.0' in text
    assert 'mlops_ray_traffic_percent{model="iris",version="3"} 10.0' in text


@pytest.mark.parametrize("header", ["Bearer ", "Bearer", ""])
def test_empty_credentials_are_401(header: str) -> None:
    assert status(header, admin=False) == 401
