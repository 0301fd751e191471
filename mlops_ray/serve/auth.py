"""Bearer tokens: checks per request, and the tokens' origin (environment, or generated once and stored 0600)."""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from mlops_ray.serve.validation import RequestError

TOKENS_FILE = "tokens.json"


@dataclass(frozen=True)
class Tokens:
    """The predict token and the admin token; ``None`` when auth is off. ``created``: made just now."""

    token: str | None
    admin_token: str | None
    created: bool = False
    source: str = "disabled"  # "env", "file", "generated" or "disabled"

    def digest(self) -> str:
        """A fingerprint of the pair (to compare with a running server's without sending the tokens)."""
        import hashlib

        return hashlib.sha256(f"{self.token}\0{self.admin_token}".encode()).hexdigest()


def check_bearer(header: str | None, tokens: Tokens, *, admin: bool) -> None:
    """Raise a 401 (no credentials) or 403 (wrong or insufficient token) RequestError; pass when allowed."""
    if tokens.token is None and tokens.admin_token is None:
        return
    if not header:
        raise RequestError(401, "missing credentials: send the header 'Authorization: Bearer <token>'",
                           "Authorization")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise RequestError(401, "malformed Authorization header: expected 'Bearer <token>'", "Authorization")
    value = value.strip()
    is_admin = tokens.admin_token is not None and hmac.compare_digest(value, tokens.admin_token)
    if admin:
        if not is_admin:
            raise RequestError(403, "this route needs the admin token (serve.auth.admin_token_env)", "Authorization")
        return
    if is_admin or (tokens.token is not None and hmac.compare_digest(value, tokens.token)):
        return
    raise RequestError(403, "invalid token", "Authorization")


def load_or_create_tokens(serve_dir: Path, *, enabled: bool, token_env: str, admin_token_env: str,
                          env: Callable[[str], str | None]) -> Tokens:
    """Tokens from the environment when set; else from ``serve_dir/tokens.json``; else generated and stored."""
    if not enabled:
        return Tokens(None, None)
    from_env = env(token_env), env(admin_token_env)
    path = serve_dir / TOKENS_FILE
    stored: dict[str, str] = {}
    if path.is_file():
        stored = json.loads(path.read_text())
    token = from_env[0] or stored.get("token")
    admin = from_env[1] or stored.get("admin_token")
    if token and admin:
        return Tokens(token, admin, source="env" if all(from_env) else "file")
    token = token or secrets.token_urlsafe(24)
    admin = admin or secrets.token_urlsafe(24)
    serve_dir.mkdir(parents=True, exist_ok=True)
    # Create with 0600 from the start: the token is never readable by others, not even briefly.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"token": token, "admin_token": admin}, f)
    os.chmod(path, 0o600)
    return Tokens(token, admin, created=True, source="generated")


def read_tokens(serve_dir: Path, *, token_env: str, admin_token_env: str,
                env: Callable[[str], str | None]) -> Tokens:
    """The tokens a client should use (environment first, then the stored file); never creates any."""
    path = serve_dir / TOKENS_FILE
    stored = json.loads(path.read_text()) if path.is_file() else {}
    return Tokens(env(token_env) or stored.get("token"), env(admin_token_env) or stored.get("admin_token"),
                  source="env" if env(token_env) else "file")
