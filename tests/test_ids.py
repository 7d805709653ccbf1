"""Identifiers: time-ordered ids sort by creation; secret tokens carry the bits they claim."""

from __future__ import annotations

import time

import pytest

from offerd.common.ids import _ALPHABET, _base62, new_id, secret_token

pytestmark = pytest.mark.unit


def _decode(text: str) -> int:
    value = 0
    for char in text:
        value = value * 62 + _ALPHABET.index(char)
    return value


def test_base62_round_trips_at_every_width() -> None:
    # every value that fits: 14 digits hold up to 62**14 - 1 (more than the 83 random bits)
    for n in (0, 1, 61, 62, 3843, 3844, 62**5 - 1, 2**83 - 1, 62**14 - 1):
        for width in (14, 15):
            text = _base62(n, width)
            assert len(text) == width
            assert _decode(text) == n


def test_new_ids_sort_by_creation_time() -> None:
    first = new_id("po")
    time.sleep(0.002)  # the next millisecond; ordering, not timing, is what is checked
    second = new_id("po")
    assert first < second
    assert len(first) == 25 and first.startswith("po_")


def test_secret_tokens_are_long_enough_for_their_bits() -> None:
    token = secret_token("hp", bits=160)
    # 160 bits need 27 base62 digits (62**27 > 2**160)
    assert len(token) == len("hp_") + 27
    assert len({secret_token("hp", bits=160) for _ in range(1000)}) == 1000
