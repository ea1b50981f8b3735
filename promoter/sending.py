"""`promote send`: trace files (native JSON/JSONL, OTLP JSON, OTLP protobuf) to traces.raw."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from shared import topics
from shared.kafka import make_producer
from shared.settings import get_settings

Format = Literal["auto", "otlp-json", "otlp-proto", "native"]

JSON = "application/json"
PROTOBUF = "application/x-protobuf"


@dataclass(frozen=True)
class RawMessage:
    key: bytes | None
    value: bytes
    content_type: str


def _files(paths: list[str]) -> Iterator[tuple[str, bytes]]:
    for raw in paths:
        if raw == "-":
            yield "-", sys.stdin.buffer.read()
            continue
        path = Path(raw)
        if path.is_dir():
            for child in sorted(p for p in path.rglob("*") if p.is_file()):
                if child.suffix in {".json", ".jsonl", ".pb", ".bin", ".otlp"}:
                    yield str(child), child.read_bytes()
        else:
            yield str(path), path.read_bytes()


def _otlp_json_trace_id(doc: dict[str, Any]) -> str | None:
    for rs in doc.get("resourceSpans", []) or []:
        for ss in rs.get("scopeSpans", []) or []:
            for span in ss.get("spans", []) or []:
                trace_id = span.get("traceId")
                if isinstance(trace_id, str):
                    return trace_id
    return None


def _json_message(text: str) -> RawMessage:
    """One JSON document as one message; the key is its trace id when one is visible.
    Malformed documents are sent as they are: ingest dead-letters them with the reason."""
    key: str | None = None
    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            trace_id = doc.get("trace_id")
            key = trace_id if isinstance(trace_id, str) else _otlp_json_trace_id(doc)
    except ValueError:
        pass
    return RawMessage(
        key.encode() if key else None, text.encode("utf-8", errors="surrogateescape"), JSON
    )


def messages(paths: list[str], fmt: Format = "auto") -> Iterator[RawMessage]:
    for name, data in _files(paths):
        is_proto = fmt == "otlp-proto" or (
            fmt == "auto" and (name.endswith((".pb", ".bin", ".otlp")))
        )
        if is_proto:
            yield RawMessage(None, data, PROTOBUF)
            continue
        text = data.decode("utf-8", errors="surrogateescape")
        stripped = text.strip()
        if not stripped:
            continue
        lines = [ln for ln in stripped.splitlines() if ln.strip()]
        if name.endswith(".jsonl") or (len(lines) > 1 and _each_line_is_json(lines)):
            for line in lines:
                yield _json_message(line)
        else:
            yield _json_message(stripped)


def _each_line_is_json(lines: list[str]) -> bool:
    try:
        for line in lines[:3]:
            json.loads(line)
    except ValueError:
        return False
    return True


async def send(
    bootstrap: str, batch: list[RawMessage], progress: Callable[[int], None] | None = None
) -> int:
    """Publishes ``batch``; ``progress`` is told of each message the broker acknowledged."""
    producer = make_producer(get_settings(), "promote-send", bootstrap_servers=bootstrap)
    await producer.start()
    try:
        futures = [
            await producer.send(
                topics.RAW,
                m.value,
                key=m.key,
                headers=[("content-type", m.content_type.encode())],
            )
            for m in batch
        ]
        for future in futures:
            await future
            if progress is not None:
                progress(1)
        return len(futures)
    finally:
        await producer.stop()
