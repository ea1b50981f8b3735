"""Over-redaction on the real agent runs in ../shared/corpora (simulated people, real-looking
data): each run becomes one trace (a span per message, tool calls with their arguments and
results), is redacted as the stage redacts it, and every replaced token is judged.

A replaced token is *personal* when it overlaps a value the run's own structured tool results
hold under a personal key (name, email, address lines, city, zip, phone) or is an e-mail
address; every other replaced token is over-redaction: an order id, a product name, a date, a
Wikipedia word. The rate is non-personal replaced tokens over all tokens."""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.redaction.logic import redact_trace
from shared.events import Span, SpanKind, Trace

DEFAULT_ROOT = Path(__file__).resolve().parents[3] / "shared" / "corpora"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
_PERSONAL_KEYS = frozenset(
    {"first_name", "last_name", "name", "email", "address1", "address2", "city", "zip",
     "phone", "user_id"}
)  # fmt: skip
_TOKEN = re.compile(r"\S+")
_PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_[0-9]+>")
_KEPT_SHAPES = {
    "order id": re.compile(r"#W[0-9]{7}"),
    "10-digit item/product id": re.compile(r"\b[0-9]{10}\b"),
    "date": re.compile(r"\b[0-9]{4}-[0-9]{2}-[0-9]{2}\b"),
}


def _span(i: int, **kw: Any) -> Span:
    return Span(span_id=f"{i:016x}", name=kw.pop("name", "step"), start_time=T0, **kw)


def tau2_runs(root: Path) -> Iterator[tuple[Trace, set[str]]]:
    for path in sorted((root / "tau2-retail").glob("*.json")):
        document = json.loads(path.read_text())
        for n, sim in enumerate(document["simulations"]):
            spans: list[Span] = []
            personal: set[str] = set()
            for m in sim["messages"]:
                content = m.get("content") or ""
                if m["role"] == "tool":
                    _harvest_personal(content, personal)
                    spans.append(_span(len(spans), name="tool", kind=SpanKind.TOOL,
                                       tool_result=content))  # fmt: skip
                elif m["role"] == "user":
                    spans.append(_span(len(spans), name="user", input=content))
                else:
                    spans.append(_span(len(spans), name="llm", kind=SpanKind.LLM, output=content))
                for call in m.get("tool_calls") or ():
                    spans.append(
                        _span(len(spans), name=call["name"], kind=SpanKind.TOOL,
                              tool_name=call["name"], tool_arguments=json.dumps(call["arguments"]))
                    )  # fmt: skip
            yield Trace(trace_id=f"{path.stem}-{n}", spans=tuple(spans)), personal


def wiki_runs(root: Path, limit_per_model: int = 40) -> Iterator[tuple[Trace, set[str]]]:
    for path in sorted((root / "wiki-search").glob("*.results.jsonl")):
        with path.open() as lines:
            for n, line in enumerate(lines):
                if n >= limit_per_model:
                    break
                row = json.loads(line)
                spans: list[Span] = []
                for m in [*row.get("prompt", []), *row.get("completion", [])]:
                    content = m.get("content") or ""
                    if isinstance(content, list):
                        content = " ".join(str(c.get("text", "")) for c in content)
                    spans.append(_span(len(spans), name=m.get("role", "msg"), input=content))
                yield Trace(trace_id=f"{path.stem}-{n}", spans=tuple(spans)), set()


def _harvest_personal(content: str, into: set[str]) -> None:
    try:
        value = json.loads(content)
    except ValueError:
        return

    def walk(v: Any, key: str | None) -> None:
        if isinstance(v, dict):
            for k, x in v.items():
                walk(x, k)
        elif isinstance(v, list):
            for x in v:
                walk(x, key)
        elif isinstance(v, str) and key in _PERSONAL_KEYS and len(v) >= 2:
            into.add(v.casefold())
            into.update(p.casefold() for p in v.split() if len(p) >= 3)

    walk(value, None)


def _pairs(before: Trace, after: Trace) -> Iterator[tuple[str, str]]:
    for a, b in zip(before.spans, after.spans, strict=True):
        for field in ("input", "output", "tool_arguments", "tool_result"):
            x, y = getattr(a, field), getattr(b, field)
            if x:
                yield x, y or ""


def _replaced(original: str, redacted: str) -> list[tuple[str, str]] | None:
    labels = _PLACEHOLDER.findall(redacted)
    if not labels:
        return []
    literals = _PLACEHOLDER.split(redacted)[::2]
    pattern = "(.+?)".join(re.escape(lit) for lit in literals)
    try:
        m = re.fullmatch(pattern, original, re.DOTALL)
    except re.error:
        return None
    if m is None:
        return None
    return list(zip(labels, m.groups(), strict=True))


def measure(root: Path = DEFAULT_ROOT) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for corpus, runs in (("tau2-retail", tau2_runs(root)), ("wiki-search", wiki_runs(root))):
        tokens = replaced_personal = replaced_other = unaligned = traces = 0
        by_type: Counter[str] = Counter()
        examples: Counter[str] = Counter()
        kept_shapes: Counter[str] = Counter()
        for trace, personal in runs:
            traces += 1
            clean, _ = redact_trace(trace)
            for original, redacted in _pairs(trace, clean):
                tokens += len(_TOKEN.findall(original))
                for shape, pattern in _KEPT_SHAPES.items():
                    kept_shapes[shape] += len(pattern.findall(original)) - len(
                        pattern.findall(redacted)
                    )
                found = _replaced(original, redacted)
                if found is None:
                    unaligned += 1
                    continue
                for label, text in found:
                    n = max(1, len(_TOKEN.findall(text)))
                    folded = text.casefold()
                    if "@" in text or any(p in folded or folded in p for p in personal):
                        replaced_personal += n
                    else:
                        replaced_other += n
                        by_type[label] += n
                        examples[f"{label}: {text[:40]}"] += 1
        out[corpus] = {
            "traces": traces,
            "tokens": tokens,
            "replaced_personal_tokens": replaced_personal,
            "replaced_non_personal_tokens": replaced_other,
            "over_redaction_rate": replaced_other / tokens if tokens else None,
            "non_personal_by_type": dict(by_type.most_common()),
            "kept_shapes_lost": dict(kept_shapes),
            "unaligned_strings": unaligned,
            "examples": [e for e, _ in examples.most_common(15)],
        }
    return out


if __name__ == "__main__":
    print(json.dumps(measure(), indent=2))
