"""Channel secrets encrypted at rest: never plaintext in the database, still usable by
deliveries, re-encrypted by ``offerd secrets rotate``, and the key's own rules (generated under
OFFERD_HOME for the embedded database, required for an external one)."""

from __future__ import annotations

import base64
import os
import stat
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from offerd.common.secrets import SecretBox, SecretKeyError, box_for, generate_key
from offerd.settings import Settings
from tests.notifications.flows import accept, basic, put_channel, verified, work
from tests.support.app import SECRET_KEY, TestApp, running_app
from tests.support.catalog import seed
from tests.support.cli import run_offerd
from tests.support.receiver import Receiver
from tests.test_config_errors import assert_one_clear_line

HOOK_SECRET = "whsec_" + base64.b64encode(b"k" * 32).decode()
SLACK_URL = "https://hooks.slack.com/services/T000/B000/XXXXsecretpart"
WRITE_KEY = "segment-write-key-1234"
PASSWORD = "basic-auth-password-99"


def stored_channels(db_url: str) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            "SELECT id, type, config::text AS config, secret FROM notification_channels ORDER BY id"
        ).fetchall()


async def add_channels(app: TestApp, hook_url: str) -> dict[str, dict[str, Any]]:
    await seed(app)
    return {
        "hook": await put_channel(
            app,
            "hook",
            {
                "type": "webhook",
                "url": hook_url,
                "secret": HOOK_SECRET,
                "basic_auth": {"username": "offerd", "password": PASSWORD},
            },
        ),
        "ops": await put_channel(app, "ops", {"type": "slack", "webhook_url": SLACK_URL}),
        "seg": await put_channel(app, "seg", {"type": "segment", "write_key": WRITE_KEY}),
    }


async def test_channel_secrets_are_not_stored_in_plaintext(
    app: TestApp, db_url: str, receiver: Receiver
) -> None:
    shown = await add_channels(app, receiver.url_for("/hook"))
    rows = stored_channels(db_url)
    everything = repr(rows)
    for plaintext in (HOOK_SECRET, SLACK_URL, "XXXXsecretpart", WRITE_KEY, PASSWORD):
        assert plaintext not in everything
    by_id = {r["id"]: r for r in rows}
    assert by_id["hook"]["secret"].startswith("fernet:")
    assert by_id["seg"]["secret"].startswith("fernet:")
    assert '"webhook_url": "fernet:' in by_id["ops"]["config"]
    assert '"password": "fernet:' in by_id["hook"]["config"]
    # the admin API shows hints made from the decrypted values, never the values
    assert shown["hook"]["secret_hint"] == "whsec_…" + HOOK_SECRET[-4:]
    assert shown["seg"]["write_key_hint"] == "…" + WRITE_KEY[-4:]
    assert shown["ops"]["webhook_url"] == "https://hooks.slack.com/…" + SLACK_URL[-4:]
    assert shown["hook"]["basic_auth"] == {"username": "offerd", "password": "********"}
    listed = (await app.admin("GET", "/sites/acme/notification_channels")).text
    for plaintext in (HOOK_SECRET, "XXXXsecretpart", WRITE_KEY, PASSWORD):
        assert plaintext not in listed


async def test_deliveries_sign_and_authenticate_with_the_decrypted_secrets(
    app: TestApp, receiver: Receiver
) -> None:
    keys = await seed(app)
    await put_channel(
        app,
        "hook",
        {
            "type": "webhook",
            "url": receiver.url_for("/hook"),
            "secret": HOOK_SECRET,
            "basic_auth": {"username": "offerd", "password": PASSWORD},
            "event_types": ["offer_accepted"],
        },
    )
    await accept(app, keys)
    assert await work(app) == 1
    request = receiver.only()
    assert request.headers["authorization"] == basic("offerd", PASSWORD)
    assert verified(HOOK_SECRET, request)["event_type"] == "offer_accepted"


async def test_values_stored_before_encryption_are_encrypted_at_migrate(
    app: TestApp, db_url: str, tmp_path: Path
) -> None:
    await seed(app)
    await put_channel(app, "ops", {"type": "slack", "webhook_url": SLACK_URL})
    await put_channel(app, "seg", {"type": "segment", "write_key": WRITE_KEY})
    with psycopg.connect(db_url) as conn:  # as an older offerd stored them
        conn.execute("UPDATE notification_channels SET secret = %s WHERE id = 'seg'", (WRITE_KEY,))
        conn.execute(
            "UPDATE notification_channels SET config = jsonb_build_object('webhook_url', %s::text)"
            " WHERE id = 'ops'",
            (SLACK_URL,),
        )
    for _ in range(2):  # idempotent: the second run finds nothing to do
        result = run_offerd(db_url, tmp_path, "migrate")
        assert result.returncode == 0, result.stderr
        assert WRITE_KEY not in repr(stored_channels(db_url))
        assert SLACK_URL not in repr(stored_channels(db_url))
    seg = (await app.admin("GET", "/sites/acme/notification_channels/seg")).json()
    assert seg["write_key_hint"] == "…" + WRITE_KEY[-4:]


async def test_rotation_then_dropping_the_old_key(
    app: TestApp, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_channels(app, "http://127.0.0.1:9/hook")
    stripe_key = "sk_test_RotateMeAbCdEf12345"
    r = await app.admin(
        "PUT",
        "/sites/acme/billing_provider",
        {"type": "stripe", "secret_key": stripe_key, "webhook_secret": "whsec_RotateMe1234"},
    )
    assert r.status_code == 201, r.text
    before = stored_channels(db_url)
    new = generate_key()
    monkeypatch.setenv("OFFERD_SECRET_KEY", f"{new},{SECRET_KEY}")
    for _ in range(2):  # safe to run again (after a crash, say)
        result = run_offerd(db_url, tmp_path, "secrets", "rotate", "--batch", "2")
        assert result.returncode == 0, result.stderr
    after = stored_channels(db_url)
    assert [r["secret"] for r in after] != [r["secret"] for r in before]
    only_new = SecretBox([new])
    by_id = {r["id"]: r for r in after}
    assert only_new.decrypt(by_id["hook"]["secret"]) == HOOK_SECRET
    assert only_new.decrypt(by_id["seg"]["secret"]) == WRITE_KEY
    with psycopg.connect(db_url) as conn:
        (config,) = conn.execute("SELECT config FROM billing_providers").fetchone()  # type: ignore[misc]
    assert only_new.decrypt(config["secret_key"]) == stripe_key
    # the old key gone, the app still reads every secret
    async with running_app(db_url, secret_key=new) as fresh:
        hook = (await fresh.admin("GET", "/sites/acme/notification_channels/hook")).json()
        ops = (await fresh.admin("GET", "/sites/acme/notification_channels/ops")).json()
        billing = (await fresh.admin("GET", "/sites/acme/billing_provider")).json()
    assert hook["secret_hint"] == "whsec_…" + HOOK_SECRET[-4:]
    assert ops["webhook_url"].endswith(SLACK_URL[-4:])
    assert billing["secret_key_hint"] == "…" + stripe_key[-4:]
    # and with only the old key, nothing decrypts any more: rotation really re-encrypted
    with pytest.raises(Exception, match="none of the keys"):
        SecretBox([SECRET_KEY]).decrypt(by_id["hook"]["secret"])


def test_the_embedded_database_gets_a_generated_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OFFERD_SECRET_KEY", raising=False)
    monkeypatch.delenv("OFFERD_DATABASE_URL", raising=False)
    home = tmp_path / "home"
    settings = Settings(_env_file=None, home=home)  # type: ignore[call-arg]
    box = box_for(settings)
    key_file = home / "secret.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    again = box_for(Settings(_env_file=None, home=home, log_level="error"))  # type: ignore[call-arg]
    assert again.decrypt(box.encrypt("x")) == "x"  # the same key, read back
    assert SecretBox([key_file.read_text().strip()]).decrypt(box.encrypt("y")) == "y"
    assert [p.name for p in home.iterdir()] == ["secret.key"]  # no temporary file left


def test_an_external_database_without_a_key_is_refused(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OFFERD_SECRET_KEY", raising=False)
    settings = Settings(_env_file=None, database_url=db_url)  # type: ignore[call-arg]
    with pytest.raises(SecretKeyError):
        box_for(settings)
    for command in ("migrate", "worker"):
        result = run_offerd(db_url, tmp_path, command)
        assert result.returncode == 2
        assert_one_clear_line(result.stderr, "OFFERD_SECRET_KEY is not set", "external database")


def test_a_malformed_key_is_one_line_without_the_key(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFERD_SECRET_KEY", "not-a-fernet-key-hunter2")
    result = run_offerd(db_url, tmp_path, "migrate")
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, "OFFERD_SECRET_KEY")
    assert "hunter2" not in result.stderr
    assert os.environ["OFFERD_SECRET_KEY"] == "not-a-fernet-key-hunter2"


def test_the_generated_key_is_warned_about_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from structlog.testing import capture_logs

    from offerd.common import secrets

    monkeypatch.delenv("OFFERD_SECRET_KEY", raising=False)
    monkeypatch.delenv("OFFERD_DATABASE_URL", raising=False)
    monkeypatch.setattr(secrets, "_warned", False)
    with capture_logs() as logs:
        for home in ("a", "b"):  # two boxes built in one process (not one cached box)
            box_for(Settings(_env_file=None, home=tmp_path / home))  # type: ignore[call-arg]
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 1, logs
    assert "set OFFERD_SECRET_KEY in production" in warnings[0]["message"]
