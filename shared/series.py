"""Reading a pattern's daily series beside its agent's traffic: the facts the trend test
(``shared.trends``) judges, for dedupe, the review app and the release-gate report."""

from __future__ import annotations

from datetime import date, timedelta

import asyncpg

from shared.db import Connection
from shared.trends import BASELINE_DAYS, RECENT_DAYS, DayCount


async def pattern_days(
    db: asyncpg.Pool | Connection, pattern_id: str, agent: str, until: date
) -> list[DayCount]:
    """One row per day the agent had traffic, over the trend windows up to ``until``."""
    since = until - timedelta(days=RECENT_DAYS + BASELINE_DAYS)
    rows = await db.fetch(
        """SELECT a.day, coalesce(p.occurrences, 0) AS occurrences, a.traces,
                  coalesce(p.rescues, 0) AS rescues
           FROM (SELECT start::date AS day, sum(traces)::int AS traces FROM agent_series
                 WHERE agent = $2 AND grain = 'day' AND start::date BETWEEN $3 AND $4
                 GROUP BY 1) a
           LEFT JOIN (SELECT start::date AS day, sum(occurrences)::int AS occurrences,
                             sum(rescues)::int AS rescues
                      FROM pattern_series WHERE pattern_id = $1 AND grain = 'day'
                        AND start::date BETWEEN $3 AND $4 GROUP BY 1) p USING (day)
           ORDER BY a.day""",
        pattern_id,
        agent,
        since,
        until,
    )
    return [DayCount(r["day"], r["occurrences"], r["traces"], r["rescues"]) for r in rows]
