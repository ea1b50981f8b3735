"""The stages' consumer lag, and waiting until it is zero: `promote wait`, `promote status`,
the demo, the evaluation and the tests all ask the same question the same way."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka.errors import KafkaError

from promoter.supervisor import STAGES
from shared import topics
from shared.kafka import groups_lag


async def stage_lags(bootstrap: str) -> dict[str, dict[str, int]]:
    """Lag per stage, per input topic."""
    groups = {g: t for stage in STAGES for g, t in topics.STAGE_GROUPS[stage].items()}
    by_group = await groups_lag(bootstrap, groups)
    return {
        stage: {t: n for g in topics.STAGE_GROUPS[stage] for t, n in by_group[g].items()}
        for stage in STAGES
    }


def wait_for_idle(
    bootstrap: str,
    timeout_s: float,
    on_lags: Callable[[dict[str, dict[str, int]]], None] | None = None,
) -> bool:
    """Stages commit only after their outputs are acknowledged, so reading lags in
    pipeline order cannot miss a record moving downstream; two idle readings in a row
    guard against a record fetched but not yet committed between them."""
    deadline = time.monotonic() + timeout_s
    idle_readings = 0
    while time.monotonic() < deadline:
        try:
            lags = asyncio.run(stage_lags(bootstrap))
        except KafkaError:
            # A broker that just started has no group coordinator yet: busy, not broken.
            lags = {"unknown": {"unknown": 1}}
        if on_lags is not None:
            on_lags(lags)
        busy = sum(n for per_topic in lags.values() for n in per_topic.values())
        idle_readings = idle_readings + 1 if busy == 0 else 0
        if idle_readings >= 2:
            return True
        time.sleep(0.5)
    return False
