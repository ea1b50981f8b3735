"""Kafka's own performance tools from the broker's jars: the ceiling of the broker and the
Java client on this machine, on messages of the corpus' size."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from promoter.kafka_local import LOG4J_CONFIG, ensure_jars

PRODUCER = "org.apache.kafka.tools.ProducerPerformance"
CONSUMER = "org.apache.kafka.tools.ConsumerPerformance"
TOOL_TIMEOUT_S = 300.0

_PRODUCED = re.compile(
    r"(\d+)(?: steady state)? records sent, ([\d.]+) records/sec \(([\d.]+) MB/sec\), "
    r"([\d.]+) ms avg latency"
)


@dataclass(frozen=True)
class ToolResult:
    records: int
    records_per_s: float
    mb_per_s: float
    detail: dict[str, float]


def _java(main: str, args: list[str]) -> str:
    jars = ensure_jars()
    command = [
        "java",
        "-Xms128m",
        "-Xmx512m",
        f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
        "-cp",
        f"{jars}/*",
        main,
        *args,
    ]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=TOOL_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"{main.rsplit('.', 1)[-1]} failed ({done.returncode}):\n"
            f"{(done.stderr or done.stdout)[-2000:]}"
        )
    return done.stdout


def parse_producer(output: str) -> ToolResult:
    """The summary line (the one with percentiles) of ProducerPerformance. With
    ``--warmup-records`` the tool prints a second summary, of the steady state (the records
    after the warm-up): that one is taken, and the warm-up's records are left out."""
    finals = [ln for ln in output.splitlines() if "50th" in ln and _PRODUCED.search(ln)]
    if not finals:
        raise ValueError(f"no ProducerPerformance summary in:\n{output[-1000:]}")
    steady = [ln for ln in finals if "steady state records sent" in ln]
    line = steady[-1] if steady else finals[-1]
    match = _PRODUCED.search(line)
    assert match is not None
    records, per_s, mb_s, avg = match.groups()
    pcts = dict(re.findall(r"(\d+(?:\.\d+)?) ms (\d+(?:\.\d+)?th)", line))
    detail = {"avg_latency_ms": float(avg), "steady_state": float(bool(steady))}
    detail.update({f"p{name[:-2]}_latency_ms": float(ms) for ms, name in pcts.items()})
    return ToolResult(int(records), float(per_s), float(mb_s), detail)


def parse_consumer(output: str) -> ToolResult:
    """ConsumerPerformance prints a header line and one line of comma-separated values.
    The rates reported are the fetch rates (excluding the group join), as the tool
    computes them."""
    lines = [ln for ln in output.splitlines() if ln.strip()]
    header_at = next((i for i, ln in enumerate(lines) if ln.startswith("start.time")), None)
    if header_at is None or header_at + 1 >= len(lines):
        raise ValueError(f"no ConsumerPerformance result in:\n{output[-1000:]}")
    names = [n.strip() for n in lines[header_at].split(",")]
    values = [v.strip() for v in lines[header_at + 1].split(",")]
    row = dict(zip(names, values, strict=False))
    detail: dict[str, float] = {
        k: float(row[k])
        for k in ("MB.sec", "nMsg.sec", "rebalance.time.ms", "fetch.time.ms")
        if k in row
    }
    return ToolResult(
        records=int(float(row["data.consumed.in.nMsg"])),
        records_per_s=float(row["fetch.nMsg.sec"]),
        mb_per_s=float(row["fetch.MB.sec"]),
        detail=detail,
    )


# The producer settings ProducerPerformance runs with: large batches and a linger that
# fills them (the stages batch 256 KB, linger 5 ms), the same durability as the stages.
PRODUCER_PROPERTIES = {
    "acks": "all",
    "enable.idempotence": "true",
    "batch.size": str(256 * 1024),
    "linger.ms": "10",
}


def producer_perf(
    bootstrap: str, topic: str, records: int, record_size: int, warmup_records: int = 0
) -> ToolResult:
    """``records`` measured records after ``warmup_records`` sent first by the same
    producer (in the same JVM) and left out of the figures the tool reports."""
    properties = [f"{k}={v}" for k, v in PRODUCER_PROPERTIES.items()]
    warmup = ["--warmup-records", str(warmup_records)] if warmup_records > 0 else []
    out = _java(
        PRODUCER,
        [
            "--topic",
            topic,
            "--num-records",
            str(records + max(0, warmup_records)),
            *warmup,
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--command-property",
            f"bootstrap.servers={bootstrap}",
            *properties,
        ],
    )
    return parse_producer(out)


def consumer_perf(bootstrap: str, topic: str, records: int, group: str) -> ToolResult:
    out = _java(
        CONSUMER,
        [
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--num-records",
            str(records),
            "--group",
            group,
            "--timeout",
            "60000",
        ],
    )
    return parse_consumer(out)


def kafka_tool_version() -> str:
    out = _java("kafka.Kafka", ["--version"])
    return out.strip().splitlines()[0] if out.strip() else "unknown"
