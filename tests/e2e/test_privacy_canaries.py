"""The generated canary set (tools/bench/redaction_canaries.py: Faker's locale providers for 18
locales, every entity type issue 12 lists, seeded, generated here) sent through the whole
stack: no planted value, whole or any line of it, is found in any zone: the topics from
traces.redacted on, the DLQ, the state folder's log files, a pg_dump of the store, every
export format, `promote` output. No miss is tolerated."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints
from shared import topics
from shared.kafka import read_topic
from tests.e2e.test_pipeline import run_cli
from tests.e2e.test_privacy import EXPORT_FORMATS, dump_database
from tools.bench.redaction_canaries import LOCALES, Canary, canaries, found_in

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 11, 5, 9, 0, tzinfo=UTC)


def canary_trace(i: int, item: Canary) -> dict[str, object]:
    """One trace per canary: the user says it, a tool fails on it, the context strings sit in
    the agent's reply."""
    start = T0 + timedelta(minutes=i)
    spans: list[dict[str, object]] = [
        {
            "span_id": f"{i:08x}" + "0" * 7 + "1",
            "name": "user_turn",
            "kind": "llm",
            "start_time": start.isoformat(),
            "end_time": (start + timedelta(seconds=1)).isoformat(),
            "input": item.text,
            "output": " ".join(item.context) or "Let me check that for you.",
        },
        {
            "span_id": f"{i:08x}" + "0" * 7 + "2",
            "parent_span_id": f"{i:08x}" + "0" * 7 + "1",
            "name": "lookup_customer",
            "kind": "tool",
            "start_time": (start + timedelta(seconds=1)).isoformat(),
            "end_time": (start + timedelta(seconds=2)).isoformat(),
            "status": "error",
            "tool_name": "lookup_customer",
            "tool_arguments": json.dumps({"query": item.text}),
            "error_type": "NotFound",
            "error_message": f"no record matches: {item.text}",
        },
    ]
    return {
        "trace_id": "ca7a" + f"{i:028x}",
        "agent_name": "canary-agent",
        "outcome": "failure",
        "spans": spans,
    }


@pytest.fixture(scope="module")
def sent() -> list[Canary]:
    return canaries()


@pytest.fixture(scope="module")
def zones(
    sent: list[Canary],
    pipeline: Endpoints,
    cli_env: dict[str, str],
    state_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("canaries")
    feed = folder / "canaries.jsonl"
    feed.write_text("".join(json.dumps(canary_trace(i, c)) + "\n" for i, c in enumerate(sent)))
    assert run_cli("send", str(feed), env=cli_env).returncode == 0
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)

    bootstrap = pipeline.kafka_bootstrap_servers
    found = {
        name: b"\n".join(asyncio.run(read_topic(bootstrap, name))).decode(errors="replace")
        for name in (topics.REDACTED, topics.SCORED, topics.PROMOTED, topics.DLQ)
    }
    found["logs"] = "\n".join(
        p.read_text(errors="replace") for p in (state_dir / "logs").glob("*.log")
    )
    found["pg_dump"] = dump_database(pipeline.database_url)
    exports = folder / "exports"
    for fmt in EXPORT_FORMATS:
        done = run_cli("export", "--format", fmt, "--out", str(exports / fmt), env=cli_env)
        assert done.returncode == 0, done.stdout + done.stderr
    found["exports"] = "\n".join(
        p.read_text(errors="replace") for p in exports.rglob("*") if p.is_file()
    )
    for command in (("dlq", "--json"), ("decisions", "--json"), ("fixtures", "--json")):
        done = run_cli(*command, env=cli_env)
        found[f"promote {command[0]}"] = done.stdout + done.stderr
    return found


def test_the_canary_set_spans_twelve_regions_and_reaches_the_redacted_topic(
    sent: list[Canary], zones: dict[str, str]
) -> None:
    assert len(LOCALES) >= 12
    assert zones[topics.REDACTED].count("canary-agent") >= len(sent) // 2
    assert "<PERSON_" in zones[topics.REDACTED] and "<ADDRESS_" in zones[topics.REDACTED]


def test_no_canary_is_found_in_any_zone(sent: list[Canary], zones: dict[str, str]) -> None:
    leaks = sorted(
        (zone, c.kind, c.value, form)
        for zone, text in zones.items()
        for c in sent
        if (form := found_in(c.value, text)) is not None
    )
    assert leaks == [], "\n".join(
        f"{zone} {kind} {value!r}: ...{_around(zones[zone], form)}..."
        for zone, kind, value, form in leaks
    )


def _around(text: str, form: str) -> str:
    i = text.index(form)
    return text[max(0, i - 60) : i + len(form) + 60].replace("\n", " ")
