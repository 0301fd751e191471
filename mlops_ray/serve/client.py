"""An HTTP client for a deployed endpoint (what `mlops-ray predict` uses), and the deploy summary text."""

from __future__ import annotations

import json
from typing import Any

from mlops_ray.exceptions import ServeError
from mlops_ray.runtime import Runtime, env


def endpoint(runtime: Runtime) -> dict[str, Any]:
    path = runtime.serve_dir / "endpoint.json"
    if not path.is_file():
        raise ServeError(f"no endpoint recorded under {runtime.serve_dir}; run `mlops-ray deploy` first or pass --url")
    return dict(json.loads(path.read_text()))


def predict(runtime: Runtime, model: str, rows: list[dict[str, Any]], *, url: str | None = None,
            token: str | None = None, timeout_s: float = 30.0) -> dict[str, Any]:
    """POST rows to ``/v1/models/{model}/predict``; raises ServeError with the server's message on a 4xx/5xx."""
    import httpx

    from mlops_ray.serve.auth import read_tokens

    ep = endpoint(runtime) if url is None or token is None else {}
    url = url or ep["url"]
    if token is None:
        token = read_tokens(runtime.serve_dir, token_env=ep.get("token_env", "MLOPS_RAY_TOKEN"),
                            admin_token_env=ep.get("admin_token_env", "MLOPS_RAY_ADMIN_TOKEN"), env=env).token
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        r = httpx.post(f"{url.rstrip('/')}/v1/models/{model}/predict", json={"rows": rows}, headers=headers,
                       timeout=timeout_s)
    except httpx.HTTPError as e:
        raise ServeError(f"could not reach {url}: {e}; is the endpoint up (`mlops-ray status`)?") from e
    body = r.json() if r.headers.get("content-type", "").startswith("application/json") else {"error": r.text}
    if r.status_code >= 400:
        hint = ""
        if r.status_code == 401 and not token:  # nothing to send: say where a token would have come from
            hint = (f"; no token found: pass --token, set {ep.get('token_env', 'MLOPS_RAY_TOKEN')}, or restore "
                    f"{runtime.serve_dir / 'tokens.json'} (written by the first deploy)")
        raise ServeError(f"HTTP {r.status_code} from {url}: {body.get('error', body)}{hint}")
    return dict(body)


def format_deployment(dep: Any) -> str:
    """A few lines for the terminal: where it serves, the rollout decision, the token when new."""
    d = dep.decision
    traffic = ", ".join(f"v{v}: {p:g}%" for v, p in dep.status["traffic"].items())
    lines = [f"serving {dep.model} v{dep.version} at {dep.url} ({d['action']}: {d['reason']})",
             f"traffic: {traffic}",
             f"try: curl -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' "
             f"-d '{{\"rows\": [...]}}' {dep.url}/v1/models/{dep.model}/predict"]
    if dep.token:
        lines.append(f"token (printed once; stored 0600 under the serve folder): {dep.token}")
        lines.append(f"admin token (rollout/rollback routes): {dep.admin_token}")
    return "\n".join(lines)


def format_status(st: dict[str, Any]) -> str:
    if not st.get("running"):
        return f"no Serve application {st.get('app_name')!r} is running"
    lines = [f"application {st['app_name']} at {st.get('url')}"]
    for name, m in st["models"].items():
        lines.append(f"model {name}: {m['phase']} (stable v{m['stable']}, canary "
                     f"{'v' + m['canary'] if m['canary'] else '-'}, warm previous "
                     f"{'v' + m['previous'] if m['previous'] else '-'})")
        for v, info in m["versions"].items():
            reps = ", ".join(f"{k}: {n}" for k, n in info.get("replicas", {}).items()) or "-"
            lines.append(f"  v{v}: traffic {info.get('traffic', 0):g}%  replicas [{reps}]  {info.get('source')}")
        for d in m["decisions"][-5:]:
            lines.append(f"  - {d['action']} v{d['version']}: {d['reason']}")
        if m.get("record_error"):
            lines.append(f"  ! not recorded in the registry ({m['record_error']}): its aliases may not match what "
                         f"serves; once MLflow is back, `mlops-ray promote {name} {m['stable']}`")
    if st.get("unrouted_apps"):
        lines.append(f"not routed (left by an interrupted deploy, holding CPUs): {', '.join(st['unrouted_apps'])}; "
                     "deploy that version again, or `mlops-ray shutdown`")
    if st.get("retiring_apps"):
        lines.append(f"retiring (rolled back or replaced; Serve is deleting them): {', '.join(st['retiring_apps'])}")
    return "\n".join(lines)
