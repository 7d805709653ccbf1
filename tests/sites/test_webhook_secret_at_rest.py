"""The site's signing secret for processing webhooks is encrypted at rest like every other
secret: shown once in the clear, stored sealed, sealed at migrate when an older offerd stored it
in plaintext, re-encrypted by ``offerd secrets rotate``. (That deliveries still sign with it:
tests/fulfillments/test_processing_webhook.py verifies their signatures with the secret shown.)"""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from offerd.common.secrets import SecretBox, generate_key
from tests.support.app import SECRET_KEY, TestApp
from tests.support.cli import run_offerd


def stored(db_url: str, site: str = "acme") -> str:
    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT webhook_secret FROM sites WHERE id = %s", (site,)).fetchone()
    assert row is not None
    value: str = row[0]
    return value


async def test_it_is_shown_once_and_stored_encrypted(app: TestApp, db_url: str) -> None:
    r = await app.admin("PUT", "/sites/acme", {"name": "Acme"})
    shown = r.json()["webhook_secret"]
    assert stored(db_url).startswith("fernet:") and shown not in stored(db_url)
    assert SecretBox([SECRET_KEY]).decrypt(stored(db_url)) == shown
    rotated = (await app.admin("POST", "/sites/acme/webhook_secret")).json()["webhook_secret"]
    assert rotated != shown and rotated not in stored(db_url)
    assert SecretBox([SECRET_KEY]).decrypt(stored(db_url)) == rotated


async def test_a_plaintext_one_is_sealed_at_migrate_and_rotated_by_secrets_rotate(
    app: TestApp, db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await app.admin("PUT", "/sites/acme", {"name": "Acme"})
    with psycopg.connect(db_url) as conn:  # as an older offerd stored it
        conn.execute("UPDATE sites SET webhook_secret = 'whsec_plain_old_secret' WHERE id = 'acme'")
    result = run_offerd(db_url, tmp_path, "migrate")
    assert result.returncode == 0, result.stderr
    sealed = stored(db_url)
    assert sealed.startswith("fernet:")
    assert SecretBox([SECRET_KEY]).decrypt(sealed) == "whsec_plain_old_secret"

    new = generate_key()
    monkeypatch.setenv("OFFERD_SECRET_KEY", f"{new},{SECRET_KEY}")
    result = run_offerd(db_url, tmp_path, "secrets", "rotate")
    assert result.returncode == 0, result.stderr
    assert SecretBox([new]).decrypt(stored(db_url)) == "whsec_plain_old_secret"
    with pytest.raises(Exception, match="none of the keys"):
        SecretBox([SECRET_KEY]).decrypt(stored(db_url))
