"""What crosses the wire: request bodies in, JSON out.

Chargebee's SDKs send the offers operations as JSON; Chargebee's own spec (and curl users) send
``application/x-www-form-urlencoded`` with bracket notation: ``request_context[locale]=fr-FR``,
``roles[0]=admin``, and JSON-typed params (``custom``) as a JSON string. Both decode to the same
structure here, and every failure is a 400 in Chargebee's shape, never anything else.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar
from urllib.parse import parse_qsl

import orjson
from pydantic import BaseModel, ValidationError
from starlette.responses import Response

from offerd.edge.errors import InvalidRequest, ParamMissing, ParamWrongValue

JSON_TYPES = ("application/json",)
FORM_TYPES = ("application/x-www-form-urlencoded",)
JSON_KEYS = frozenset({"custom"})

MAX_FORM_FIELDS = 1000
MAX_DEPTH = 8
MAX_INDEX = 999
MAX_JSON_DEPTH = 32

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def media_type(content_type: str | None) -> str | None:
    if not content_type:
        return None
    return content_type.split(";", 1)[0].strip().lower() or None


def decode_body(
    content_type: str | None,
    raw: bytes,
    *,
    json_keys: frozenset[str] = JSON_KEYS,
    forms: bool = True,
) -> dict[str, Any]:
    """Decode a POST body into a dict, or raise ``InvalidRequest``.

    ``forms=False`` (the admin API) takes JSON only: curl's ``-d`` sends a form unless told
    otherwise, and decoding that form as the JSON document it holds would end in a misleading
    ``name : cannot be blank``, so the error says what to send instead."""
    kind = media_type(content_type)
    if not raw.strip() and (kind is None or not forms):
        return {}
    if not forms and kind not in JSON_TYPES:
        raise InvalidRequest(
            f"The admin API takes JSON: send the header 'content-type: application/json' "
            f"(got {content_type or 'no content type'})"
        )
    if kind in JSON_TYPES:
        if not raw.strip():
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise InvalidRequest(f"The request body is not valid JSON: {exc.msg}") from None
        if not isinstance(body, dict):
            raise InvalidRequest("The request body must be a JSON object")
        check_values(body)
        return body
    if kind in FORM_TYPES:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest("The request body is not valid UTF-8") from None
        return decode_form(text, json_keys=json_keys)
    raise InvalidRequest(
        f"Unsupported Content-Type {content_type or '(none)'}: send application/json or "
        "application/x-www-form-urlencoded"
    )


class _Array(dict[int, Any]):
    """An array while it is being filled: index -> value, made a list at the end."""


class _Repeated(list[str]):
    """A key given more than once (``roles=a&roles=b``): its values, in order."""


def decode_form(text: str, *, json_keys: frozenset[str] = JSON_KEYS) -> dict[str, Any]:
    try:
        pairs = parse_qsl(
            text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS, errors="strict"
        )
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidRequest(f"The form body cannot be parsed: {exc}") from None
    root: dict[str, Any] = {}
    for key, value in pairs:
        _put(root, key, value)
    out = _finish(root)
    assert isinstance(out, dict)
    for name in json_keys:
        if name in out:
            out[name] = _json_param(name, out[name])
    check_values(out)
    return out


def check_values(value: Any, loc: tuple[int | str, ...] = ()) -> None:
    """What PostgreSQL cannot store (NUL characters) or JSON cannot serialize back (nesting
    deeper than any offer attribute needs) is a 400 here, not a failure further in."""
    if len(loc) > MAX_JSON_DEPTH:
        raise ParamWrongValue(param_name(loc[:1]), f"is nested deeper than {MAX_JSON_DEPTH} levels")
    if isinstance(value, str):
        if "\x00" in value:
            raise ParamWrongValue(param_name(loc), "contains a NUL character")
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                raise ParamWrongValue(
                    param_name(loc) if loc else "body", "has a key with a NUL character"
                )
            check_values(item, (*loc, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_values(item, (*loc, index))


def _put(root: dict[str, Any], raw_key: str, value: str) -> None:
    key = raw_key if len(raw_key) <= 100 else raw_key[:100] + "..."
    match = _KEY.match(raw_key)
    if match is None:
        raise ParamWrongValue(key, "is not a valid parameter name")
    path: list[str] = [match.group(1), *_SEGMENT.findall(match.group(2))]
    if len(path) > MAX_DEPTH:
        raise ParamWrongValue(key, f"is nested deeper than {MAX_DEPTH} levels")
    node: dict[Any, Any] = root
    for i, segment in enumerate(path):
        last = i == len(path) - 1
        slot: Any
        if isinstance(node, _Array):
            if segment == "":
                slot = len(node)
            elif segment.isdigit() and len(segment) <= 4 and int(segment) <= MAX_INDEX:
                slot = int(segment)
            else:
                raise ParamWrongValue(key, f"has an array index that is not 0..{MAX_INDEX}")
            if slot > MAX_INDEX:
                raise ParamWrongValue(key, f"has more than {MAX_INDEX + 1} elements")
        else:
            if segment == "":
                raise ParamWrongValue(key, "has an empty name")
            slot = segment
        if last:
            current = node.get(slot)
            if isinstance(current, dict):
                raise ParamWrongValue(key, "is given both as a value and as a structure")
            if isinstance(current, _Repeated):
                current.append(value)
            elif current is not None:
                node[slot] = _Repeated((current, value))
            else:
                node[slot] = value
            return
        following = path[i + 1]
        wants_array = following == "" or following.isdigit()
        child = node.get(slot)
        if child is None:
            child = _Array() if wants_array else {}
            node[slot] = child
        elif not isinstance(child, dict) or isinstance(child, _Array) != wants_array:
            raise ParamWrongValue(key, "is given both as a value and as a structure")
        node = child


def _finish(node: Any) -> Any:
    if isinstance(node, _Repeated):
        return list(node)
    if isinstance(node, _Array):
        return [_finish(node[k]) for k in sorted(node)]
    if isinstance(node, dict):
        return {k: _finish(v) for k, v in node.items()}
    return node


def _json_param(name: str, value: Any) -> Any:
    if not isinstance(value, str):
        return value
    if value == "":
        return None
    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError:
        raise ParamWrongValue(name, "is not valid JSON") from None


# --- params ------------------------------------------------------------------------------------

M = TypeVar("M", bound=BaseModel)


def param_name(loc: Iterable[int | str]) -> str:
    """``("request_context", "locale")`` -> ``request_context[locale]``, as clients send it."""
    parts = [str(p) for p in loc]
    if not parts:
        return "body"
    return parts[0] + "".join(f"[{p}]" for p in parts[1:])


def parse_params(model: type[M], data: Mapping[str, Any]) -> M:
    """Validate params into ``model``; the first problem becomes a Chargebee 400."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_error(exc, data) from None


def client_loc(loc: Iterable[int | str], data: Any) -> list[int | str]:
    """The error's location as the client wrote it: without the tags pydantic inserts for a
    discriminated union (``options[0][billing_action][extend_trial][days]`` is sent as
    ``options[0][billing_action][days]``; the tag is the value of ``type``)."""
    out: list[int | str] = []
    node = data
    for part in loc:
        if (
            isinstance(node, Mapping)
            and isinstance(part, str)
            and part not in node
            and node.get("type") == part
        ):
            continue
        out.append(part)
        if isinstance(node, Mapping):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return out


def validation_error(exc: ValidationError, data: Any = None) -> ParamWrongValue:
    error = exc.errors(include_url=False)[0]
    kind = error["type"]
    loc = client_loc(error["loc"], data)
    if kind in ("union_tag_invalid", "union_tag_not_found"):
        loc.append("type")  # the discriminator itself is what's wrong
        name = param_name(loc)
        if kind == "union_tag_not_found":
            return ParamMissing(name)
        expected = (error.get("ctx") or {}).get("expected_tags", "")
        return ParamWrongValue(name, f"invalid value; expected {expected}".strip())
    name = param_name(loc)
    ctx = error.get("ctx") or {}
    if kind == "missing" or (kind == "string_too_short" and ctx.get("min_length") == 1):
        return ParamMissing(name)
    if kind == "string_too_long":
        return ParamWrongValue(name, f"cannot be more than {ctx['max_length']} characters")
    if kind in ("literal_error", "enum"):
        return ParamWrongValue(name, f"invalid value; expected {ctx.get('expected', '')}".strip())
    if kind == "string_type":
        return ParamWrongValue(name, "must be a string")
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return ParamWrongValue(name, "must be an object")
    if kind == "list_type":
        return ParamWrongValue(name, "must be an array")
    if kind == "extra_forbidden":
        return ParamWrongValue(name, "is not a known parameter")
    message = str(error.get("msg", "invalid value"))
    return ParamWrongValue(name, message[0].lower() + message[1:] if message else "invalid value")
