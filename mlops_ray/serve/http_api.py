"""The ingress's FastAPI app: its OpenAPI description, request ids, and FastAPI's own errors in our shape.

The routes themselves are the ``Ingress`` deployment's methods (ingress.py), declared on this ``api``.
"""

# No `from __future__ import annotations` here: FastAPI must see the real types (Request) of the handlers.

import uuid

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

api = FastAPI(
    title="mlops-ray model server",
    description="Predictions (v1 JSON rows, Open Inference Protocol v2, MLflow /invocations), health, "
                "metrics and rollout administration. Predict routes need `Authorization: Bearer <token>`; "
                "/admin routes need the admin token; health and metrics routes are open.",
    version="1",
)

ROWS_EXAMPLE = {"requestBody": {"content": {"application/json": {"schema": {"type": "object"}, "example": {
    "rows": [{"feature_a": 1.0, "feature_b": "red"}]}}}, "required": True}}


def request_id(request: Request) -> tuple[str, bool]:
    """(request id, whether the client or Serve's proxy already put it in the headers).

    Serve's proxy echoes whatever ``X-Request-ID`` arrived (or one it made), so a header present at all is
    never sent a second time; an empty one gets an id made here, in the body only.
    """
    rid = request.headers.get("x-request-id")
    if rid is None:
        return uuid.uuid4().hex, False
    return (rid.strip() or uuid.uuid4().hex), True


@api.exception_handler(StarletteHTTPException)
async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    """FastAPI's own answers (unknown route, wrong method) in this server's error shape, with a request id."""
    rid, had = request_id(request)
    headers = dict(exc.headers or {})
    if not had:
        headers["X-Request-ID"] = rid
    body = {"error": str(exc.detail), "field": None, "status": exc.status_code, "request_id": rid, "model_name": None,
            "model_version": None}
    return JSONResponse(body, status_code=exc.status_code, headers=headers)


__all__ = ["ROWS_EXAMPLE", "api", "request_id"]
