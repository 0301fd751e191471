"""The ingress's rollout state: the served models, their traffic split, the loop that advances canaries.

``RolloutHost`` is the half of the ingress deployment that HTTP never reaches directly: the CLI and the
controller call ``add_version`` / ``rollback`` / ``promote`` / ``status`` through a deployment handle,
and the routes read ``models`` to choose a version. Every change is saved to ``state.json`` (read back
when the replica restarts), published as metrics, and recorded in MLflow off the request path.
"""

import asyncio
import json
import logging
import time
from pathlib import Path
from typing import Any

from ray import serve

from mlops_ray.serve.analysis import Thresholds
from mlops_ray.serve.metrics import ServeMetrics
from mlops_ray.serve.model_server import DEPLOYMENT_NAME
from mlops_ray.serve.rollout import Decision, Rollout
from mlops_ray.serve.state import ModelEntry, VersionInfo
from mlops_ray.serve.validation import RequestError

logger = logging.getLogger("ray.serve")
TICK_S = 0.25
RETIRE_GRACE_S = 2.0  # let requests already routed to a retired version finish before deleting it


class RolloutHost:
    """Mixed into the Ingress deployment; ``_init_rollout`` runs in its constructor."""

    def _init_rollout(self, settings: dict[str, Any], app_name: str) -> None:
        self.settings = settings
        self.app_name = app_name
        self.th = Thresholds(**settings["thresholds"])
        self.window_s = float(settings["window_s"])
        self.state_path = Path(settings["state_path"]) if settings.get("state_path") else None
        self.metrics = ServeMetrics()
        self.models: dict[str, ModelEntry] = {}
        self.handles: dict[str, Any] = {}
        self._loop_task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.retiring: set[str] = set()  # version apps dropped from the split, waiting out the grace period
        # MLflow records of traffic changes, one at a time and in order: two quick flips written concurrently
        # each read the aliases before the other wrote, and the champion stayed on the version not serving.
        self._records = asyncio.Lock()
        self._restore()

    async def _add_own_version(self, server: Any, initial: dict[str, Any]) -> None:
        """Serve the version bound into this application, unless a restored state already routes to it."""
        model, version = initial["model"], str(initial["version"])
        self.handles[self.app_name] = server
        entry = self.models.get(model)
        if entry is not None and entry.versions.get(version, None) is not None \
                and entry.versions[version].app_name == self.app_name:
            return  # this replica restarted: the saved state already has it
        await self.add_version(model, version, self.app_name, initial["source"], None, initial.get("steps"))

    def _restore(self) -> None:
        if self.state_path is None or not self.state_path.is_file():
            return
        data = json.loads(self.state_path.read_text())
        self.models = {m: ModelEntry.from_dict(d) for m, d in data.get("models", {}).items()}

    def _save(self) -> None:
        if self.state_path is None:
            return
        data = {"models": {m: e.to_dict() for m, e in self.models.items()}, "saved_at": time.time()}
        tmp = self.state_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, default=str))
        tmp.replace(self.state_path)

    def _handle(self, info: VersionInfo) -> Any:
        return self._handle_for(info.app_name)

    def _handle_for(self, app_name: str) -> Any:
        h = self.handles.get(app_name)
        if h is None:
            h = self.handles[app_name] = serve.get_deployment_handle(DEPLOYMENT_NAME, app_name=app_name)
        return h

    def _ensure_loop(self) -> None:
        if self._loop_task is None or self._loop_task.done():
            self._loop_task = asyncio.get_running_loop().create_task(self._rollout_loop())

    async def _rollout_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            for entry in list(self.models.values()):
                try:
                    d = entry.tick(time.time(), self.th, self.window_s)
                    if d is not None:
                        await self._after_change(entry, d)
                except Exception:  # the loop must survive anything one model does
                    logger.exception("rollout tick failed for %s", entry.name)

    async def _after_change(self, entry: ModelEntry, d: Decision) -> None:
        """Publish the new weights, persist, retire dropped versions, record the decision outside the ingress."""
        self.metrics.set_traffic(entry.name, entry.rollout.weights(), list(entry.versions))
        source = entry.versions[d.version].source if d.version in entry.versions else ""
        gone = entry.retire()
        self._save()
        if d.action == "extend":
            return
        logger.info("rollout %s: %s %s (%s)", entry.name, d.action, d.version, d.reason)
        task = asyncio.get_running_loop().create_task(
            self._side_effects(entry.name, d, entry.rollout.stable, source, [g.app_name for g in gone]))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _side_effects(self, model: str, d: Decision, stable: str | None, source: str, apps: list[str]) -> None:
        recorded = ("rollback", "promote", "manual_rollback", "manual_promote")
        if d.action in recorded and self.settings.get("tracking_uri"):
            try:
                from mlops_ray.serve.records import record_decision

                async with self._records:
                    entry = self.models.get(model)  # what serves now, which a later flip may have changed
                    now = entry.rollout.stable if entry is not None else stable
                    await asyncio.to_thread(record_decision, self.settings, model, d, now, source)
                    if entry is not None:
                        entry.record_error = None  # this record put the alias on what serves
            except Exception as e:
                logger.exception("could not record the %s of %s %s in MLflow", d.action, model, d.version)
                entry = self.models.get(model)
                if entry is not None:  # shown by `status`: the registry's champion may not be what serves
                    entry.record_error = f"{d.action} v{d.version}: {type(e).__name__}: {str(e)[:300]}"
        if apps:
            self.retiring.update(a for a in apps if a != self.app_name)
            await asyncio.sleep(RETIRE_GRACE_S)
            for app in apps:
                if app == self.app_name:  # a version bound into this application goes with it, never alone
                    continue
                self.handles.pop(app, None)
                try:
                    await asyncio.to_thread(serve.delete, app, False)  # Serve shows it DELETING from here on
                except Exception:
                    logger.exception("could not delete retired application %s", app)
                finally:
                    self.retiring.discard(app)

    # ------------------------------------------------------------------ control calls (via handle)

    async def add_version(self, model: str, version: str, app_name: str, source: str,
                          canary_pct: float | None, steps: list[float] | None) -> dict[str, Any]:
        self._ensure_loop()
        info = VersionInfo(version=str(version), app_name=app_name, source=source)
        # Bounded: a version app that is gone (deleted after a rollback) would otherwise be awaited forever.
        info.meta = await asyncio.wait_for(self._handle(info).metadata.remote(), timeout=150)
        entry = self.models.get(model)
        if entry is None:
            entry = self.models[model] = ModelEntry(Rollout(model=model, steps=list(steps or [10.0, 50.0, 100.0])))
        d = entry.deploy(info, time.time(), canary_pct, steps)
        await self._after_change(entry, d)
        return {"decision": d.__dict__, "status": entry.summary()}

    async def rollback(self, model: str, reason: str = "rolled back by an operator") -> dict[str, Any]:
        self._ensure_loop()
        t0 = time.perf_counter()
        entry = self.models.get(model)
        if entry is None:
            raise RequestError(404, f"model {model!r} is not served here; served: {sorted(self.models)}")
        d = entry.rollout.rollback(time.time(), reason)
        entry.apply()  # from here on, every request goes by the new weights
        flip_s = time.perf_counter() - t0
        await self._after_change(entry, d)
        return {"decision": d.__dict__, "flip_seconds": flip_s, "status": entry.summary()}

    async def promote(self, model: str, reason: str = "promoted by an operator") -> dict[str, Any]:
        self._ensure_loop()
        entry = self.models.get(model)
        if entry is None:
            raise RequestError(404, f"model {model!r} is not served here; served: {sorted(self.models)}")
        d = entry.rollout.promote(time.time(), reason)
        entry.apply()
        await self._after_change(entry, d)
        return {"decision": d.__dict__, "status": entry.summary()}

    async def status(self) -> dict[str, Any]:
        self._ensure_loop()
        return {"models": {m: e.summary() for m, e in self.models.items()},
                "window_s": self.window_s, "thresholds": self.th.__dict__, "retiring": sorted(self.retiring)}
