"""Values planted in every side channel (error messages, malformed events, attribute keys,
span and event names, resource attributes, links, baggage) are found in no zone downstream:
the topics from traces.redacted on, the DLQ, the state folder's log files, a pg_dump of the
store, `promote` output."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints
from shared import topics
from shared.kafka import read_topic
from tests.e2e.test_pipeline import run_cli
from tests.e2e.test_privacy import dump_database

pytestmark = pytest.mark.e2e

PLANTED = {
    "name": "Oluwaseun Abernathy-Quist",
    "email": "oluwaseun.quist@example.org",
    "phone": "030 563 83626",
    "street": "129 Baker Street",
    "nino": "QQ 12 34 56 C",
    "ssn": "078-05-1120",
}
T0 = datetime(2026, 11, 4, 9, 0, tzinfo=UTC)


def planted_trace(trace_id: str) -> dict[str, object]:
    p = PLANTED
    return {
        "trace_id": trace_id,
        "agent_name": "support-agent",
        "resource": {"service.owner": f"{p['name']} <{p['email']}>", p["email"]: "owner"},
        "spans": [
            {
                "span_id": "1" * 16,
                "name": f"lookup {p['email']}",
                "kind": "tool",
                "start_time": T0.isoformat(),
                "end_time": (T0 + timedelta(seconds=1)).isoformat(),
                "status": "error",
                "tool_name": "lookup_customer",
                "error_type": "NotFound",
                "error_message": f"customer {p['name']} at {p['street']} (tel {p['phone']}) "
                "not found",
                "attributes": {
                    f"customer.{p['email']}": "flag",
                    "event.exception.message": f"no record for NINO {p['nino']}",
                    "link.attributes": {"caller": p["name"], "note": f"ssn {p['ssn']}"},
                    "baggage": f"user.email={p['email']},user.phone={p['phone']}",
                },
            }
        ],
    }


def malformed_event() -> dict[str, object]:
    p = PLANTED
    return {
        "trace_id": "0badc0de" * 4,
        "spans": [{"span_id": "2" * 16, "name": p["name"], "start_time": p["ssn"]}],
        p["street"]: p["phone"],
    }


@pytest.fixture(scope="module")
def zones(
    pipeline: Endpoints,
    cli_env: dict[str, str],
    state_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> dict[str, str]:
    """Sends one trace with values planted in every side channel and one malformed event,
    waits until every group is idle, and collects the text of every zone."""
    folder = tmp_path_factory.mktemp("side-channels")
    good = folder / "planted.jsonl"
    good.write_text(json.dumps(planted_trace("5ec7e7" + "0" * 26)) + "\n")
    bad = folder / "malformed.json"
    bad.write_text(json.dumps(malformed_event()))
    assert run_cli("send", str(good), env=cli_env).returncode == 0
    run_cli("send", str(bad), env=cli_env)  # rejected by ingest: a dead letter
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
    for command in (("dlq", "--json"), ("decisions", "--json"), ("fixtures", "--json")):
        done = run_cli(*command, env=cli_env)
        found[f"promote {command[0]}"] = done.stdout + done.stderr
    assert "5ec7e7" in found[topics.REDACTED], "the planted trace went through"
    assert "InvalidPayload" in found[topics.DLQ], "the malformed event was dead-lettered"
    return found


_FINGERPRINT = re.compile(r'"fingerprint":"(?:[^"\\]|\\.)*"')


def leaks_in(zones: dict[str, str]) -> dict[str, str]:
    """zone/kind -> the text around the first planted value found there."""
    out = {}
    for zone, text in zones.items():
        for kind, value in PLANTED.items():
            for form in (value, value.replace(" ", "")):
                at = text.find(form)
                if at != -1:
                    out[f"{zone}/{kind}"] = text[max(0, at - 120) : at + 80]
                    break
    return out


def without_pattern_fingerprints(zones: dict[str, str]) -> dict[str, str]:
    out = {zone: _FINGERPRINT.sub('"fingerprint":""', text) for zone, text in zones.items()}
    # The patterns table holds the same fingerprint.
    dump = zones["pg_dump"]
    start = dump.find("COPY public.patterns ")
    if start != -1:
        end = dump.find("\\.\n", start)
        out["pg_dump"] = dump[:start] + dump[end:]
    return out


def test_no_planted_value_reaches_any_zone_through_a_side_channel(
    zones: dict[str, str],
) -> None:
    assert leaks_in(without_pattern_fingerprints(zones)) == {}


# Apart, so that a leak through dedupe's pattern fingerprint (built before redaction) is
# told from a leak through redaction.


def test_the_pattern_fingerprint_carries_no_planted_value_either(
    zones: dict[str, str],
) -> None:
    assert leaks_in(zones) == {}
