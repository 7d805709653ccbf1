"""A configuration mistake is one clear line on stderr and a non-zero exit, not a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import run_offerd


def assert_one_clear_line(stderr: str, *expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    for text in expected:
        assert text in lines[0], lines[0]


def test_a_bad_setting_is_one_line_naming_the_variable(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OFFERD_LOG_FORMAT", "bogus")
    result = run_offerd(db_url, tmp_path, "migrate")
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "OFFERD_LOG_FORMAT", "bogus", "'json' or 'console'")


@pytest.mark.parametrize("command", ["migrate", "worker", "serve"])
def test_an_unreachable_database_is_one_line_without_the_password(
    tmp_path: Path, command: str
) -> None:
    url = "postgresql://bob:hunter2@127.0.0.1:1/offerd"  # nothing listens on port 1
    result = run_offerd(url, tmp_path, command)
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "cannot connect to the database", "127.0.0.1:1/offerd")
    assert "hunter2" not in result.stderr


def test_an_unusable_home_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("")
    monkeypatch.setenv("OFFERD_HOME", str(tmp_path / "a-file" / "home"))
    result = run_offerd("", tmp_path, "migrate")  # no URL: the embedded PostgreSQL
    assert result.returncode != 0
    assert_one_clear_line(result.stderr, "cannot start the embedded PostgreSQL", "a-file")
