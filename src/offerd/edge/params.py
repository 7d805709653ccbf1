"""Building blocks for public request params: Chargebee's length limits, blanks as absent."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, StringConstraints

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


class Params(BaseModel):
    """Unknown params are ignored, as newer SDKs may send more than this server knows."""

    model_config = ConfigDict(extra="ignore")


def _blank_is_none(value: Any) -> Any:
    # The Python SDK sends None as "" in form bodies.
    return None if value == "" else value


def _email(value: str | None) -> str | None:
    if value is not None and not _EMAIL.match(value):
        raise ValueError("invalid email")
    return value


Blank = BeforeValidator(_blank_is_none)

Required50 = Annotated[str, StringConstraints(min_length=1, max_length=50)]
Required100 = Annotated[str, StringConstraints(min_length=1, max_length=100)]
Opt50 = Annotated[Annotated[str, StringConstraints(max_length=50)] | None, Blank]
Opt64 = Annotated[Annotated[str, StringConstraints(max_length=64)] | None, Blank]
Opt100 = Annotated[Annotated[str, StringConstraints(max_length=100)] | None, Blank]
Opt150 = Annotated[Annotated[str, StringConstraints(max_length=150)] | None, Blank]
Opt250 = Annotated[Annotated[str, StringConstraints(max_length=250)] | None, Blank]
Opt255 = Annotated[Annotated[str, StringConstraints(max_length=255)] | None, Blank]
Email70 = Annotated[
    Annotated[str, StringConstraints(max_length=70)] | None, Blank, AfterValidator(_email)
]
