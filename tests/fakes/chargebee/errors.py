"""Chargebee's error body, as the fake answers it.

Statuses and codes follow Chargebee's error reference and OpenAPI enumerations (summarised in
``shared/spec/offers-api.md`` §7.1): 400 ``param_wrong_value`` for a bad or missing parameter,
401 ``api_authentication_failed``, 404 ``resource_not_found``, 405 ``http_method_not_supported``,
409 ``invalid_state_for_request``, 422 ``unable_to_process_request`` (an idempotency key reused
with other parameters), 429 ``api_request_limit_exceeded``, 500 ``internal_error``,
503 ``internal_temporary_error``.
"""

from __future__ import annotations

from typing import Any

_TYPES = {401: "untyped", 403: "untyped", 429: "operation_failed", 500: "operation_failed"}
_TYPES.update({502: "operation_failed", 503: "operation_failed", 504: "operation_failed"})


class CbError(Exception):
    """A refusal the fake answers with Chargebee's error body."""

    def __init__(
        self,
        status: int,
        api_error_code: str,
        message: str,
        *,
        param: str | None = None,
        error_code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.api_error_code = api_error_code
        self.message = message
        self.param = param
        self.error_code = error_code or api_error_code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "type": _TYPES.get(self.status, "invalid_request"),
            "api_error_code": self.api_error_code,
        }
        if self.param is not None:
            body["param"] = self.param
        body.update(
            error_code=self.error_code, error_msg=self.message, http_status_code=self.status
        )
        return body


def missing(param: str) -> CbError:
    return CbError(
        400,
        "param_wrong_value",
        f"{param} : cannot be blank",
        param=param,
        error_code="param_not_present",
    )


def wrong(param: str, why: str) -> CbError:
    return CbError(400, "param_wrong_value", f"{param} : {why}", param=param)


def not_found(what: str, ident: str, param: str | None = None) -> CbError:
    return CbError(404, "resource_not_found", f"{what} {ident} not found", param=param)


def bad_state(message: str) -> CbError:
    return CbError(409, "invalid_state_for_request", message)


def transient(status: int, retry_after: int | None = None) -> CbError:
    """An outage the fault injector answers with (nothing was processed)."""
    code = {429: "api_request_limit_exceeded", 503: "internal_temporary_error"}.get(
        status, "internal_error"
    )
    headers = {"retry-after": str(retry_after)} if retry_after is not None else {}
    return CbError(status, code, "injected failure: try again later", headers=headers)
