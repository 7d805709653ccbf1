"""Unix seconds as the admin API takes them: no later than the last second Python's datetime
holds (9999-12-31T23:59:59Z). A later one cannot be turned into a datetime to store, nor read
back, so it is refused as the client's mistake (400 naming the field), not found by a 500."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, Field

MAX_UNIX_SECONDS = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=UTC).timestamp())


def _representable(value: int) -> int:
    if value > MAX_UNIX_SECONDS:
        raise ValueError(f"must be before the year 10000 (at most {MAX_UNIX_SECONDS})")
    return value


UnixSeconds = Annotated[int, Field(ge=0), AfterValidator(_representable)]
