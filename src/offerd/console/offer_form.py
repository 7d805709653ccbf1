"""The offer editor's form, both ways: an offer's definition as the fields the editor shows,
and a posted form back into ``OfferIn`` with every problem attached to the field it is about.

Field names are the admin API's parameter names in bracket notation (``content[title]``,
``options[0][billing_action][coupon_id]``), so a validation error's ``param`` *is* the field
to mark. What the editor does not show (translations, ``default_locale``) is carried over from
the offer's current definition unchanged.

Pure: no I/O.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from offerd.billing.actions import BillingAction
from offerd.console.fields import items, mapping, text
from offerd.edge.errors import APIError
from offerd.edge.wire import client_loc, param_name, validation_error
from offerd.offers import targeting
from offerd.offers.models import OfferIn, OfferStatus, ProcessingLayout, ProcessingType

STATUSES: tuple[str, ...] = get_args(OfferStatus)
PROCESSING_TYPES: tuple[str, ...] = get_args(ProcessingType)
LAYOUTS: tuple[str, ...] = get_args(ProcessingLayout)
MAX_OPTIONS = 10


def _action_fields() -> dict[str, tuple[str, ...]]:
    members: tuple[type[BaseModel], ...] = get_args(get_args(BillingAction)[0])
    out: dict[str, tuple[str, ...]] = {}
    for model in members:
        (kind,) = get_args(model.model_fields["type"].annotation)
        out[kind] = tuple(name for name in model.model_fields if name != "type")
    return out


# billing action type -> the parameters it takes (from the models: one definition)
ACTION_FIELDS = _action_fields()
ACTION_PARAMS = sorted({f for fields in ACTION_FIELDS.values() for f in fields})
GUARD_NUMBERS = ("dismiss_cooldown_days", "accept_cooldown_days")
GUARD_LIMITS = ("max_views", "max_acceptances")


def _local(seconds: int | None) -> str:
    if seconds is None:
        return ""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M")


def form_values(definition: dict[str, Any] | None) -> dict[str, Any]:
    """What the editor's fields show for a stored definition (or a new offer)."""
    d = dict(definition or {})
    options = [dict(o) for o in d.get("options", [])]
    for option in options:
        option["billing_action"] = dict(option.get("billing_action") or {})
        option["email_to"] = ", ".join(option.get("email_to") or [])
    if len(options) < MAX_OPTIONS:
        options.append({"billing_action": {}, "blank": True})
    guards = d.get("guards") or {}
    return {
        "name": d.get("name", ""),
        "status": d.get("status", "draft"),
        "priority": d.get("priority", 0),
        "eligibility": d.get("eligibility", ""),
        "content": {
            "title": (d.get("content") or {}).get("title", ""),
            "description": (d.get("content") or {}).get("description", ""),
        },
        "starts_at": _local(d.get("starts_at")),
        "ends_at": _local(d.get("ends_at")),
        "business_entity_id": d.get("business_entity_id", ""),
        "brand_id": d.get("brand_id", ""),
        "guards": {
            **{k: guards.get(k, "") for k in GUARD_NUMBERS},
            **{k: dict(guards.get(k) or {}) for k in GUARD_LIMITS},
        },
        "options": options,
        "translations": d.get("translations") or {},
    }


def _text(value: Any) -> str:
    return value.strip() if isinstance(value, str) else ""


def _unix(param: str, raw: Any, errors: dict[str, str]) -> int | None:
    text = _text(raw)
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp())
    except ValueError:
        errors[param] = "is not a date and time (YYYY-MM-DDTHH:MM, UTC)"
        return None


def _option(raw: dict[str, Any]) -> dict[str, Any] | None:
    """An option's fields, or None for the empty row the editor offers for a new option."""
    action_raw = mapping(raw, "billing_action")
    kind = _text(action_raw.get("type"))
    fields = {
        k: _text(raw.get(k))
        for k in (
            "id",
            "label",
            "processing_type",
            "processing_layout",
            "redirect_url",
            "webhook_url",
        )
    }
    emails = [e.strip() for e in _text(raw.get("email_to")).split(",") if e.strip()]
    if not any(fields.values()) and not kind and not emails:
        return None
    if fields["processing_type"] == "" and not fields["id"] and not fields["label"]:
        return None
    option: dict[str, Any] = {k: v for k, v in fields.items() if v}
    if emails:
        option["email_to"] = emails
    if kind:
        action: dict[str, Any] = {"type": kind}
        for name in ACTION_FIELDS.get(kind, ()):
            value = action_raw.get(name)
            if name == "end_of_term":
                action[name] = value == "on" or value == "true"
            elif _text(value):
                action[name] = _text(value)
        option["billing_action"] = action
    return option


def _guards(raw: dict[str, Any]) -> dict[str, Any] | None:
    out: dict[str, Any] = {}
    for name in GUARD_NUMBERS:
        if _text(raw.get(name)):
            out[name] = _text(raw.get(name))
    for name in GUARD_LIMITS:
        limit = mapping(raw, name)
        values = {k: _text(limit.get(k)) for k in ("count", "period_days")}
        if any(values.values()):
            out[name] = {k: v for k, v in values.items() if v}
    return out or None


def rule_problem(expression: str) -> targeting.RuleError | None:
    """Why an eligibility expression would be refused at save (None: it is fine)."""
    if not expression.strip():
        return None
    try:
        targeting.compile_rule(expression)
    except targeting.RuleError as exc:
        return exc
    return None


def parse(
    form: dict[str, Any], current: dict[str, Any] | None
) -> tuple[OfferIn | None, dict[str, str], dict[str, Any]]:
    """The posted editor form as an offer, or None with the problems by field name. Also returns
    the values to show again (what was typed, not what was stored)."""
    errors: dict[str, str] = {}
    content = mapping(form, "content")
    raw_options = items(form, "options")
    options = [o for o in (_option(r) for r in raw_options if isinstance(r, dict)) if o]
    data: dict[str, Any] = {
        "name": _text(form.get("name")),
        "status": _text(form.get("status")) or "draft",
        "priority": _text(form.get("priority")) or 0,
        "content": {
            "title": _text(content.get("title")),
            "description": content.get("description")
            if isinstance(content.get("description"), str)
            else "",
        },
        "options": options,
    }
    eligibility = text(form, "eligibility")
    if eligibility.strip():
        data["eligibility"] = eligibility
        problem = rule_problem(eligibility)
        if problem is not None:
            errors["eligibility"] = str(problem)
    for name in ("business_entity_id", "brand_id"):
        if _text(form.get(name)):
            data[name] = _text(form.get(name))
    for name in ("starts_at", "ends_at"):
        seconds = _unix(name, form.get(name), errors)
        if seconds is not None:
            data[name] = seconds
    guards = _guards(mapping(form, "guards"))
    if guards:
        data["guards"] = guards
    for carried in ("translations", "default_locale"):
        if current and current.get(carried):
            data[carried] = current[carried]
    shown = form_values({**data, "options": options})
    shown["eligibility"] = eligibility
    for name in ("starts_at", "ends_at"):
        shown[name] = _text(form.get(name))
    offer: OfferIn | None = None
    try:
        offer = OfferIn.model_validate(data)
    except ValidationError as exc:
        errors = {**field_errors(exc, data), **errors}
    if not options:
        errors.setdefault("options[0][id]", "an offer needs at least one option")
    return (offer if not errors else None), errors, shown


def field_errors(exc: ValidationError, data: dict[str, Any]) -> dict[str, str]:
    """Every problem pydantic found, by the field it names (as the API's 400 would name it; a
    problem of the whole form under ``form``), worded as the API words it."""
    errors: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        loc = client_loc(error["loc"], data)
        name = param_name(loc) if loc else "form"
        single = ValidationError.from_exception_data(exc.title, [error])  # type: ignore[list-item]
        errors.setdefault(name, message_of(validation_error(single, data)))
    return errors


def message_of(error: APIError) -> str:
    """The message without the ``param : `` the API puts first (the form shows it by the field)."""
    if error.param and error.message.startswith(f"{error.param} : "):
        return error.message[len(error.param) + 3 :]
    return error.message


def api_error_field(error: APIError) -> tuple[str, str]:
    """Where a service's refusal (a coupon the billing provider lacks, a brand the site does not
    have) belongs in the form."""
    return error.param or "form", message_of(error)
