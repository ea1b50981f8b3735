"""Redaction's functional core: a canonical Trace in, the same Trace with every personal value
and credential replaced by a typed, numbered placeholder out — or RedactionFailed, never a
partly redacted trace.

Two passes. The first harvests *seeds*: values under PII-typed keys in any structured data
(span attributes, resource, JSON serialised inside strings) and values of sensitive keys. The
second rewrites every string: seeds are replaced wherever they occur, free text included (that
is how a customer's name in prose is caught without an NER model), and the detectors run behind
one multi-pattern prefilter scan per string (see scanner.py).

Placeholders are ``<TYPE_n>``. ``n`` counts the distinct values of that type in the order they
are first met in a fixed walk: model fields in declaration order, tuples and lists in order,
dicts in insertion order, text left to right. Counters, not hashes, so two traces sharing a
value cannot be linked through their placeholders; the same value (normalised: E.164 phones,
card digits, lowercase emails) gets the same placeholder everywhere in one trace.

Types — personal data: EMAIL, PHONE, CARD, IBAN, SSN, IP, ADDRESS, PERSON, DOB. Credentials,
one type per kind so a fixture still says what leaked: PASSWORD, SECRET (sensitive key values,
high-entropy tokens), AWS_KEY, GITHUB_TOKEN, OPENAI_KEY, ANTHROPIC_KEY, SLACK_TOKEN,
STRIPE_KEY, GOOGLE_API_KEY, JWT, PRIVATE_KEY.

Pure: no I/O, no clock; the only module state is the compiled default scanner and bounded
memos of pure functions of strings (the scanner's findings, key rules, phone readings).
"""

from __future__ import annotations

from collections.abc import Iterable

from services.redaction.detectors import DEFAULT_DETECTORS
from services.redaction.run import Redaction
from services.redaction.scanner import RedactionFailed, Scanner
from shared.events import RedactionReport, Trace

__all__ = ["DEFAULT_SCANNER", "RedactionFailed", "Scanner", "redact_trace", "redacts_nothing"]

DEFAULT_SCANNER = Scanner(DEFAULT_DETECTORS)


def redact_trace(
    trace: Trace,
    *,
    max_string_chars: int = 1_000_000,
    scanner: Scanner | None = None,
) -> tuple[Trace, RedactionReport]:
    """``scanner`` defaults to all detectors; tests pass their own (e.g. one that raises)."""
    try:
        run = Redaction(scanner or DEFAULT_SCANNER, max_string_chars)
        run.harvest_model(trace)
        run.compile_seeds()
        clean = run.redact_model(trace)
        if run.seed_prose_people():
            # A name read in prose ("this is Jane Doe") is the same person wherever the trace
            # mentions it, with or without a cue: once more, with those names as seeds. The
            # detectors' findings are cached, so the second walk only re-applies seeds.
            run.restart()
            clean = run.redact_model(trace)
    except RedactionFailed:
        raise
    except Exception as exc:
        # Only the class name travels: an exception's message may quote the content.
        raise RedactionFailed("internal_error", type(exc).__name__) from None
    if not isinstance(clean, Trace) or clean.trace_id != trace.trace_id:
        # The trace id also keys the envelope and the topics; it cannot be rewritten here.
        raise RedactionFailed("identifier_contains_pii", "trace_id")
    report = RedactionReport(
        counts=dict(run.counters), strings_scanned=run.strings_scanned, passed=True
    )
    return clean, report


def redacts_nothing(texts: Iterable[str | None], *, scanner: Scanner | None = None) -> bool:
    """Whether redaction would leave every one of ``texts`` as it is (no seeds: the texts
    of a trace that came back untouched, whose own seeds would have changed it)."""
    try:
        run = Redaction(scanner or DEFAULT_SCANNER, 1_000_000)
        return all(run.rewrite(text) is text for text in texts if text)
    except RedactionFailed:
        raise
    except Exception as exc:
        raise RedactionFailed("internal_error", type(exc).__name__) from None
