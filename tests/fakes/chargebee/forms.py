"""Reading Chargebee's form parameters: bracket notation as the SDK's ``util.serialize`` writes it.

``subscription_items[item_price_id][0]=p&subscription_items[quantity][0]=2&coupon_ids[0]=c``;
booleans as ``true``/``false``; list filters (``status[in]``) as a JSON or Python list literal.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping

from tests.fakes.chargebee.errors import missing, wrong

Params = Mapping[str, str]


def text(params: Params, name: str, *, required: bool = False) -> str | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing(name)
        return None
    return value


def integer(params: Params, name: str, *, required: bool = False) -> int | None:
    value = text(params, name, required=required)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise wrong(name, "invalid integer value") from None


def boolean(params: Params, name: str, default: bool = False) -> bool:
    value = text(params, name)
    if value is None:
        return default
    if value not in ("true", "false"):
        raise wrong(name, "invalid boolean value")
    return value == "true"


def choice(params: Params, name: str, allowed: tuple[str, ...], default: str | None) -> str | None:
    value = text(params, name)
    if value is None:
        return default
    if value not in allowed:
        raise wrong(name, f"invalid value {value!r}, expected one of {', '.join(allowed)}")
    return value


def indexed(params: Params, prefix: str) -> dict[int, str]:
    """``prefix[0]=a&prefix[2]=b`` → ``{0: "a", 2: "b"}`` (``prefix`` may contain brackets)."""
    pattern = re.compile(re.escape(prefix) + r"\[(\d+)\]")
    found: dict[int, str] = {}
    for key, value in params.items():
        match = pattern.fullmatch(key)
        if match:
            found[int(match.group(1))] = value
    return found


def string_list(value: str, param: str) -> list[str]:
    try:
        parsed = json.loads(value)
    except ValueError:
        try:
            parsed = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            raise wrong(param, "invalid list") from None
    if not isinstance(parsed, list):
        raise wrong(param, "invalid list")
    return [str(v) for v in parsed]
