"""Errors that reach a client, each rendered as Chargebee's error body.

The tree (HTTP status, ``type``, ``api_error_code``)::

    APIError
     ├── InvalidRequest ............ 400 invalid_request   invalid_request
     │    ├── ParamWrongValue ...... 400 invalid_request   param_wrong_value
     │    │    └── ParamMissing .... 400 invalid_request   param_wrong_value (error_code param_not_present)
     │    └── PayloadTooLarge ...... 413 invalid_request   request_too_large
     ├── AuthenticationFailed ...... 401 untyped           api_authentication_failed
     ├── AuthorizationFailed ....... 403 untyped           api_authorization_failed
     ├── NotFound .................. 404 invalid_request   resource_not_found
     ├── MethodNotAllowed .......... 405 invalid_request   http_method_not_supported
     ├── InvalidState .............. 409 invalid_request   invalid_state_for_request
     ├── UnableToProcess ........... 422 invalid_request   unable_to_process_request
     ├── RateLimited ............... 429 operation_failed  api_request_limit_exceeded
     ├── InternalError ............. 500 operation_failed  internal_error
     └── ServiceUnavailable ........ 503 operation_failed  db_connection_failure

Every body is ``{message, type, api_error_code, param?, error_code, http_status_code}``:
the official SDKs read ``api_error_code`` and ``type`` to pick an exception class and also
read the legacy ``error_code`` and ``http_status_code``.
"""

from __future__ import annotations

from typing import Any, ClassVar


class APIError(Exception):
    status: ClassVar[int] = 400
    type: ClassVar[str] = "invalid_request"
    api_error_code: ClassVar[str] = "invalid_request"
    error_code: ClassVar[str | None] = None

    def __init__(
        self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "message": self.message,
            "type": self.type,
            "api_error_code": self.api_error_code,
        }
        if self.param is not None:
            body["param"] = self.param
        body["error_code"] = self.error_code or self.api_error_code
        body["http_status_code"] = self.status
        return body


class InvalidRequest(APIError):
    pass


class ParamWrongValue(InvalidRequest):
    api_error_code = "param_wrong_value"

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"{param} : {message}", param=param)


class ParamMissing(ParamWrongValue):
    error_code = "param_not_present"

    def __init__(self, param: str, message: str = "cannot be blank") -> None:
        super().__init__(param, message)


class PayloadTooLarge(InvalidRequest):
    status = 413
    api_error_code = "request_too_large"


class AuthenticationFailed(APIError):
    status = 401
    type = "untyped"
    api_error_code = "api_authentication_failed"


class AuthorizationFailed(APIError):
    status = 403
    type = "untyped"
    api_error_code = "api_authorization_failed"


class NotFound(APIError):
    status = 404
    api_error_code = "resource_not_found"


class MethodNotAllowed(APIError):
    status = 405
    api_error_code = "http_method_not_supported"


class InvalidState(APIError):
    status = 409
    api_error_code = "invalid_state_for_request"


class UnableToProcess(APIError):
    status = 422
    api_error_code = "unable_to_process_request"


class RateLimited(APIError):
    status = 429
    type = "operation_failed"
    api_error_code = "api_request_limit_exceeded"


class InternalError(APIError):
    status = 500
    type = "operation_failed"
    api_error_code = "internal_error"


class ServiceUnavailable(APIError):
    status = 503
    type = "operation_failed"
    api_error_code = "db_connection_failure"


ERROR_STATUSES: tuple[type[APIError], ...] = (
    InvalidRequest,
    PayloadTooLarge,
    AuthenticationFailed,
    AuthorizationFailed,
    NotFound,
    MethodNotAllowed,
    InvalidState,
    UnableToProcess,
    RateLimited,
    InternalError,
    ServiceUnavailable,
)
