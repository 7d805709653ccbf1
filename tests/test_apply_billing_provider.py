"""``billing_provider:`` in ``offerd apply -f``: credentials come from environment variables the
file names, never from the file; stored encrypted, compared in a dry run, and never printed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from offerd.cli.catalog_file import CatalogError, parse
from offerd.common.secrets import SecretBox
from tests.support.app import SECRET_KEY
from tests.test_apply_catalog import apply, lines, query

STRIPE_KEY = "sk_test_51CatalogKeyAbCdEf9876"
STRIPE_WEBHOOK = "whsec_CatalogWebhookSecret1234"


def catalog(provider: dict[str, Any]) -> dict[str, Any]:
    return {"sites": {"acme": {"name": "Acme", "billing_provider": provider}}}


STRIPE_FILE = {
    "type": "stripe",
    "secret_key_env": "ACME_STRIPE_KEY",
    "webhook_secret_env": "ACME_STRIPE_WEBHOOK",
    "api_base": "https://stripe-proxy.example.com",
}


@pytest.fixture
def stripe_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ACME_STRIPE_KEY", STRIPE_KEY)
    monkeypatch.setenv("ACME_STRIPE_WEBHOOK", STRIPE_WEBHOOK)


def test_apply_stores_the_provider_with_credentials_from_the_environment(
    db_url: str, tmp_path: Path, stripe_env: None
) -> None:
    dry = apply(db_url, tmp_path, catalog(STRIPE_FILE), "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "+ billing_provider acme" in lines(dry)
    assert query(db_url, "SELECT * FROM billing_providers") == []

    result = apply(db_url, tmp_path, catalog(STRIPE_FILE))
    assert result.returncode == 0, result.stderr
    for output in (dry.stdout + dry.stderr, result.stdout + result.stderr):
        assert STRIPE_KEY not in output and STRIPE_WEBHOOK not in output
    (row,) = query(db_url, "SELECT * FROM billing_providers WHERE site_id = 'acme'")
    assert row["type"] == "stripe"
    assert STRIPE_KEY not in repr(row) and STRIPE_WEBHOOK not in repr(row)
    box = SecretBox([SECRET_KEY])
    assert box.decrypt(row["config"]["secret_key"]) == STRIPE_KEY
    assert box.decrypt(row["config"]["webhook_secret"]) == STRIPE_WEBHOOK
    assert row["config"]["api_base"] == "https://stripe-proxy.example.com"

    again = apply(db_url, tmp_path, catalog(STRIPE_FILE), "--dry-run")
    assert "= billing_provider acme" in lines(again)


def test_a_changed_credential_is_an_update_named_without_its_value(
    db_url: str, tmp_path: Path, stripe_env: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert apply(db_url, tmp_path, catalog(STRIPE_FILE)).returncode == 0
    monkeypatch.setenv("ACME_STRIPE_KEY", "rk_live_RotatedKeyXyz0000")
    dry = apply(db_url, tmp_path, catalog(STRIPE_FILE), "--dry-run")
    assert "~ billing_provider acme (secret_key)" in lines(dry)
    assert "RotatedKeyXyz" not in dry.stdout + dry.stderr


def test_a_literal_credential_in_the_file_is_refused(
    db_url: str, tmp_path: Path, stripe_env: None
) -> None:
    literal = {**STRIPE_FILE, "secret_key": STRIPE_KEY}
    del literal["secret_key_env"]
    result = apply(db_url, tmp_path, catalog(literal))
    assert result.returncode == 2
    assert "sites.acme.billing_provider.secret_key" in result.stderr
    assert "environment variable" in result.stderr
    assert STRIPE_KEY not in result.stdout + result.stderr
    assert query(db_url, "SELECT * FROM sites") == []


def test_api_base_goes_through_the_outbound_guard(
    db_url: str, tmp_path: Path, stripe_env: None
) -> None:
    result = apply(db_url, tmp_path, catalog({**STRIPE_FILE, "api_base": "https://10.1.2.3"}))
    assert result.returncode == 2
    assert "sites.acme.billing_provider.api_base" in result.stderr
    assert "private" in result.stderr


# each row: the section, the environment, the place the error names (and never a value)
@pytest.mark.parametrize(
    ("section", "environ", "where"),
    [
        # the variable named is not set
        (STRIPE_FILE, {"ACME_STRIPE_WEBHOOK": STRIPE_WEBHOOK}, "secret_key_env"),
        # set, but not a Stripe key: the error points at the variable's entry
        (
            STRIPE_FILE,
            {"ACME_STRIPE_KEY": "pk_test_notsecret123", "ACME_STRIPE_WEBHOOK": STRIPE_WEBHOOK},
            "secret_key_env",
        ),
        # no credential named at all
        ({"type": "stripe", "webhook_secret_env": "W"}, {"W": STRIPE_WEBHOOK}, "secret_key_env"),
        # not a variable's name
        ({**STRIPE_FILE, "secret_key_env": "$KEY"}, {}, "secret_key_env"),
        # Chargebee's password written in the file
        (
            {
                "type": "chargebee",
                "site": "acme-test",
                "api_key_env": "K",
                "webhook_username": "u",
                "webhook_password": "hunter2hunter2",
            },
            {"K": "test_key"},
            "webhook_password",
        ),
    ],
)
def test_bad_sections_name_the_place_in_the_file(
    section: dict[str, Any], environ: dict[str, str], where: str
) -> None:
    import yaml

    with pytest.raises(CatalogError) as caught:
        parse(yaml.safe_dump(catalog(section)), environ)
    message = str(caught.value)
    assert message.startswith(f"sites.acme.billing_provider.{where}:"), message
    for value in (*environ.values(), "hunter2hunter2"):
        assert value not in message


def test_the_ledger_needs_no_credentials() -> None:
    import yaml

    (site,) = parse(yaml.safe_dump(catalog({"type": "ledger"})), {}).values()
    assert site.billing_provider is not None
    assert site.billing_provider.type == "ledger"


CHARGEBEE_FILE = {
    "type": "chargebee",
    "site": "acme-test",
    "api_key_env": "ACME_CB_KEY",
    "webhook_username": "offerd",
    "webhook_password_env": "ACME_CB_PASSWORD",
}


def with_offer(provider: dict[str, Any], action: dict[str, Any]) -> dict[str, Any]:
    option = {
        "id": "deal",
        "label": "Deal",
        "processing_type": "billing_update",
        "billing_action": action,
    }
    spec = catalog(provider)
    spec["sites"]["acme"]["offers"] = {
        "stay": {
            "name": "Stay",
            "status": "active",
            "content": {"title": "Stay"},
            "options": [option],
        }
    }
    return spec


def test_an_offer_a_chargebee_site_cannot_fulfil_is_refused_and_nothing_written(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACME_CB_KEY", "test_cb_catalog_key_1234")
    monkeypatch.setenv("ACME_CB_PASSWORD", "a-long-webhook-password")
    result = apply(db_url, tmp_path, with_offer(CHARGEBEE_FILE, {"type": "convert_trial"}))
    assert result.returncode != 0
    assert "offers.stay" in result.stderr and "Chargebee" in result.stderr
    assert query(db_url, "SELECT id FROM sites WHERE id = 'acme'") == []


def test_ids_are_checked_against_an_imported_mirror(
    db_url: str, tmp_path: Path, stripe_env: None
) -> None:
    assert apply(db_url, tmp_path, catalog(STRIPE_FILE)).returncode == 0
    with psycopg.connect(db_url, autocommit=True) as conn:  # as an import leaves it
        conn.execute(
            "INSERT INTO billing_syncs (site_id, state, last_synced_at, updated_at) "
            "VALUES ('acme', 'idle', now(), now())"
        )
        conn.execute(
            "INSERT INTO coupons (site_id, id, name, discount_type, discount_percentage, "
            "duration_type, mirrored_at, created_at, updated_at) "
            "VALUES ('acme', 'SAVE10', 'Save 10', 'percentage', 10, 'forever', now(), now(), now())"
        )
    unknown = apply(
        db_url, tmp_path, with_offer(STRIPE_FILE, {"type": "apply_coupon", "coupon_id": "NOPE"})
    )
    assert unknown.returncode != 0
    assert "options[0][billing_action][coupon_id]" in unknown.stderr and "'NOPE'" in unknown.stderr
    assert query(db_url, "SELECT id FROM offers") == []
    known = apply(
        db_url, tmp_path, with_offer(STRIPE_FILE, {"type": "apply_coupon", "coupon_id": "SAVE10"})
    )
    assert known.returncode == 0, known.stderr
    assert [r["id"] for r in query(db_url, "SELECT id FROM offers")] == ["stay"]
