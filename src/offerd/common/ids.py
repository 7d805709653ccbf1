"""Opaque identifiers.

``new_id`` ids start with the creation time so that inserts land at the right edge of their
B-tree index; ``secret_token`` ids are pure randomness (>= 128 bits) for anything that grants
access by being known (hosted pages, API keys, one-time links).
"""

from __future__ import annotations

import secrets
import time

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]  # two digits per divmod


def _base62(n: int, width: int) -> str:
    out = []
    for _ in range(width // 2):
        n, r = divmod(n, 3844)
        out.append(_PAIRS[r])
    if width % 2:
        out.append(_ALPHABET[n % 62])
    return "".join(reversed(out))


def new_id(prefix: str) -> str:
    """``prefix_`` + 8 chars of milliseconds + 14 random chars (83 bits): 25 chars with a 2-char prefix."""
    ms = time.time_ns() // 1_000_000
    return f"{prefix}_{_base62(ms, 8)}{_base62(secrets.randbits(83), 14)}"  # 62**14 > 2**83


def secret_token(prefix: str, *, bits: int = 192) -> str:
    width = -(-bits * 1000 // 5954)  # log2(62) = 5.954 bits per char
    return f"{prefix}_{_base62(secrets.randbits(bits), width)}"
