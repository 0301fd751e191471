"""The ingress deployment (FastAPI through Serve): auth, validation, request ids, the protocols' routes.

It is one replica by design: it holds the traffic split and the canary's analysis windows (its
``RolloutHost`` half, rollout_host.py), so a weight flip is a local assignment that takes effect on the
next request.
"""

# No `from __future__ import annotations` here: FastAPI must see the real types (Request) of the routes.

import asyncio
import logging
import time
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response
from ray import serve

from mlops_ray.serve import protocols
from mlops_ray.serve.auth import Tokens, check_bearer
from mlops_ray.serve.http_api import ROWS_EXAMPLE, api, request_id
from mlops_ray.serve.metrics import CONTENT_TYPE
from mlops_ray.serve.rollout_host import RolloutHost
from mlops_ray.serve.state import ModelEntry, VersionInfo
from mlops_ray.serve.validation import RequestError, check_labels, decode_body, parse_json

logger = logging.getLogger("ray.serve")
INGRESS_NAME = "Ingress"
RETRIES = 3  # a prediction is idempotent: retried on another replica when its replica died


MAX_UNKNOWN_IDS = 100  # the feedback answer lists this many unknown ids (and counts them all)
JSON_TYPES = ("", "application/json", "text/json")  # "": no Content-Type at all (a bare HTTP client)
CSV_TYPES = ("text/csv", "application/csv")


def _content_type(value: str | None) -> str:
    return (value or "").split(";")[0].strip().lower()


def _check_content_type(request: Request, *, csv_ok: bool) -> str:
    """The body's media type, when this route reads it (JSON; CSV too on /invocations); else a 415."""
    ctype = _content_type(request.headers.get("content-type"))
    if ctype in JSON_TYPES or ctype.endswith("+json") or (csv_ok and ctype in CSV_TYPES):
        return ctype
    accepted = "application/json" + (" or text/csv" if csv_ok else "")
    raise RequestError(415, f"Content-Type {ctype!r} is not supported here; send {accepted} (curl -d sends "
                       "application/x-www-form-urlencoded unless given -H 'Content-Type: application/json')",
                       "content-type")


def _header_value(text: str | None) -> str:
    """HTTP header values are ASCII: a name from the URL (any Unicode) is sent percent-encoded."""
    from urllib.parse import quote

    text = text or ""
    return text if text.isascii() and text.isprintable() else quote(text, safe="")


@serve.deployment(name=INGRESS_NAME, num_replicas=1, ray_actor_options={"num_cpus": 0.1},
                  max_ongoing_requests=512, health_check_period_s=2.0)
@serve.ingress(api)
class Ingress(RolloutHost):
    async def __init__(self, settings: dict[str, Any], server: Any = None) -> None:
        """``server``: a handle to a model deployment bound into this same application (``serve deploy`` of
        ``mlops_ray.serve.app:build_app``); it becomes the first version, described by ``settings["initial"]``."""
        self._init_rollout(settings, serve.get_replica_context().app_name)
        self.tokens = Tokens(settings.get("token"), settings.get("admin_token"))
        self.max_body = int(settings["max_body_bytes"])
        self.max_rows = int(settings["max_rows"])
        # A client that announced more bytes than it sends gets a 408, not a connection held open.
        self.body_timeout_s = float(settings.get("body_timeout_s", 30.0))
        # The hop to the model deployments is batched here (one handle call carries many requests): the
        # per-call cost of a Serve handle, paid per request, is what limits an ingress in front of a model.
        self._forward.set_max_batch_size(int(settings.get("max_batch_size", 32)))
        self._forward.set_batch_wait_timeout_s(float(settings.get("batch_wait_timeout_s", 0.001)))
        if server is not None:
            await self._add_own_version(server, settings["initial"])

    def _entry(self, name: str) -> ModelEntry:
        e = self.models.get(name)
        if e is None or not e.rollout.weights():
            raise RequestError(404, f"model {name!r} is not served here; served: {sorted(self.models)}", "name")
        return e

    @staticmethod
    def _version(entry: ModelEntry, version: str) -> str:
        """A version this ingress has deployed (serving, canary or the warm previous one)."""
        if version not in entry.versions or version not in entry.schemas:
            raise RequestError(404, f"version {version!r} of {entry.name!r} is not deployed here; deployed: "
                               f"{list(entry.versions)}", "version")
        return version

    async def tokens_digest(self) -> str:
        return self.tokens.digest()

    # ------------------------------------------------------------------ HTTP helpers

    def _reply(self, status: int, body: dict[str, Any], rid: str, had_header: bool, model: str | None,
               version: str | None) -> JSONResponse:
        if status >= 400:  # every error body has the same keys, whichever path produced it
            body.setdefault("field", None)
            body.setdefault("status", status)
        body.setdefault("request_id", rid)
        body.setdefault("model_name", model)
        body.setdefault("model_version", version)
        headers = {"X-Model-Name": _header_value(model), "X-Model-Version": _header_value(version)}
        if status == 401:
            headers["WWW-Authenticate"] = "Bearer"  # RFC 6750: how to authenticate
        if not had_header:
            headers["X-Request-ID"] = rid
        return JSONResponse(body, status_code=status, headers=headers)

    async def _body(self, request: Request) -> bytes:
        """The body, read no further than the limit and within ``serve.body_timeout_s`` (chunked: no length)."""
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > self.max_body:
            raise RequestError(413, f"request body is {size} bytes; the limit is {self.max_body} "
                               "(serve.max_body_bytes)")
        chunks: list[bytes] = []
        n = 0
        try:
            async with asyncio.timeout(self.body_timeout_s):
                async for chunk in request.stream():
                    n += len(chunk)
                    if n > self.max_body:
                        raise RequestError(413, f"request body is over {self.max_body} bytes "
                                           "(serve.max_body_bytes): split the batch into smaller requests")
                    chunks.append(chunk)
        except TimeoutError:
            raise RequestError(408, f"the request body did not arrive within {self.body_timeout_s:g} s "
                               f"(serve.body_timeout_s; {n} bytes read, Content-Length {size or 'not sent'})") from None
        return decode_body(b"".join(chunks), request.headers.get("content-encoding"), self.max_body)

    async def _parse(self, request: Request, proto: str, schema: Any) -> tuple[dict[str, list[Any]], Any, Any]:
        """(columns, the client's v2 id, the v2 outputs asked for); every failure is a 4xx."""
        ctype = _check_content_type(request, csv_ok=proto == "invocations")
        raw = await self._body(request)
        try:
            if ctype in CSV_TYPES:
                return protocols.parse_invocations_csv(raw, schema, self.max_rows), None, None
            body = parse_json(raw, self.max_body)
            if proto == "v1":
                return protocols.parse_v1(body, schema, self.max_rows), None, None
            if proto == "v2":
                cols, client_id = protocols.parse_v2(body, schema, self.max_rows)
                return cols, client_id, protocols.v2_requested_outputs(body)
            return protocols.parse_invocations(body, schema, self.max_rows), None, None
        except RequestError:
            raise
        except (RecursionError, ValueError, TypeError, KeyError, IndexError) as e:
            # Input no check foresaw: still the client's request, never a model failure (it must not count
            # against a canary, nor tell a retrying proxy to retry).
            logger.warning("unreadable %s request body: %s: %s", proto, type(e).__name__, e)
            raise RequestError(400, f"the request body cannot be read: {type(e).__name__}: {str(e)[:200]}") from e

    async def _predict(self, request: Request, name: str | None, proto: str, pinned: str | None = None) -> JSONResponse:
        """``pinned``: a version named in the route (OIP v2 ``/versions/{v}``) instead of the traffic split."""
        t0 = time.perf_counter()
        rid, had = request_id(request)
        entry: ModelEntry | None = None
        version: str | None = None
        calling = False  # only a failure of the model call counts against the version (canary analysis)
        try:
            self._ensure_loop()
            check_bearer(request.headers.get("authorization"), self.tokens, admin=False)
            if name is None:  # /invocations names no model: ?model=NAME, or the only one served
                name = request.query_params.get("model")
                if name is None and len(self.models) != 1:
                    raise RequestError(400, f"{len(self.models)} models are served ({sorted(self.models)}); "
                                       "use /v1/models/{name}/predict or /invocations?model=NAME", "model")
                name = name or next(iter(self.models))
            entry = self._entry(name)
            version = entry.router.choose() if pinned is None else self._version(entry, pinned)
            cols, client_id, wanted = await self._parse(request, proto, entry.schemas[version])
            info = entry.versions[version]  # held: the version may be retired while its answer is on the way
            calling = True
            out = await self._call(entry, info, cols, rid)
        except RequestError as e:
            # A name this ingress does not serve is counted under one label: clients must not be able to
            # grow the metric's label set (one series per made-up name).
            label = name if name in self.models else ("" if name is None else "<unknown>")
            self.metrics.observe(label, version or "", proto, e.status, time.perf_counter() - t0)
            return self._reply(e.status, e.to_dict(), rid, had, name, version)
        except Exception as e:
            logger.exception("predict failed (request %s)", rid)
            if calling and entry is not None and version is not None and version in entry.versions:
                entry.window(version).record((time.perf_counter() - t0) * 1e3, ok=False)
            self.metrics.observe(name or "", version or "", proto, 503, time.perf_counter() - t0)
            return self._reply(503, {"error": f"the model could not answer: {type(e).__name__}: {e}"}, rid, had,
                               name, version)
        seconds = time.perf_counter() - t0
        preds, proba = out["predictions"], out["probabilities"]
        if version in entry.versions:  # a retired version's late answers no longer count for analysis
            entry.window(version).record(seconds * 1e3, ok=True, predictions=preds)
        entry.remember(rid, version, preds)
        self.metrics.observe(name, version, proto, 200, seconds, out.get("batch_size"), len(preds))
        meta = info.meta
        if proto == "v1":
            body = protocols.v1_response(name, version, rid, preds, proba, meta.get("classes"))
        elif proto == "v2":
            body = protocols.v2_response(name, version, rid, preds, proba, client_id, wanted)
        else:
            body = protocols.invocations_response(name, version, rid, preds, proba, meta.get("classes"))
        return self._reply(200, body, rid, had, name, version)

    async def _call(self, entry: ModelEntry, info: VersionInfo, cols: dict[str, list[Any]], rid: str) -> dict[str, Any]:
        from ray.exceptions import RayActorError
        from ray.serve.exceptions import ReplicaUnavailableError

        for attempt in range(RETRIES + 1):
            out = await self._forward((info.app_name, cols, rid))
            if not isinstance(out, BaseException):
                return out
            if attempt == RETRIES or not isinstance(out, RayActorError | ReplicaUnavailableError):
                raise out
            self.metrics.retries.labels(entry.name, info.version).inc()
            await asyncio.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    # Up to 8 batches in flight: a new batch forms while earlier ones are predicted, one per replica up to 8.
    @serve.batch(max_batch_size=32, batch_wait_timeout_s=0.001, max_concurrent_batches=8)
    async def _forward(self, items: list[tuple[str, dict[str, list[Any]], str]]) -> list[Any]:
        """One ``predict_many`` call per version in the batch; a failed call's error is each of its requests' answer."""
        groups: dict[str, list[int]] = {}
        for i, (app, _, _) in enumerate(items):
            groups.setdefault(app, []).append(i)
        apps = list(groups)
        replies = await asyncio.gather(
            *(self._handle_for(app).predict_many.remote([items[i][1:] for i in groups[app]]) for app in apps),
            return_exceptions=True)
        out: list[Any] = [None] * len(items)
        for app, reply in zip(apps, replies, strict=True):
            for k, i in enumerate(groups[app]):
                out[i] = reply if isinstance(reply, BaseException) else reply[k]
        return out

    def _admin(self, request: Request) -> tuple[str, bool]:
        rid, had = request_id(request)
        check_bearer(request.headers.get("authorization"), self.tokens, admin=True)
        return rid, had

    # ------------------------------------------------------------------ routes

    @api.post("/v1/models/{name}/predict", openapi_extra=ROWS_EXAMPLE)
    async def v1_predict(self, name: str, request: Request) -> JSONResponse:
        """JSON rows in, predictions (and class probabilities) out."""
        return await self._predict(request, name, "v1")

    @api.post("/v2/models/{name}/infer")
    async def v2_infer(self, name: str, request: Request) -> JSONResponse:
        """Open Inference Protocol v2 inference."""
        return await self._predict(request, name, "v2")

    @api.post("/v2/models/{name}/versions/{version}/infer")
    async def v2_infer_version(self, name: str, version: str, request: Request) -> JSONResponse:
        """Open Inference Protocol v2 inference on one deployed version, whatever the traffic split says."""
        return await self._predict(request, name, "v2", pinned=version)

    @api.post("/invocations")
    async def invocations(self, request: Request) -> JSONResponse:
        """MLflow scoring-server formats: dataframe_split, dataframe_records, instances, inputs."""
        return await self._predict(request, None, "invocations")

    @api.post("/v1/models/{name}/feedback")
    async def feedback(self, name: str, request: Request) -> JSONResponse:
        """True labels for earlier requests: {"request_ids": [...], "labels": [...]}; feeds canary accuracy."""
        rid, had = request_id(request)
        try:
            check_bearer(request.headers.get("authorization"), self.tokens, admin=False)
            entry = self._entry(name)
            _check_content_type(request, csv_ok=False)
            body = parse_json(await self._body(request), self.max_body)
            if not isinstance(body, dict):
                raise RequestError(400, "expected an object {'request_ids': [...], 'labels': [...]}")
            ids, labels = body.get("request_ids"), body.get("labels")
            if not isinstance(ids, list) or not isinstance(labels, list) or len(ids) != len(labels):
                raise RequestError(422, "expected {'request_ids': [...], 'labels': [...]} of equal length",
                                   "request_ids")
            if len(ids) > self.max_rows:
                raise RequestError(413, f"{len(ids)} labels in one request; the limit is {self.max_rows} "
                                   "(serve.max_rows_per_request)", "request_ids")
            given: dict[str, Any] = {}
            for i, lab in zip(ids, labels, strict=True):
                if given.setdefault(str(i), lab) != lab:
                    raise RequestError(422, f"request id {str(i)!r} has two different labels in this request "
                                       f"({given[str(i)]!r} and {lab!r})", "labels")
            metas = [v.meta for v in entry.versions.values() if getattr(v, "meta", None)]
            if metas:  # every served version of a name has the same task; classes may differ: any counts
                classes = list(dict.fromkeys(c for m in metas for c in (m.get("classes") or []))) or None
                check_labels(labels, metas[0]["task"], classes)
            seen = {str(i) for i, lab in zip(ids, labels, strict=True) if entry.feedback(str(i), lab)}
            unknown = list(dict.fromkeys(str(i) for i in ids if str(i) not in seen))
            if self.settings.get("monitor_dir"):
                from mlops_ray.monitor.feedback import record_feedback

                result = await asyncio.to_thread(record_feedback, self.settings["monitor_dir"],
                                                 [str(i) for i in ids], labels, model_name=name)
                # Unknown = neither answered recently by this ingress nor found in the prediction log.
                in_log_unknown = set(result.unknown_ids)
                unknown = [i for i in unknown if i in in_log_unknown]
        except RequestError as e:
            return self._reply(e.status, e.to_dict(), rid, had, name, None)
        except Exception as e:  # the monitor refused the labels (e.g. a null label)
            return self._reply(422, {"error": str(e), "field": None, "status": 422}, rid, had, name, None)
        return self._reply(200, {"received": len(ids), "matched_recent": len(seen), "unknown": len(unknown),
                                 "unknown_ids": unknown[:MAX_UNKNOWN_IDS]}, rid, had, name, None)

    @api.get("/v2/health/live")
    async def live(self) -> dict[str, Any]:
        return {"live": True}

    @api.get("/v2/health/ready")
    async def ready(self) -> JSONResponse:
        ok = bool(self.models) and all(e.rollout.weights() for e in self.models.values())
        return JSONResponse({"ready": ok, "models": sorted(self.models)}, status_code=200 if ok else 503)

    @api.get("/v2/models/{name}/ready")
    async def model_ready(self, name: str) -> JSONResponse:
        e = self.models.get(name)
        if e is None:  # the protocol's "false" is a 4xx; a model that is not served here is not found
            return JSONResponse({"name": name, "ready": False, "error": f"model {name!r} is not served here"},
                                status_code=404)
        ok = bool(e.rollout.weights())
        return JSONResponse({"name": name, "ready": ok}, status_code=200 if ok else 503)

    @api.get("/v2/models/{name}/versions/{version}/ready")
    async def version_ready(self, name: str, version: str) -> JSONResponse:
        e = self.models.get(name)
        if e is None or version not in e.versions:
            return JSONResponse({"name": name, "version": version, "ready": False,
                                 "error": f"version {version!r} of {name!r} is not deployed here"}, status_code=404)
        return JSONResponse({"name": name, "version": version, "ready": True})

    @api.get("/v2/models/{name}")
    async def model_metadata(self, name: str, request: Request) -> JSONResponse:
        """The serving (stable) version's inputs and outputs, every deployed version, and the traffic split."""
        return self._metadata(request, name, None)

    @api.get("/v2/models/{name}/versions/{version}")
    async def version_metadata(self, name: str, version: str, request: Request) -> JSONResponse:
        """One deployed version's inputs and outputs."""
        return self._metadata(request, name, version)

    def _metadata(self, request: Request, name: str, version: str | None) -> JSONResponse:
        rid, had = request_id(request)
        try:
            check_bearer(request.headers.get("authorization"), self.tokens, admin=False)
            e = self._entry(name)
            v = e.rollout.stable or next(iter(e.rollout.weights())) if version is None else self._version(e, version)
        except RequestError as err:
            return self._reply(err.status, err.to_dict(), rid, had, name, None)
        meta = e.versions[v].meta
        body = protocols.v2_metadata(name, list(e.versions), e.schemas[v], meta["task"], meta.get("classes"))
        body["traffic"] = e.rollout.weights()
        return self._reply(200, body, rid, had, name, v)

    @api.get("/v2")
    async def server_metadata(self) -> dict[str, Any]:
        """OIP v2 server metadata."""
        from mlops_ray.runtime import package_version

        return protocols.v2_server_metadata(package_version())

    @api.get("/metrics")
    async def prometheus(self) -> Response:
        return Response(self.metrics.render(), media_type=CONTENT_TYPE)

    @api.get("/admin/status")
    async def admin_status(self, request: Request) -> JSONResponse:
        try:
            rid, had = self._admin(request)
        except RequestError as e:
            return self._reply(e.status, e.to_dict(), *request_id(request), None, None)
        return self._reply(200, await self.status(), rid, had, None, None)

    @api.post("/admin/models/{name}/rollback")
    async def admin_rollback(self, name: str, request: Request) -> JSONResponse:
        """Flip traffic to the previous (warm) version, or drop a running canary."""
        return await self._admin_action(request, name, self.rollback)

    @api.post("/admin/models/{name}/promote")
    async def admin_promote(self, name: str, request: Request) -> JSONResponse:
        """Make the running canary stable now."""
        return await self._admin_action(request, name, self.promote)

    async def _admin_action(self, request: Request, name: str, action: Any) -> JSONResponse:
        rid, had = request_id(request)
        try:
            self._admin(request)
            reason = request.query_params.get("reason") or "requested through the admin API"
            out = await action(name, reason)
        except RequestError as e:
            return self._reply(e.status, e.to_dict(), rid, had, name, None)
        except Exception as e:  # ServeError: nothing to roll back to, no canary to promote
            return self._reply(409, {"error": str(e)}, rid, had, name, None)
        return self._reply(200, out, rid, had, name, out["status"]["stable"])
