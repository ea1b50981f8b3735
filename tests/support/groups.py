"""Waiting on consumer-group membership, for tests that scale a stage out or in."""

from __future__ import annotations

import asyncio
import time

from shared.kafka import group_members


def wait_for_group(bootstrap: str, group: str, members: int, timeout_s: float = 120) -> None:
    """Returns once the group is stable with exactly `members` members: only then has
    every instance a share of the partitions."""
    deadline = time.monotonic() + timeout_s
    seen: tuple[str, int] = ("unknown", 0)
    while time.monotonic() < deadline:
        seen = asyncio.run(group_members(bootstrap, group))
        if seen == ("Stable", members):
            return
        time.sleep(0.2)
    raise AssertionError(f"group {group} never became stable with {members} members: {seen}")
