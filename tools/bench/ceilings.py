"""Ceilings measured in the same run: Kafka's own perf tools, and a five-hop aiokafka
pass-through chain laid out like the pipeline (one process per hop)."""

from __future__ import annotations

import asyncio
from typing import Any

from tools.bench import chain, kafka_tools, stats
from tools.bench.context import Context
from tools.bench.kafkautil import (
    LagWatcher,
    Message,
    create_topics,
    delete_topics,
    end_offsets,
    produce,
    read_since,
)
from tools.bench.procs import RssSampler

PERF_TOPIC = "bench.perf"


def perf_tools(ctx: Context, record_size: int) -> dict[str, Any]:
    """Per repetition, on a fresh topic: ProducerPerformance sends its warm-up records and
    then the measured ones (only those are reported), then ConsumerPerformance reads the
    measured count back."""
    partitions = ctx.stack.settings.topic_partitions
    plan = ctx.plan
    producer: list[kafka_tools.ToolResult] = []
    consumer: list[kafka_tools.ToolResult] = []
    for rep in range(plan.reps):
        name = f"{PERF_TOPIC}.{rep}"
        asyncio.run(create_topics(ctx.bootstrap, [name], partitions))
        try:
            with ctx.reporter.task(f"kafka ProducerPerformance, run {rep + 1}/{plan.reps}") as t:
                p = kafka_tools.producer_perf(
                    ctx.bootstrap, name, plan.perf_records, record_size, plan.perf_warmup_records
                )
                producer.append(p)
                t.done(f"{p.records_per_s:,.0f} records/s, {p.mb_per_s:.1f} MB/s")
            with ctx.reporter.task(f"kafka ConsumerPerformance, run {rep + 1}/{plan.reps}") as t:
                c = kafka_tools.consumer_perf(
                    ctx.bootstrap, name, plan.perf_records, f"promote-bench.perf.{rep}"
                )
                consumer.append(c)
                t.done(f"{c.records_per_s:,.0f} records/s, {c.mb_per_s:.1f} MB/s")
        finally:
            asyncio.run(delete_topics(ctx.bootstrap, [name]))

    def summary(results: list[kafka_tools.ToolResult]) -> dict[str, Any]:
        return {
            "records_per_s": stats.measurement([r.records_per_s for r in results], "records/s"),
            "mb_per_s": stats.measurement([r.mb_per_s for r in results], "MB/s"),
            "records": results[0].records if results else None,
            "runs": [
                {"records_per_s": r.records_per_s, "mb_per_s": r.mb_per_s, **r.detail}
                for r in results
            ],
        }

    return {
        "record_size_bytes": record_size,
        "partitions": partitions,
        "producer_settings": ", ".join(
            f"{k}={v}" for k, v in kafka_tools.PRODUCER_PROPERTIES.items()
        ),
        "warmup_records": plan.perf_warmup_records,
        "producer": summary(producer),
        "consumer": summary(consumer),
    }


def _hops(variant: str) -> list[str]:
    return [f"chain{variant}-hop-{i}" for i in range(chain.HOPS)]


async def _chain_once(ctx: Context, messages: list[Message], variant: str) -> dict[str, Any]:
    sink = chain.topic(chain.HOPS, variant)
    starts = await end_offsets(ctx.bootstrap, [sink])
    async with LagWatcher(ctx.bootstrap) as watcher:
        sent = await produce(ctx.bootstrap, chain.topic(0, variant), messages)
        idle_at = await watcher.wait_idle(
            chain.wanted_groups(variant),
            max(120.0, len(messages) * 0.5),
            check=lambda: ctx.procs.check_running(_hops(variant)),
        )
    out = await read_since(ctx.bootstrap, starts, [sink])
    last = max(r.timestamp_ms for r in out) / 1000.0 - sent.first_send_wall if out else None
    seconds = idle_at - sent.first_send_perf
    return {
        "messages": len(messages),
        "delivered": len(out),
        "seconds_to_idle": seconds,
        "traces_per_s": stats.rate(len(messages), seconds),
        "traces_per_s_to_last_output": stats.rate(len(messages), last) if last else None,
    }


def pass_through_chain(ctx: Context, messages: list[Message], mode: str) -> dict[str, Any]:
    """The five hops of ``mode`` (tools/bench/chain.py) carrying ``messages``."""
    variant = f"-{mode}"
    names = [chain.topic(i, variant) for i in range(chain.HOPS + 1)]
    partitions = ctx.stack.settings.topic_partitions
    asyncio.run(create_topics(ctx.bootstrap, names, partitions))
    hops = _hops(variant)
    reps: list[dict[str, Any]] = []
    label = f"pass-through chain ({mode})"
    try:
        pids = {}
        for i, name in enumerate(hops):
            pids[name] = ctx.procs.python(
                name,
                [
                    "tools.bench.chain",
                    ctx.bootstrap,
                    chain.topic(i, variant),
                    chain.topic(i + 1, variant),
                    chain.group(i, variant),
                    mode,
                ],
            )
        with ctx.reporter.task(f"{label}: hops joining") as t:
            asyncio.run(_warm_chain(ctx, messages[0], variant))
            t.done("five hops consuming")
        with RssSampler(pids) as rss:
            for rep in range(ctx.plan.reps):
                with ctx.reporter.task(f"{label}, run {rep + 1}/{ctx.plan.reps}") as t:
                    result = asyncio.run(_chain_once(ctx, messages, variant))
                    reps.append(result)
                    t.done(f"{result['traces_per_s']:.1f} traces/s")
    finally:
        for name in hops:
            ctx.procs.stop(name)
        asyncio.run(delete_topics(ctx.bootstrap, names))
    return {
        "hops": chain.HOPS,
        "mode": mode,
        "settings": chain.stage_settings(),
        "partitions": partitions,
        "messages": len(messages),
        "traces_per_s": stats.measurement([r["traces_per_s"] for r in reps], "traces/s"),
        "traces_per_s_to_last_output": stats.measurement(
            [r["traces_per_s_to_last_output"] for r in reps if r["traces_per_s_to_last_output"]],
            "traces/s",
        ),
        "rss_peak_bytes": rss.peak,
        "runs": reps,
    }


async def _warm_chain(ctx: Context, message: Message, variant: str) -> None:
    await produce(ctx.bootstrap, chain.topic(0, variant), [message])
    async with LagWatcher(ctx.bootstrap) as watcher:
        await watcher.wait_idle(
            chain.wanted_groups(variant),
            120.0,
            check=lambda: ctx.procs.check_running(_hops(variant)),
        )
