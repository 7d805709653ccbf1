"""The body decoder: JSON and Chargebee's bracket-notation forms decode alike; anything else is
a 400 in Chargebee's shape, never another exception."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson
import pytest
from chargebee import util as sdk_util
from hypothesis import given, settings
from hypothesis import strategies as st

from offerd.edge.errors import APIError, InvalidRequest, ParamWrongValue
from offerd.edge.wire import decode_body, decode_form, param_name

pytestmark = pytest.mark.unit

FORM = "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # nested object in brackets, as Chargebee documents request_context[...]
        (
            "request_context[locale]=fr-FR&customer_id=c1",
            {"request_context": {"locale": "fr-FR"}, "customer_id": "c1"},
        ),
        # arrays by index, kept in index order whatever the order on the wire
        ("roles[1]=b&roles[0]=a", {"roles": ["a", "b"]}),
        # empty brackets append
        ("roles[]=a&roles[]=b", {"roles": ["a", "b"]}),
        # a key given twice is a list of its values
        ("roles=a&roles=b", {"roles": ["a", "b"]}),
        # custom is a JSON-typed param: its string value is JSON
        ("custom=%7B%22viewCount%22%3A6%7D", {"custom": {"viewCount": 6}}),
        # the Python SDK sends None as an empty string; custom "" means absent
        ("custom=", {"custom": None}),
        # blank values stay strings (validation decides what a blank means)
        ("first_name=", {"first_name": ""}),
        # percent-encoded UTF-8
        ("first_name=J%C3%BCrgen", {"first_name": "Jürgen"}),
        # objects in arrays
        ("a[0][x]=1&a[0][y]=2&a[1][x]=3", {"a": [{"x": "1", "y": "2"}, {"x": "3"}]}),
    ],
)
def test_form_decodes_bracket_notation(body: str, expected: dict[str, Any]) -> None:
    assert decode_form(body) == expected


@pytest.mark.parametrize(
    "body",
    [
        "a=1&a[b]=2",  # a value and a structure at once
        "a[b]=2&a=1",  # the same, the other way round
        "a[0]=1&a[x]=2",  # an array and an object at once
        "[x]=1",  # no name
        "a[b=1",  # unbalanced bracket
        "a[99999]=1",  # index beyond the limit
        "a[b][c][d][e][f][g][h][i]=1",  # deeper than the limit
        "custom=%7Bnot-json",  # custom must be JSON
        "a=%FF",  # not UTF-8
    ],
)
def test_bad_forms_are_param_errors(body: str) -> None:
    with pytest.raises(InvalidRequest):
        decode_form(body)


def test_json_and_form_content_types() -> None:
    assert decode_body("application/json;charset=UTF-8", b'{"a": 1}') == {"a": 1}
    assert decode_body(f"{FORM}; charset=utf-8", b"a=1") == {"a": "1"}
    assert decode_body(None, b"") == {}
    for content_type, raw in [
        ("text/plain", b"a=1"),
        (None, b"a=1"),
        ("application/json", b"[1, 2]"),
        ("application/json", b"{"),
        ("multipart/form-data; boundary=x", b"--x--"),
    ]:
        with pytest.raises(InvalidRequest):
            decode_body(content_type, raw)


def test_param_names_use_brackets() -> None:
    assert param_name(("request_context", "locale")) == "request_context[locale]"
    assert param_name(("roles", 0)) == "roles[0]"
    assert param_name(("customer_id",)) == "customer_id"


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=300))
def test_any_form_text_is_a_dict_or_a_400(text: str) -> None:
    try:
        assert isinstance(decode_form(text), dict)
    except APIError as exc:
        assert exc.status == 400
        assert isinstance(exc.body()["message"], str)


_segment = st.one_of(
    st.text(alphabet="abcxyz_[]0123", min_size=0, max_size=6),
    st.integers(min_value=0, max_value=2000).map(str),
)


@settings(max_examples=400, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(_segment, min_size=1, max_size=10).map(
                lambda parts: parts[0] + "".join(f"[{p}]" for p in parts[1:])
            ),
            st.text(max_size=20),
        ),
        max_size=12,
    )
)
def test_arbitrary_bracket_bodies_never_raise_anything_but_a_400(
    pairs: list[tuple[str, str]],
) -> None:
    body = urlencode(pairs)
    try:
        decode_body(FORM, body.encode())
    except APIError as exc:
        assert exc.status == 400
        assert exc.body()["api_error_code"] in ("param_wrong_value", "invalid_request")


# NUL is the one character offerd refuses (PostgreSQL cannot store it): see below
_scalar = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
    min_size=1,
    max_size=12,
)
# not the SDK's list-filter operators (in, not_in, between): it serializes their lists as one
# Python repr string, for the list endpoints' filters, not for a body's structure
_key = st.from_regex(r"[a-z][a-z_]{0,9}", fullmatch=True).filter(
    lambda k: k not in ("in", "not_in", "between")
)
_params = st.dictionaries(
    _key,
    st.one_of(
        _scalar,
        st.lists(_scalar, min_size=1, max_size=4),
        st.dictionaries(_key, _scalar, min_size=1, max_size=4),
    ),
    max_size=6,
)


@settings(max_examples=300, deadline=None)
@given(
    _params,
    st.dictionaries(_key, st.integers(min_value=-(2**53), max_value=2**53) | _scalar, max_size=4),
)
def test_bodies_from_the_sdk_serializer_decode_to_the_same_structure(
    params: dict[str, Any], custom: dict[str, Any]
) -> None:
    """Chargebee's own form serializer (chargebee.util.serialize) round-trips through our decoder."""
    params = {k: v for k, v in params.items() if k != "custom"}
    serialized = sdk_util.serialize(params)
    if custom:
        serialized["custom"] = orjson.dumps(custom).decode()
    decoded = decode_body(FORM, urlencode(list(serialized.items())).encode())
    expected = dict(params)
    if custom:
        expected["custom"] = custom
    assert decoded == expected


def test_param_errors_name_the_param() -> None:
    with pytest.raises(ParamWrongValue) as info:
        decode_form("a[0]=1&a[x]=2")
    assert info.value.param == "a[x]"


@pytest.mark.parametrize(
    ("content_type", "raw", "param"),
    [
        ("application/json", b'{"last_name": "a\\u0000b"}', "last_name"),
        ("application/json", b'{"custom": {"k": ["x", "\\u0000"]}}', "custom[k][1]"),
        (FORM, b"customer_id=a%00b", "customer_id"),
    ],
)
def test_nul_characters_are_refused(content_type: str, raw: bytes, param: str) -> None:
    # PostgreSQL text cannot hold NUL: refusing it here keeps it from becoming a 500 later
    with pytest.raises(ParamWrongValue) as info:
        decode_body(content_type, raw)
    assert info.value.param == param


def test_json_nesting_is_bounded() -> None:
    deep = b'{"custom": ' + b'{"a": ' * 40 + b"1" + b"}" * 40 + b"}"
    with pytest.raises(ParamWrongValue) as info:
        decode_body("application/json", deep)
    assert info.value.param == "custom"
