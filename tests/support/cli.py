"""Running the installed ``offerd`` command against a test database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

OFFERD = Path(sys.executable).parent / "offerd"


def run_offerd(
    db_url: str,
    cwd: Path,
    *args: str,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "OFFERD_DATABASE_URL": db_url,
        "OFFERD_LOG_LEVEL": "warning",
        "COLUMNS": "400",  # rich wraps messages and tables to the terminal's width
        "NO_COLOR": "1",
        **(env or {}),
    }
    return subprocess.run(
        [str(OFFERD), *args],
        cwd=cwd,  # no stray .env from the checkout
        env=env,
        capture_output=True,
        input=stdin,
        text=True,
        timeout=180,
        check=False,
    )
