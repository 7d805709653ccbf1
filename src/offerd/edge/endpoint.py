"""Plumbing every public POST shares: read and validate params, run under idempotency, and say
so in the OpenAPI document (both body encodings, every error)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel
from starlette.responses import Response

from offerd.db import Conn
from offerd.edge import idempotency
from offerd.edge.auth import Caller
from offerd.edge.deps import Services
from offerd.edge.errors import ERROR_STATUSES
from offerd.edge.headers import RequestMeta
from offerd.edge.wire import decode_body, parse_params

M = TypeVar("M", bound=BaseModel)


def is_admin(path: str) -> bool:
    """The admin API takes JSON only; the public API takes forms too, as Chargebee's does."""
    return path.startswith("/admin/")


async def read_params(request: Request, model: type[M]) -> tuple[M, dict[str, Any]]:
    raw = await request.body()
    data = decode_body(
        request.headers.get("content-type"), raw, forms=not is_admin(request.url.path)
    )
    return parse_params(model, data), data


async def run_post(
    svc: Services,
    request: Request,
    caller: Caller,
    meta: RequestMeta,
    data: dict[str, Any],
    work: Callable[[Conn], Awaitable[Response]],
) -> Response:
    scope = None
    if meta.idempotency_key is not None:
        scope = idempotency.Scope(
            site=caller.site.id,
            api_key=caller.key_id,
            method=request.method,
            path=request.url.path,
            key=meta.idempotency_key,
            request_hash=idempotency.request_hash(data),
        )
    async with svc.db.connection() as conn:
        return await idempotency.run(
            conn,
            scope,
            work,
            now=svc.clock.now(),
            ttl_seconds=svc.settings.idempotency_ttl_seconds,
        )


# --- OpenAPI ----------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    """Chargebee's error body."""

    message: str
    type: str
    api_error_code: str
    param: str | None = None
    error_code: str
    http_status_code: int


_ERROR_TEXT = {
    400: "Invalid request: a bad parameter (param names it), body or content type",
    401: "The API key is missing, invalid, revoked, or not for the site in the Host",
    403: "The API key lacks the privileges (a publishable key on a full_access operation)",
    404: "A referenced resource does not exist (param names it) or the path is unknown",
    405: "The path does not take this HTTP method",
    409: "The resource is not in a state that allows this request",
    413: "The request body is larger than 1 MiB",
    422: "The idempotency key was used before with different parameters",
    429: "Too many requests",
    500: "An unexpected error; nothing was half-written",
    503: "The database is unreachable; retry with backoff",
}


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    known = {cls.status for cls in ERROR_STATUSES}
    picked = statuses or tuple(sorted(known))
    return {
        status: {"model": ErrorBody, "description": _ERROR_TEXT.get(status, "Error")}
        for status in picked
    }


def body_docs(model: type[BaseModel], *, json_keys: tuple[str, ...] = ()) -> dict[str, Any]:
    """``openapi_extra`` describing a body that may come as JSON or as a bracket-notation form."""
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    defs = schema.pop("$defs", {})
    encoding: dict[str, Any] = {}
    for name, prop in schema.get("properties", {}).items():
        variants = [prop, *prop.get("anyOf", [])]
        if name in json_keys:
            encoding[name] = {"contentType": "application/json"}
        elif any("$ref" in v or v.get("type") == "object" for v in variants):
            encoding[name] = {"style": "deepObject", "explode": True}
    return {
        "requestBody": {
            "required": True,
            "description": "JSON, or application/x-www-form-urlencoded with Chargebee's bracket "
            "notation (request_context[locale]=fr-FR, roles[0]=admin; custom as a JSON string).",
            "content": {
                "application/json": {"schema": schema},
                "application/x-www-form-urlencoded": {"schema": schema, "encoding": encoding},
            },
        },
        "x-offerd-schemas": defs,
    }
