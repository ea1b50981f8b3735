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


def stage_linger_ms() -> int:
    """The producer linger the stages run with, read from the broker factory they use."""
    import logging
    from unittest import mock

    from shared import kafka as shared_kafka
    from shared.settings import Settings

    with mock.patch.object(shared_kafka, "KafkaBroker") as fake:
        shared_kafka.make_broker(Settings(), "bench", logging.getLogger("bench"))
    return int(fake.call_args.kwargs.get("linger_ms", 0))


def perf_tools(ctx: Context, record_size: int) -> dict[str, Any]:
    partitions = ctx.stack.settings.topic_partitions
    asyncio.run(create_topics(ctx.bootstrap, [PERF_TOPIC], partitions))
    producer: list[kafka_tools.ToolResult] = []
    consumer: list[kafka_tools.ToolResult] = []
    try:
        for rep in range(ctx.plan.reps):
            with ctx.reporter.task(
                f"kafka ProducerPerformance, run {rep + 1}/{ctx.plan.reps}"
            ) as t:
                p = kafka_tools.producer_perf(
                    ctx.bootstrap, PERF_TOPIC, ctx.plan.perf_records, record_size
                )
                producer.append(p)
                t.done(f"{p.records_per_s:,.0f} records/s, {p.mb_per_s:.1f} MB/s")
            with ctx.reporter.task(
                f"kafka ConsumerPerformance, run {rep + 1}/{ctx.plan.reps}"
            ) as t:
                c = kafka_tools.consumer_perf(
                    ctx.bootstrap, PERF_TOPIC, ctx.plan.perf_records, f"promote-bench.perf.{rep}"
                )
                consumer.append(c)
                t.done(f"{c.records_per_s:,.0f} records/s, {c.mb_per_s:.1f} MB/s")
    finally:
        asyncio.run(delete_topics(ctx.bootstrap, [PERF_TOPIC]))

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
        "producer_settings": "acks=all, the tool's other defaults (idempotent, linger.ms=5)",
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


def pass_through_chain(ctx: Context, messages: list[Message], linger_ms: int) -> dict[str, Any]:
    variant = f"-linger{linger_ms}"
    names = [chain.topic(i, variant) for i in range(chain.HOPS + 1)]
    partitions = ctx.stack.settings.topic_partitions
    asyncio.run(create_topics(ctx.bootstrap, names, partitions))
    hops = _hops(variant)
    reps: list[dict[str, Any]] = []
    label = f"pass-through chain (linger {linger_ms} ms)"
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
                    str(linger_ms),
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
        "linger_ms": linger_ms,
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
