"""`promote up` / `promote down` on a stack of their own: idempotent start, clean stop."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from promoter.kafka_local import _alive
from promoter.supervisor import RECEIVER, REVIEW, REVIEW_HTTP, STAGES

pytestmark = pytest.mark.e2e


def promote(*args: str, state: Path) -> subprocess.CompletedProcess[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "KAFKA_BOOTSTRAP_SERVERS",
            "PROMOTE_KAFKA_BOOTSTRAP_SERVERS",
            "PROMOTE_DATABASE_URL",
        )
    }
    return subprocess.run(
        [sys.executable, "-m", "promoter", *args, "--state-dir", str(state)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def all_pids(state: Path) -> dict[str, int]:
    status = promote("status", "--json", state=state)
    assert status.returncode == 0, status.stderr
    report = json.loads(status.stdout)
    pids = {name: info["pid"] for name, info in report["services"].items()}
    pids["kafka"] = int((state / "kafka" / "broker.pid").read_text())
    pids["postgres"] = int((state / "postgres" / "postmaster.pid").read_text().split()[0])
    return pids


def test_up_twice_starts_nothing_twice_and_down_leaves_no_process_behind(tmp_path: Path) -> None:
    state = tmp_path / "stack"
    first = promote("up", state=state)
    assert first.returncode == 0, first.stderr
    before = all_pids(state)
    assert set(before) == {*STAGES, RECEIVER, REVIEW, REVIEW_HTTP, "kafka", "postgres"}
    assert all(_alive(pid) for pid in before.values())

    second = promote("up", state=state)
    assert second.returncode == 0, second.stderr
    assert all_pids(state) == before

    down = promote("down", state=state)
    assert down.returncode == 0, down.stderr
    assert [name for name, pid in before.items() if _alive(pid)] == []
