"""Stripe's v1 request vocabulary: form bodies in bracket notation, checked against a schema.

``items[0][price]=p&metadata[k]=v&pause_collection=`` becomes
``{"items": [{"price": "p"}], "metadata": {"k": "v"}, "pause_collection": ""}``; a name the
endpoint's schema doesn't know is refused as Stripe refuses it (400 ``parameter_unknown``).
The fake's schemas are the subset of Stripe's parameters it implements: a parameter Stripe knows
but the fake doesn't model is refused too, so offerd can't rely on one the fake would ignore.

Schema: ``None`` is a scalar, a dict an object (``{"*": None}``: any keys, like metadata),
``[schema]`` an indexed list. ``""`` is accepted for any object or list (Stripe's "unset").
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

Schema = Any


class StripeError(Exception):
    """An error answer in Stripe's shape: ``{"error": {"type", "code", "message", "param"}}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        stored: bool = True,
    ) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.code, self.param = (
            status,
            message,
            type_,
            code,
            param,
        )
        self.stored = stored  # False: refused before "endpoint execution began" (never replayed)

    def body(self, request_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = f"https://stripe.com/docs/error-codes/{self.code.replace('_', '-')}"
        if self.param:
            error["param"] = self.param
        error["request_log_url"] = f"https://dashboard.stripe.com/test/logs/{request_id}"
        return {"error": error}


def missing(param: str) -> StripeError:
    return StripeError(
        400,
        f"Missing required param: {param}.",
        code="parameter_missing",
        param=param,
        stored=False,
    )


def no_such(kind: str, oid: str, param: str | None = "id", *, status: int = 404) -> StripeError:
    """The object named in the URL is 404; one named by a parameter is 400 (as Stripe answers)."""
    return StripeError(status, f"No such {kind}: '{oid}'", code="resource_missing", param=param)


def invalid(param: str, message: str) -> StripeError:
    return StripeError(400, message, code="parameter_invalid", param=param, stored=False)


_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


def parse_form(raw: str) -> dict[str, Any]:
    """Bracket-notation form (or query string) to nested dicts; lists stay dicts keyed "0", "1"."""
    out: dict[str, Any] = {}
    for name, value in parse_qsl(raw, keep_blank_values=True):
        m = _KEY.match(name)
        if not m:
            raise StripeError(
                400,
                f"Invalid parameter name: {name}",
                code="parameter_unknown",
                param=name,
                stored=False,
            )
        path = [m.group(1), *re.findall(r"\[([^\[\]]*)\]", m.group(2))]
        node = out
        for i, part in enumerate(path[:-1]):
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            if part == "" and i:  # a[]=x form: append
                raise StripeError(400, f"Invalid array: {name}", param=name, stored=False)
            node = child
        node[path[-1]] = value
    return out


def check(params: dict[str, Any], schema: dict[str, Schema], prefix: str = "") -> dict[str, Any]:
    """Refuse unknown names; turn indexed dicts into lists. Returns the cleaned params."""
    clean: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else key
        if key not in schema and "*" not in schema:
            raise StripeError(
                400,
                f"Received unknown parameter: {name}",
                code="parameter_unknown",
                param=name,
                stored=False,
            )
        sub = schema.get(key, schema.get("*"))
        clean[key] = _check_value(value, sub, name)
    return clean


def _check_value(value: Any, sub: Schema, name: str) -> Any:
    if sub is None:
        if isinstance(value, dict):
            inner = next(iter(value))
            raise StripeError(
                400,
                f"Received unknown parameter: {name}[{inner}]",
                code="parameter_unknown",
                param=f"{name}[{inner}]",
                stored=False,
            )
        return value
    if value == "":
        return ""
    if isinstance(sub, list):
        if not isinstance(value, dict) or not all(k.isdigit() for k in value):
            raise invalid(name, f"Invalid array: {name}")
        ordered = [value[k] for k in sorted(value, key=int)]
        return [_check_value(v, sub[0], f"{name}[{i}]") for i, v in enumerate(ordered)]
    if not isinstance(value, dict):
        raise invalid(name, f"Invalid object: {name}")
    return check(value, sub, name)


def integer(
    params: dict[str, Any], name: str, default: int | None = None, *, label: str | None = None
) -> int | None:
    if name not in params or params[name] == "":
        return default
    try:
        return int(params[name])
    except (TypeError, ValueError):
        raise StripeError(
            400,
            f"Invalid integer: {params[name]}",
            code="parameter_invalid_integer",
            param=label or name,
            stored=False,
        ) from None


def boolean(params: dict[str, Any], name: str, *, label: str | None = None) -> bool | None:
    if name not in params:
        return None
    if params[name] in ("true", "false"):
        return bool(params[name] == "true")
    raise StripeError(400, f"Invalid boolean: {params[name]}", param=label or name, stored=False)


def one_of(
    params: dict[str, Any], name: str, allowed: tuple[str, ...], *, label: str | None = None
) -> str | None:
    value = params.get(name)
    if value is None:
        return None
    if value not in allowed:
        raise invalid(
            label or name, f"Invalid {label or name}: must be one of {', '.join(allowed)}"
        )
    return str(value)
