"""Replay: how fast history on traces.redacted is re-scored, against the live stage.

Times ``promote replay --from-beginning --dry-run``'s code path (promoter.replay.run_replay:
read the current decisions from traces.scored, read traces.redacted up to its end offsets,
re-score each trace with the scoring stage's pure step and an in-memory budget, diff) on
whatever the benchmark left on traces.redacted. The dry run writes nothing, so it can be
repeated on the same history.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from promoter import replay
from services.scoring.policy import DEFAULT_POLICY_PATH, load_policy
from tools.bench import stats
from tools.bench.context import Context


def replay_rate(ctx: Context) -> dict[str, Any]:
    policy = load_policy(DEFAULT_POLICY_PATH)
    rates: list[float] = []
    replayed = 0
    for rep in range(ctx.plan.reps):
        with ctx.reporter.task(f"replay --dry-run, run {rep + 1}/{ctx.plan.reps}") as task:

            def show(done: int, total: int, task: Any = task) -> None:
                task.update(completed=done, total=total)

            started = time.perf_counter()
            result = asyncio.run(
                replay.run_replay(
                    ctx.bootstrap,
                    policy,
                    replay.Start("beginning"),
                    dry_run=True,
                    timeout_s=1800.0,
                    on_progress=show,
                )
            )
            seconds = time.perf_counter() - started
            replayed = result.replayed
            rates.append(stats.rate(result.replayed, seconds))
            task.done(f"{rates[-1]:.1f} traces/s ({result.replayed} traces in {seconds:.1f}s)")
    return {
        "command": "promote replay --from-beginning --dry-run (promoter.replay.run_replay)",
        "traces": replayed,
        "traces_per_s": stats.measurement(rates, "traces/s"),
    }
