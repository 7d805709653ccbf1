"""The console: its users (argon2id password hashes, a role), their sessions (only a SHA-256 of
the cookie's token is stored, with the session's CSRF token and its expiry), the failed sign-ins
the login rate limit counts, and the audit log of every change a person made (who, what, before
and after), written by the console and the admin API alike. Deliveries get a third purpose,
``test``: a channel's test send from the console.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("""
    CREATE TABLE console_users (
        id            text PRIMARY KEY,
        email         text NOT NULL CHECK (email = lower(email) AND length(email) <= 254),
        password_hash text NOT NULL,
        role          text NOT NULL CHECK (role IN ('viewer', 'editor')),
        created_at    timestamptz NOT NULL,
        disabled_at   timestamptz
    );
    CREATE UNIQUE INDEX console_users_email ON console_users (email);

    CREATE TABLE console_sessions (
        token_hash  bytea PRIMARY KEY,
        user_id     text NOT NULL REFERENCES console_users (id) ON DELETE CASCADE,
        csrf_token  text NOT NULL,
        created_at  timestamptz NOT NULL,
        expires_at  timestamptz NOT NULL
    );
    CREATE INDEX console_sessions_user ON console_sessions (user_id);
    CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

    CREATE TABLE console_login_failures (
        key         text NOT NULL,
        failed_at   timestamptz NOT NULL
    );
    CREATE INDEX console_login_failures_key ON console_login_failures (key, failed_at);

    CREATE TABLE audit_log (
        id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at          timestamptz NOT NULL,
        actor       text NOT NULL,
        site_id     text REFERENCES sites (id) ON DELETE CASCADE,
        action      text NOT NULL,
        target      text NOT NULL,
        before      jsonb,
        after       jsonb
    );
    CREATE INDEX audit_log_site ON audit_log (site_id, id DESC);

    ALTER TABLE deliveries DROP CONSTRAINT deliveries_purpose_check;
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_purpose_check
        CHECK (purpose IN ('processing', 'notification', 'test'));
    CREATE INDEX deliveries_test ON deliveries (event_id) WHERE purpose = 'test';
    """)


def downgrade() -> None:
    op.execute("""
    DROP INDEX deliveries_test;
    DELETE FROM deliveries WHERE purpose = 'test';
    ALTER TABLE deliveries DROP CONSTRAINT deliveries_purpose_check;
    ALTER TABLE deliveries ADD CONSTRAINT deliveries_purpose_check
        CHECK (purpose IN ('processing', 'notification'));
    DROP TABLE audit_log;
    DROP TABLE console_login_failures;
    DROP TABLE console_sessions;
    DROP TABLE console_users;
    """)
