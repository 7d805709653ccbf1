"""Localization: which translation a subscriber sees (pure tables), and the same through the
public API with the chosen locale stored on the personalized offer."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from offerd.offers.localization import choose_locale, localize
from tests.support.app import TestApp
from tests.support.catalog import offer, seed


@pytest.mark.unit
@pytest.mark.parametrize(
    ("requested", "available", "expected"),
    [
        # --- exact -------------------------------------------------------------------------------
        ("fr-FR", ["de-DE", "fr-FR"], "fr-FR"),
        # an exact regional match beats the bare language
        ("en-GB", ["en", "en-GB"], "en-GB"),
        # case does not matter (BCP 47 tags are case-insensitive); the stored tag is returned
        ("FR-fr", ["fr-FR"], "fr-FR"),
        ("fr-fr", ["FR-FR"], "FR-FR"),
        # "_" is taken as "-" (fr_FR is how POSIX / Java spell it), either side
        ("fr_FR", ["fr-FR"], "fr-FR"),
        ("fr-FR", ["fr_FR"], "fr_FR"),
        # surrounding blanks are no part of a tag
        (" fr-FR ", ["fr-FR"], "fr-FR"),
        ("de", ["de", "de-AT"], "de"),
        # --- by language ---------------------------------------------------------------------------
        # fr-CA has no translation of its own: the plain language is the closest
        ("fr-CA", ["fr", "fr-FR"], "fr"),
        ("fr-CA", ["fr-FR", "fr"], "fr"),
        # only a sibling region exists: better French than the default language
        ("fr-CA", ["de", "fr-FR"], "fr-FR"),
        # several siblings: the first one defined, so the answer is stable
        ("fr-CA", ["fr-BE", "fr-FR"], "fr-BE"),
        # a bare language request takes a regional translation of it
        ("pt", ["pt-BR"], "pt-BR"),
        # the language part is compared case-insensitively too
        ("FR_ca", ["fr"], "fr"),
        # a three-letter language
        ("haw-US", ["haw"], "haw"),
        # --- no match: the offer's default ---------------------------------------------------
        ("de-DE", ["fr", "en-US"], None),
        # a shared prefix is not a shared language ("f" is not "fr")
        ("fr", ["f", "fra"], None),
        # nothing asked, or nothing translated
        (None, ["fr"], None),
        ("", ["fr"], None),
        ("fr", [], None),
    ],
)
def test_choose_locale(requested: str | None, available: list[str], expected: str | None) -> None:
    assert choose_locale(requested, available) == expected


DEFINITION: dict[str, Any] = {
    "content": {"title": "Before you go", "description": "Here is something for you."},
    "default_locale": "en",
    "options": [
        {"id": "discount", "label": "20% off", "processing_type": "billing_update"},
        {"id": "talk", "label": "Talk to us", "processing_type": "url_redirect"},
    ],
    "translations": {
        "fr": {
            "content": {"title": "Avant de partir", "description": "Un petit cadeau."},
            "options": {"discount": {"label": "20 % de remise"}, "talk": {"label": "Parlons-en"}},
        },
        # a partial translation: the title and one label only
        "de-DE": {
            "content": {"title": "Bevor Sie gehen"},
            "options": {"discount": {"label": "20 % Rabatt"}},
        },
        # labels only
        "es": {"options": {"talk": {"label": "Hablemos"}}},
    },
}


@pytest.mark.unit
@pytest.mark.parametrize(
    ("requested", "title", "description", "labels", "locale"),
    [
        # a full translation replaces the content and every label
        (
            "fr-FR",
            "Avant de partir",
            "Un petit cadeau.",
            ["20 % de remise", "Parlons-en"],
            "fr",
        ),
        # a partial one replaces what it defines and keeps the rest in the default language
        (
            "de-DE",
            "Bevor Sie gehen",
            "Here is something for you.",
            ["20 % Rabatt", "Talk to us"],
            "de-DE",
        ),
        # de-AT falls back to the only German there is
        (
            "de-AT",
            "Bevor Sie gehen",
            "Here is something for you.",
            ["20 % Rabatt", "Talk to us"],
            "de-DE",
        ),
        # labels only: the content stays
        ("es-MX", "Before you go", "Here is something for you.", ["20% off", "Hablemos"], "es"),
        # no translation: the default content, and the default locale is what was shown
        ("ja-JP", "Before you go", "Here is something for you.", ["20% off", "Talk to us"], "en"),
        (None, "Before you go", "Here is something for you.", ["20% off", "Talk to us"], "en"),
    ],
)
def test_localize(
    requested: str | None, title: str, description: str, labels: list[str], locale: str
) -> None:
    pristine = copy.deepcopy(DEFINITION)
    content, options, chosen = localize(DEFINITION, requested)
    assert content == {"title": title, "description": description}
    assert [o["label"] for o in options] == labels
    assert chosen == locale
    # fields a translation never touches are kept as they are
    assert [(o["id"], o["processing_type"]) for o in options] == [
        ("discount", "billing_update"),
        ("talk", "url_redirect"),
    ]
    # the offer's definition itself is not changed by localizing it
    assert DEFINITION == pristine


@pytest.mark.unit
def test_localize_without_translations_or_default_locale() -> None:
    definition = {
        k: v for k, v in DEFINITION.items() if k not in ("translations", "default_locale")
    }
    content, options, chosen = localize(definition, "fr-FR")
    assert content["title"] == "Before you go"
    assert options[0]["label"] == "20% off"
    # nothing says which language the default content is in
    assert chosen is None


# --- through the public API -----------------------------------------------------------------

TRANSLATIONS = {
    "fr": {
        "content": {"title": "Avant de partir", "description": "Un petit cadeau."},
        "options": {"discount": {"label": "20 % de remise"}, "talk": {"label": "Parlons-en"}},
    },
    "pt-BR": {"content": {"title": "Antes de ir"}},
}


@pytest.mark.parametrize(
    ("locale", "title", "first_label", "stored"),
    [
        # exact language tag asked for
        ("fr", "Avant de partir", "20 % de remise", "fr"),
        # fr-CA: by language
        ("fr-CA", "Avant de partir", "20 % de remise", "fr"),
        # POSIX spelling of a regional tag
        ("pt_br", "Antes de ir", "20% off", "pt-BR"),
        # no translation: the default content, stored as the default locale
        ("it-IT", "Before you go", "20% off", "en"),
    ],
)
async def test_request_locale_translates_and_is_stored(
    app: TestApp, locale: str, title: str, first_label: str, stored: str
) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(translations=TRANSLATIONS, default_locale="en"))
    r = await app.post(
        "/api/v2/personalized_offers",
        keys["publishable"],
        json={"customer_id": "cus_1", "request_context": {"locale": locale}},
    )
    assert r.status_code == 200, r.text
    (po,) = r.json()["personalized_offers"]
    assert po["content"]["title"] == title
    assert po["options"][0]["label"] == first_label
    # an option the translation does not name keeps its label
    assert po["options"][1]["label"] == "Go Pro"
    (row,) = await app.fetch("SELECT locale, content, options FROM personalized_offers")
    assert row["locale"] == stored
    # what the subscriber saw is what is stored
    assert row["content"]["title"] == title
    assert row["options"][0]["label"] == first_label


async def test_form_encoded_locale(app: TestApp) -> None:
    """The SDKs send request_context[locale] form-encoded: the same translation."""
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(translations=TRANSLATIONS))
    r = await app.post(
        "/api/v2/personalized_offers",
        keys["publishable"],
        data={"customer_id": "cus_1", "request_context[locale]": "fr-BE"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["personalized_offers"][0]["content"]["title"] == "Avant de partir"
    (row,) = await app.fetch("SELECT locale FROM personalized_offers")
    assert row["locale"] == "fr"


async def test_no_locale_and_no_default_locale_stores_null(app: TestApp) -> None:
    keys = await seed(app)
    await app.put("acme", "offers/stay", offer(translations=TRANSLATIONS))
    r = await app.post(
        "/api/v2/personalized_offers", keys["publishable"], json={"customer_id": "cus_1"}
    )
    assert r.json()["personalized_offers"][0]["content"]["title"] == "Before you go"
    (row,) = await app.fetch("SELECT locale FROM personalized_offers")
    assert row["locale"] is None


@pytest.mark.parametrize(
    ("translations", "message"),
    [
        # a label for an option the offer does not have is a typo
        ({"fr": {"options": {"nope": {"label": "Non"}}}}, "unknown options"),
        # not a language tag
        ({"french!": {"content": {"title": "Avant"}}}, "pattern"),
        # an empty translated title would show nothing
        ({"fr": {"content": {"title": ""}}}, "translations[fr][content][title] : cannot be blank"),
    ],
)
async def test_translations_are_validated(
    app: TestApp, translations: dict[str, Any], message: str
) -> None:
    await app.create_site()
    r = await app.admin("PUT", "/sites/acme/offers/stay", offer(translations=translations))
    assert r.status_code == 400, r.text
    assert message in r.json()["message"]
