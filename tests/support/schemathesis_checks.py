"""Chargebee's error body (spec §7.1) as a plain assertion and as a schemathesis check."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import schemathesis

ERROR_KEYS = frozenset({"message", "type", "api_error_code", "error_code", "http_status_code"})
OPTIONAL_ERROR_KEYS = frozenset({"param"})


def error_shape_problems(status: int, body: Any) -> list[str]:
    """What is wrong with ``body`` as Chargebee's error body for a ``status`` response."""
    if not isinstance(body, dict):
        return [f"the body is not a JSON object: {body!r}"]
    problems = []
    keys = set(body)
    if missing := ERROR_KEYS - keys:
        problems.append(f"missing keys {sorted(missing)}")
    if extra := keys - ERROR_KEYS - OPTIONAL_ERROR_KEYS:
        problems.append(f"unexpected keys {sorted(extra)}")
    for key in ("message", "type", "api_error_code", "error_code"):
        if key in body and not (isinstance(body[key], str) and body[key]):
            problems.append(f"{key} is not a non-empty string: {body[key]!r}")
    if "param" in body and not isinstance(body["param"], str):
        problems.append(f"param is not a string: {body['param']!r}")
    code = body.get("http_status_code")
    if "http_status_code" in body and (type(code) is not int or code != status):
        problems.append(f"http_status_code {code!r} is not the response's status {status}")
    return problems


def parse_error_body(status: int, text: str) -> dict[str, Any]:
    """The error body, asserted to be in Chargebee's shape."""
    try:
        body = json.loads(text)
    except ValueError:
        raise AssertionError(f"HTTP {status}: the error body is not JSON: {text[:500]!r}") from None
    problems = error_shape_problems(status, body)
    assert not problems, (
        f"HTTP {status}: not Chargebee's error body ({'; '.join(problems)}): {text}"
    )
    assert isinstance(body, dict)
    return body


def chargebee_error_shape(
    ctx: schemathesis.CheckContext,
    response: schemathesis.Response,
    case: schemathesis.Case[Any],
) -> None:
    """Every 4xx/5xx body is exactly Chargebee's error body, its status inside it."""
    if response.status_code < 400:
        return
    parse_error_body(response.status_code, response.text)
