"""Integration tests use the `ray_session` and `runtime` fixtures from tests/conftest.py."""
