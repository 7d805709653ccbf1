"""The fulfillment state machine: ``in_progress -> completed | failed``, one way, once.

Pure: it decides; the service writes what it decided (status, timestamps, error and the
``fulfilled``/``failed`` event) in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["in_progress", "completed", "failed"]
ProcessingType = Literal["billing_update", "checkout", "url_redirect", "webhook", "email"]
ErrorCode = Literal[
    "billing_update_failed",
    "checkout_abandoned",
    "external_fulfillment_failed",
    "internal_error",
    "fulfillment_expired",
]

MERCHANT_DRIVEN: frozenset[str] = frozenset({"url_redirect", "webhook", "email"})
MAX_ERROR_MESSAGE = 200


class IllegalTransition(Exception):
    """The fulfillment is not in a state that allows the change."""


@dataclass(frozen=True, slots=True)
class Transition:
    status: Status
    event: Literal["fulfilled", "failed"]
    error_code: ErrorCode | None = None
    error_message: str | None = None


def complete(current: Status) -> Transition:
    if current != "in_progress":
        raise IllegalTransition(f"the fulfillment is already {current}")
    return Transition("completed", "fulfilled")


def fail(current: Status, code: ErrorCode, message: str) -> Transition:
    if current != "in_progress":
        raise IllegalTransition(f"the fulfillment is already {current}")
    return Transition("failed", "failed", code, message[:MAX_ERROR_MESSAGE])


def merchant_update(
    current: Status,
    processing_type: str,
    requested: Literal["completed", "failed"],
    failure_reason: str | None,
) -> Transition:
    """``POST /offer_fulfillments/{id}``: only the types the merchant fulfils, only while in progress."""
    if processing_type not in MERCHANT_DRIVEN:
        raise IllegalTransition(
            f"a {processing_type} fulfillment is completed by offerd, not by an update"
        )
    if requested == "completed":
        return complete(current)
    return fail(current, "external_fulfillment_failed", failure_reason or "")
