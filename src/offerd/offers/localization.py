"""Which translation of an offer a subscriber sees (pure).

``request_context[locale]`` is matched exactly (case-insensitively, ``_`` taken as ``-``), then by
language (``fr-CA`` takes ``fr``, or else any ``fr-*``, the first one defined), then the offer's
default content. The translation replaces the content and option labels it defines.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _norm(tag: str) -> str:
    return tag.strip().replace("_", "-").lower()


def choose_locale(requested: str | None, available: list[str]) -> str | None:
    if not requested or not available:
        return None
    wanted = _norm(requested)
    by_norm = {_norm(tag): tag for tag in available}
    if wanted in by_norm:
        return by_norm[wanted]
    language = wanted.split("-", 1)[0]
    if language in by_norm:
        return by_norm[language]
    for tag in available:
        if _norm(tag).split("-", 1)[0] == language:
            return tag
    return None


def localize(
    definition: Mapping[str, Any], requested: str | None
) -> tuple[dict[str, Any], list[dict[str, Any]], str | None]:
    """(content, options, locale chosen) for a request; locale None means the default content."""
    translations: Mapping[str, Any] = definition.get("translations") or {}
    content = dict(definition["content"])
    options = [dict(o) for o in definition["options"]]
    tag = choose_locale(requested, list(translations))
    if tag is None:
        return content, options, definition.get("default_locale")
    translation = translations[tag]
    content.update({k: v for k, v in (translation.get("content") or {}).items() if v is not None})
    labels = translation.get("options") or {}
    for option in options:
        label = (labels.get(option["id"]) or {}).get("label")
        if label:
            option["label"] = label
    return content, options, tag
