"""The Ray cluster token (``RAY_AUTH_MODE=token``) for talking to the Jobs API over HTTP.

Ray 2.60's ``JobSubmissionClient`` only attaches a token when the *client's* own environment has
``RAY_AUTH_MODE=token``; a laptop submitting to a secured cluster usually has not. So we find the
token ourselves, by the same precedence Ray uses, and send it as ``Authorization: Bearer <token>``.
"""

from __future__ import annotations

from pathlib import Path

from mlops_ray.exceptions import ClusterError
from mlops_ray.runtime import env

AUTH_TOKEN_ENV = "RAY_AUTH_TOKEN"
AUTH_TOKEN_PATH_ENV = "RAY_AUTH_TOKEN_PATH"
DEFAULT_TOKEN_FILE = Path("~/.ray/auth_token")


def resolve_auth_token(token: str | None = None, token_file: str | Path | None = None) -> str | None:
    """The token to send: ``token``, ``token_file``, $RAY_AUTH_TOKEN, $RAY_AUTH_TOKEN_PATH, ~/.ray/auth_token.

    Returns None when none is found (a cluster without token auth needs none). A file that is
    named explicitly (argument or $RAY_AUTH_TOKEN_PATH) but missing or empty is an error.
    """
    if token is not None:
        token = token.strip()
        if not token:
            raise ClusterError("the auth token given is empty; pass the value of `ray get-auth-token` on the head")
        return token
    if token_file is not None:
        return _read_token_file(Path(token_file), "--token-file")
    from_env = env(AUTH_TOKEN_ENV)
    if from_env and from_env.strip():
        return from_env.strip()
    path_env = env(AUTH_TOKEN_PATH_ENV)
    if path_env:
        return _read_token_file(Path(path_env), f"${AUTH_TOKEN_PATH_ENV}")
    default = DEFAULT_TOKEN_FILE.expanduser()
    if default.is_file():
        text = default.read_text().strip()
        return text or None
    return None


def _read_token_file(path: Path, where: str) -> str:
    path = path.expanduser()
    try:
        text = path.read_text().strip()
    except OSError as e:
        raise ClusterError(
            f"auth token file {str(path)!r} (from {where}) cannot be read: {e}. "
            "Copy it from the head node (`ray get-auth-token`) or unset it."
        ) from e
    if not text:
        raise ClusterError(f"auth token file {str(path)!r} (from {where}) is empty")
    return text


def auth_headers(token: str | None) -> dict[str, str]:
    """HTTP headers carrying the token, or none."""
    return {"Authorization": f"Bearer {token}"} if token else {}


def auth_error_message(address: str, status: int | None, had_token: bool, detail: str = "") -> str:
    """An actionable message for a 401/403 from the dashboard."""
    how = (
        "Get the token on the head node with `ray get-auth-token` (or create one with "
        "`ray get-auth-token --generate` before `ray start --head` with RAY_AUTH_MODE=token), then "
        f"export {AUTH_TOKEN_ENV}=<token>, or write it to ~/.ray/auth_token, or pass --token-file."
    )
    if status == 403 or (status is None and had_token):
        what = f"the Ray cluster at {address} rejected the auth token (wrong token for this cluster)."
    else:
        what = f"the Ray cluster at {address} requires token authentication and no token was sent."
    detail = f" ({detail.strip().splitlines()[0]})" if detail.strip() else ""
    return f"{what}{detail} {how}"
