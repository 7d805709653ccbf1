"""What the compat tests share besides fixtures: the seeded site, the admin event log, the Node
runner."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.sync import Admin

NODE_DIR = Path(__file__).parent / "node"
FLOW_SCRIPT = NODE_DIR / "flow.mjs"


@dataclass(frozen=True)
class Site:
    name: str
    full_access: str
    publishable: str


def offer_events_log(admin: Admin, site: str, personalized_offer_id: str) -> list[str]:
    """The types offerd logged for one personalized offer, oldest first (admin API)."""
    r = admin.http.get(
        f"/sites/{site}/offer_events", params={"personalized_offer_id": personalized_offer_id}
    )
    assert r.status_code == 200, r.text
    return [e["type"] for e in reversed(r.json()["offer_events"])]


def run_process(args: Sequence[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, check=False, **kwargs)


@dataclass(frozen=True)
class NodeSdk:
    node: str

    def run(self, scenario: str, env: dict[str, str]) -> dict[str, Any]:
        """Run flow.mjs for one scenario; it prints one JSON object with a result per step."""
        proc = run_process(
            [self.node, str(FLOW_SCRIPT), scenario],
            cwd=NODE_DIR,
            env={**os.environ, **env},
            timeout=300,
        )
        assert proc.returncode == 0, (
            f"flow.mjs {scenario} exited {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
        )
        result: dict[str, Any] = json.loads(proc.stdout)
        return result
