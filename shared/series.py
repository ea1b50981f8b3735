"""Reading a pattern's daily series beside its agent's traffic: the facts the trend test
(``shared.trends``) judges, for dedupe and the review app: what the database holds, and
the one rule that puts them side by side (``days_of``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, timedelta

import asyncpg

from shared.db import Connection
from shared.trends import BASELINE_DAYS, RECENT_DAYS, DayCount

TREND_DAYS = RECENT_DAYS + BASELINE_DAYS

Db = asyncpg.Pool | Connection


# (pattern, day) -> occurrences and rescues, every agent version summed; (agent, day) ->
# traces. Parameters: the patterns or agents, the first day, the last day.
PATTERN_DAILY = """SELECT pattern_id, start::date AS day, sum(occurrences)::int AS occurrences,
                          sum(rescues)::int AS rescues
                   FROM pattern_series WHERE pattern_id = ANY($1::text[]) AND grain = 'day'
                     AND start::date BETWEEN $2 AND $3 GROUP BY 1, 2"""
AGENT_DAILY = """SELECT agent, start::date AS day, sum(traces)::int AS traces
                 FROM agent_series WHERE agent = ANY($1::text[]) AND grain = 'day'
                   AND start::date BETWEEN $2 AND $3 GROUP BY 1, 2"""


async def pattern_daily(
    db: Db, pattern_ids: Sequence[str], since: date, until: date
) -> dict[tuple[str, date], list[int]]:
    rows = await db.fetch(PATTERN_DAILY, list(pattern_ids), since, until)
    return {(r["pattern_id"], r["day"]): [r["occurrences"], r["rescues"]] for r in rows}


async def agent_daily(
    db: Db, agents: Sequence[str], since: date, until: date
) -> dict[tuple[str, date], int]:
    rows = await db.fetch(AGENT_DAILY, list(agents), since, until)
    return {(r["agent"], r["day"]): r["traces"] for r in rows}


def days_of(
    pattern_id: str,
    agent: str,
    until: date,
    patterns: Mapping[tuple[str, date], Sequence[int]],
    agents: Mapping[tuple[str, date], int],
) -> list[DayCount]:
    """One row per day the agent had traffic, over the trend windows up to ``until``."""
    since = until - timedelta(days=TREND_DAYS)
    found = []
    for offset in range(TREND_DAYS + 1):
        day = since + timedelta(days=offset)
        traffic = agents.get((agent, day), 0)
        if traffic:
            occurrences, rescues = patterns.get((pattern_id, day), (0, 0))
            found.append(DayCount(day, occurrences, traffic, rescues))
    return found


async def pattern_days(db: Db, pattern_id: str, agent: str, until: date) -> list[DayCount]:
    """``days_of`` on the database."""
    since = until - timedelta(days=TREND_DAYS)
    return days_of(
        pattern_id,
        agent,
        until,
        await pattern_daily(db, [pattern_id], since, until),
        await agent_daily(db, [agent], since, until),
    )
