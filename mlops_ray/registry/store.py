"""The MLflow model registry as this package uses it: a checked client, aliases and their history, lookups.

Every alias move writes a record (who, why, when, from which version) as a tag on the registered
model and on the version it points to, so the history survives in MLflow itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mlops_ray.exceptions import RegistryError
from mlops_ray.runtime import Runtime, configure_mlflow, env

if TYPE_CHECKING:
    from mlflow import MlflowClient

TAG = "mlops_ray."
MOVE_TAG = TAG + "move."  # + <UTC timestamp>.<alias>: one JSON record per alias move
ALIASES = ("champion", "challenger", "previous")
_NOT_FOUND = ("RESOURCE_DOES_NOT_EXIST", "NOT_FOUND")  # MLflow's error codes for "no such model"


@contextmanager
def mlflow_errors(action: str, runtime: Runtime) -> Iterator[None]:
    """Turn MLflow and connection errors into a RegistryError that says what failed and where."""
    from mlflow.exceptions import MlflowException

    try:
        yield
    except RegistryError:
        raise
    except MlflowException as e:
        first = str(e.message).strip().splitlines()[0] if str(e.message).strip() else str(e)
        if "sqlite3.DatabaseError" in first:  # MLflow wraps SQLAlchemy's error and appends the whole query
            raise _unreadable_store(action, runtime, first.split(")", 1)[-1].strip()) from e
        raise RegistryError(f"{action} failed on MLflow store {runtime.tracking_uri}: {e.message}") from e
    except OSError as e:  # requests' ConnectionError/Timeout are OSErrors
        raise RegistryError(f"{action} failed: MLflow at {runtime.tracking_uri} is not reachable ({e}). "
                            "Start the server or unset MLFLOW_TRACKING_URI to use the local SQLite store") from e
    except Exception as e:
        if not type(e).__module__.startswith("sqlalchemy"):
            raise
        # A damaged SQLite file reaches us as SQLAlchemy's error, not MLflow's.
        raise _unreadable_store(action, runtime, str(getattr(e, "orig", None) or e).splitlines()[0]) from e


def _unreadable_store(action: str, runtime: Runtime, detail: str) -> RegistryError:
    return RegistryError(f"{action} failed: the MLflow store {runtime.tracking_uri} cannot be read ({detail}). "
                         "Restore it from a backup, or point --workdir / MLFLOW_TRACKING_URI elsewhere")


def check_local_store(runtime: Runtime) -> None:
    """A local SQLite store that exists must be readable: a damaged file fails here, before any work."""
    import sqlite3

    store = runtime.local_store
    if store is None or not store.is_file() or store.stat().st_size == 0:
        return
    try:
        with sqlite3.connect(f"file:{store}?mode=ro", uri=True) as db:
            ok = db.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as e:
        ok = str(e)
    if ok != "ok":
        raise RegistryError(f"the MLflow store {store} is damaged ({ok}): restore it from a backup, or point "
                            "--workdir / MLFLOW_TRACKING_URI at another store; nothing was run")


def missing_local_store(runtime: Runtime) -> str | None:
    """The SQLite file of a local store that does not exist yet (None: it exists, or the store is remote).

    Read-only commands check this first: MLflow creates an empty store on first contact.
    """
    store = runtime.local_store
    return str(store) if store is not None and not store.is_file() else None


def check_reachable(runtime: Runtime | str, timeout_s: float = 5.0) -> None:
    """Fail fast (instead of MLflow's minutes of retries) when a tracking server is down."""
    uri = runtime if isinstance(runtime, str) else runtime.tracking_uri
    if not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        resp = requests.get(uri.rstrip("/") + "/health", timeout=timeout_s)
    except requests.RequestException as e:
        raise RegistryError(
            f"MLflow tracking server {uri} is not reachable: {type(e).__name__}. Start it (e.g. `mlflow server "
            "--host 127.0.0.1 --port 5000`) or unset MLFLOW_TRACKING_URI to use the local SQLite store"
        ) from e
    if resp.status_code >= 500:
        raise RegistryError(f"MLflow tracking server {uri} is unhealthy: HTTP {resp.status_code} on /health")


def client(runtime: Runtime) -> MlflowClient:
    """An MlflowClient on the runtime's store, after checking a server is up."""
    from mlflow import MlflowClient

    check_reachable(runtime)
    configure_mlflow(runtime)
    return MlflowClient(tracking_uri=runtime.tracking_uri, registry_uri=runtime.tracking_uri)


def default_actor() -> str:
    return env("MLOPS_RAY_ACTOR") or env("USER") or env("USERNAME") or "unknown"


def now_utc() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def get_aliases(cl: MlflowClient, name: str) -> dict[str, str]:
    """alias -> version for a registered model ({} when the name is not registered)."""
    from mlflow.exceptions import MlflowException

    try:
        rm = cl.get_registered_model(name)
    except MlflowException as e:
        if e.error_code in _NOT_FOUND:
            return {}
        raise
    return {str(k): str(v) for k, v in (rm.aliases or {}).items()}


# ------------------------------------------------------------------------------------- alias moves


@dataclass
class AliasMove:
    """One alias change: ``alias`` now points at ``version`` (None: removed), was at ``replaced``."""

    alias: str
    version: str | None
    replaced: str | None
    actor: str
    reason: str
    at: str

    def describe(self) -> str:
        if self.version is None:
            return f"{self.alias}: removed (was v{self.replaced})"
        was = f" (was v{self.replaced})" if self.replaced else ""
        return f"{self.alias} -> v{self.version}{was}"


def move_aliases(cl: MlflowClient, name: str, target: dict[str, str | None], *, actor: str,
                 reason: str) -> list[AliasMove]:
    """Set (or, for None, remove) aliases and record each move; all or nothing.

    If any call fails the aliases are put back as they were and the error propagates.
    """
    before = get_aliases(cl, name)
    at = now_utc()
    moves = [AliasMove(a, v, before.get(a), actor, reason, at) for a, v in target.items() if before.get(a) != v]
    try:
        for m in moves:
            if m.version is None:
                cl.delete_registered_model_alias(name, m.alias)
            else:
                cl.set_registered_model_alias(name, m.alias, m.version)
        stamp = at.replace("-", "").replace(":", "")  # tag keys: letters, digits, '.', '_'
        for m in moves:
            record, key = json.dumps(asdict(m), sort_keys=True), f"{MOVE_TAG}{stamp}.{m.alias}"
            cl.set_registered_model_tag(name, key, record)
            for v in {m.version, m.replaced} - {None}:
                cl.set_model_version_tag(name, str(v), key, record)
    except Exception:
        restore_aliases(cl, name, before, [m.alias for m in moves])
        raise
    return moves


def restore_aliases(cl: MlflowClient, name: str, before: dict[str, str], aliases: list[str]) -> None:
    """Put ``aliases`` back to ``before`` (best effort: the store may be what failed)."""
    for a in aliases:
        try:
            if a in before:
                cl.set_registered_model_alias(name, a, before[a])
            else:
                cl.delete_registered_model_alias(name, a)
        except Exception:  # best effort: the store may be the thing that failed
            pass


def alias_history(cl: MlflowClient, name: str) -> list[AliasMove]:
    """Every recorded move of a registered model, oldest first."""
    rm = cl.get_registered_model(name)
    moves = [AliasMove(**json.loads(v)) for k, v in (rm.tags or {}).items() if k.startswith(MOVE_TAG)]
    return sorted(moves, key=lambda m: (m.at, m.alias))


def _require_version(cl: MlflowClient, name: str, version: str) -> None:
    """A missing model or version is the user's typo: say which exist, not that the store "failed"."""
    from mlflow.exceptions import MlflowException

    try:
        cl.get_model_version(name, version)
        return
    except MlflowException as e:
        if e.error_code not in _NOT_FOUND:
            raise
    versions = sorted((int(v.version) for v in cl.search_model_versions(f"name = '{name}'")), reverse=True)
    if not versions and model_exists(cl, name):
        raise RegistryError(f"model {name!r} has no version {version}: it has no versions yet")
    if not versions:
        raise RegistryError(f"no registered model named {name!r}; see `mlops-ray models` for the names")
    raise RegistryError(f"model {name!r} has no version {version} (versions: "
                        f"{', '.join(map(str, versions[:20]))}); see `mlops-ray models {name}`")


def promote(runtime: Runtime, name: str, version: str | int, reason: str = "manual promotion",
            actor: str | None = None) -> list[AliasMove]:
    """Make ``version`` the champion by hand; the old champion becomes ``previous``."""
    version = str(version)
    with mlflow_errors(f"promoting {name} v{version}", runtime):
        cl = client(runtime)
        _require_version(cl, name, version)
        current = get_aliases(cl, name)
        target: dict[str, str | None] = {"champion": version}
        if current.get("champion") not in (None, version):
            target["previous"] = current["champion"]
        if current.get("challenger") == version:
            target["challenger"] = None
        return move_aliases(cl, name, target, actor=actor or default_actor(), reason=f"promote: {reason}")


def rollback(runtime: Runtime, name: str, reason: str = "manual rollback", actor: str | None = None) -> list[AliasMove]:
    """Restore ``previous`` as champion; the rolled-back champion becomes ``previous`` (so it can be undone)."""
    with mlflow_errors(f"rolling back {name}", runtime):
        cl = client(runtime)
        current = get_aliases(cl, name)
        if "previous" not in current:
            raise RegistryError(f"model {name!r} has no 'previous' version to roll back to "
                                f"(aliases: {current or 'none'}); promote a version explicitly: "
                                f"mlops-ray promote {name} VERSION")
        target: dict[str, str | None] = {"champion": current["previous"], "previous": current.get("champion")}
        return move_aliases(cl, name, target, actor=actor or default_actor(), reason=f"rollback: {reason}")


# ----------------------------------------------------------------------------------------- lookups


@dataclass
class VersionInfo:
    """One registered version: where its files are, its tags and aliases."""

    name: str
    version: str
    source: str
    run_id: str | None
    model_uri: str  # models:/NAME/VERSION, stable even when aliases move
    aliases: list[str] = field(default_factory=list)
    tags: dict[str, str] = field(default_factory=dict)
    status: str = ""
    created_at: str = ""

    @property
    def gate(self) -> dict[str, str]:
        return {k.removeprefix(TAG + "gate."): v for k, v in self.tags.items() if k.startswith(TAG + "gate.")}


def _info(mv: Any, aliases: dict[str, str]) -> VersionInfo:
    created = datetime.fromtimestamp(mv.creation_timestamp / 1000, UTC).isoformat() if mv.creation_timestamp else ""
    return VersionInfo(
        name=mv.name, version=str(mv.version), source=mv.source, run_id=mv.run_id,
        model_uri=f"models:/{mv.name}/{mv.version}",
        aliases=sorted(a for a, v in aliases.items() if v == str(mv.version)),
        tags=dict(mv.tags or {}), status=str(mv.status), created_at=created,
    )


def resolve_version(runtime: Runtime, name: str, version: str | int | None = None,
                    alias: str | None = None) -> VersionInfo:
    """A version by number or alias (default: the champion)."""
    if version is not None and alias is not None:
        raise RegistryError(f"pass a version or an alias for {name!r}, not both")
    with mlflow_errors(f"looking up model {name!r}", runtime):
        cl = client(runtime)
        aliases = get_aliases(cl, name)
        if not aliases and not model_exists(cl, name):
            raise RegistryError(f"no registered model named {name!r}; list them with `mlops-ray models`")
        if version is None:
            alias = alias or "champion"
            if alias not in aliases:
                raise RegistryError(f"model {name!r} has no alias {alias!r}; its aliases: "
                                    f"{', '.join(f'{a}=v{v}' for a, v in sorted(aliases.items())) or 'none'}")
            version = aliases[alias]
        else:
            _require_version(cl, name, str(version))  # a typo lists the versions, not "the store failed"
        return _info(cl.get_model_version(name, str(version)), aliases)


def model_exists(cl: MlflowClient, name: str) -> bool:
    """False only when the registry answers that it has no model ``name``; other MLflow errors propagate."""
    from mlflow.exceptions import MlflowException

    try:
        cl.get_registered_model(name)
    except MlflowException as e:
        if e.error_code in _NOT_FOUND:
            return False
        raise
    return True


def list_versions(runtime: Runtime, name: str) -> list[VersionInfo]:
    """Every version of a model, newest first."""
    with mlflow_errors(f"listing versions of {name!r}", runtime):
        cl = client(runtime)
        aliases = get_aliases(cl, name)
        versions = cl.search_model_versions(f"name = '{name}'")
        if not versions and not aliases and not model_exists(cl, name):
            raise RegistryError(f"no registered model named {name!r}; list them with `mlops-ray models`")
        return sorted((_info(mv, aliases) for mv in versions), key=lambda i: int(i.version), reverse=True)


def list_models(runtime: Runtime) -> list[dict[str, Any]]:
    """Registered models: name, aliases, number of versions."""
    with mlflow_errors("listing registered models", runtime):
        cl = client(runtime)
        out = []
        for rm in cl.search_registered_models(max_results=1000):
            latest = max((int(v.version) for v in (rm.latest_versions or [])), default=0)
            out.append({"name": rm.name, "aliases": {str(k): str(v) for k, v in (rm.aliases or {}).items()},
                        "latest_version": str(latest) if latest else None,
                        "description": (rm.description or "")[:80]})
        return sorted(out, key=lambda d: d["name"])
