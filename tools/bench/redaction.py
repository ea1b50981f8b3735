"""The project's redaction against Presidio (AnalyzerEngine + AnonymizerEngine, no NLP
engine, its default recognizers) on the same strings of the generated corpus, with recall
and precision against the planted ground truth.

Strings: every string of the model (span inputs and outputs, tool arguments and results,
documents, attributes, feedback, ...) of every PII-heavy trace and of a sample of the other
traces; identifiers (trace, span and parent span ids) and enum values are left out.
The project's redaction runs as the stage runs it, on the whole trace (its seed harvest
needs the structured fields); Presidio runs string by string. Both are timed on exactly
those traces' strings, single-threaded, in this process.

Recall: a planted value counts as found when it no longer appears in any output string of
its trace. Precision: a detection is correct when its text and a planted value of a type
the detection's label stands for overlap (one contains the other); everything else a
label fires on counts against it, so precision is relative to what was planted.
"""

from __future__ import annotations

import random
import re
import time
from collections import Counter
from collections.abc import Iterator
from enum import Enum
from typing import Any

from services.redaction.logic import redact_trace
from shared.events import Trace
from tools.bench import stats
from tools.bench.context import Context, TaskHandle
from tools.corpus.generate import LabelledTrace

SKIPPED_KEYS = frozenset({"trace_id", "span_id", "parent_span_id"})
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*)_[0-9]+>")
PLACEHOLDER_SPLIT = re.compile(r"<[A-Z][A-Z0-9_]*_[0-9]+>")
CREDENTIALS = ("aws_key", "github_token", "jwt", "password")

# Which planted types a detection label stands for.
OURS: dict[str, tuple[str, ...]] = {
    "PERSON": ("person_name",),
    "EMAIL": ("email",),
    "ADDRESS": ("address",),
    "PHONE": ("phone",),
    "CARD": ("card",),
    "IBAN": ("iban",),
    "SSN": ("ssn",),
    "IP": ("ipv4",),
    "AWS_KEY": ("aws_key",),
    "GITHUB_TOKEN": ("github_token",),
    "JWT": ("jwt",),
    "PASSWORD": ("password",),
    "SECRET": CREDENTIALS,
}
PRESIDIO: dict[str, tuple[str, ...]] = {
    "PERSON": ("person_name",),
    "EMAIL_ADDRESS": ("email",),
    "LOCATION": ("address",),
    "PHONE_NUMBER": ("phone",),
    "CREDIT_CARD": ("card",),
    "IBAN_CODE": ("iban",),
    "US_SSN": ("ssn",),
    "IP_ADDRESS": ("ipv4",),
}
SECOND_PASS_THRESHOLD = 0.4
REPETITIONS = 5  # interleaved, per engine; medians compared


# --- strings ------------------------------------------------------------------------------


def strings_of(trace: Trace) -> list[str]:
    return [s for s in _walk(trace.model_dump(mode="python"), None) if s]


def _walk(value: Any, key: Any) -> Iterator[str]:
    if isinstance(value, Enum):
        return
    if isinstance(value, str):
        if key not in SKIPPED_KEYS:
            yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, k)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _walk(v, key)


def paired_strings(before: Trace, after: Trace) -> list[tuple[str, str]]:
    """The strings of a trace and of its redacted copy, position by position (dict keys
    may have been redacted too, so dicts pair by position, not by key)."""
    out: list[tuple[str, str]] = []
    _pair(before.model_dump(mode="python"), after.model_dump(mode="python"), None, out)
    return out


def _pair(a: Any, b: Any, key: Any, out: list[tuple[str, str]]) -> None:
    if isinstance(a, Enum):
        return
    if isinstance(a, str):
        if key not in SKIPPED_KEYS and a:
            out.append((a, b if isinstance(b, str) else str(b)))
    elif isinstance(a, dict) and isinstance(b, dict):
        for (k, va), vb in zip(a.items(), b.values(), strict=False):
            _pair(va, vb, k, out)
    elif isinstance(a, list | tuple) and isinstance(b, list | tuple):
        for va, vb in zip(a, b, strict=False):
            _pair(va, vb, key, out)


def replaced_values(original: str, redacted: str) -> list[tuple[str, str]] | None:
    """(label, original text) of each placeholder in ``redacted``: the redacted string with
    every placeholder turned into a lazy group, matched against the original. None when the
    two cannot be aligned (a JSON string re-serialised with another layout)."""
    labels = PLACEHOLDER.findall(redacted)
    if not labels:
        return []
    if len(labels) > 40:
        return None
    literals = PLACEHOLDER_SPLIT.split(redacted)
    match = re.fullmatch("(.+?)".join(re.escape(lit) for lit in literals), original, re.DOTALL)
    if match is None:
        return None
    return list(zip(labels, match.groups(), strict=True))


# --- Presidio -------------------------------------------------------------------------------


def build_presidio() -> tuple[Any, Any]:
    """AnalyzerEngine with every predefined recognizer and no NLP engine (no spaCy model);
    the e-mail recognizer checks domains against tldextract's bundled suffix list instead
    of downloading it. AnonymizerEngine with its default operator (replace by <TYPE>)."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers import EmailRecognizer
    from presidio_anonymizer import AnonymizerEngine

    offline = tldextract.TLDExtract(cache_dir=None, suffix_list_urls=(), fallback_to_snapshot=True)

    class OfflineEmailRecognizer(EmailRecognizer):
        def validate_result(self, pattern_text: str) -> bool:
            return bool(offline(pattern_text).fqdn)

    nlp_engine = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "no_op"}])
    nlp_engine.load()
    registry = RecognizerRegistry(supported_languages=["en"])
    registry.load_predefined_recognizers(languages=["en"], nlp_engine=nlp_engine)
    registry.remove_recognizer("EmailRecognizer")
    registry.add_recognizer(OfflineEmailRecognizer())
    analyzer = AnalyzerEngine(registry=registry, nlp_engine=nlp_engine, supported_languages=["en"])
    return analyzer, AnonymizerEngine()


# --- scoring against the labels ---------------------------------------------------------------


def _overlaps(detected: str, planted: str) -> bool:
    d, p = detected.strip().casefold(), planted.strip().casefold()
    return bool(d) and (d in p or p in d)


def judge(
    detections: list[tuple[str, str]],
    planted: tuple[tuple[str, str], ...],
    meaning: dict[str, tuple[str, ...]],
) -> Counter[tuple[str, bool]]:
    """(label, correct) counts for one trace's detections."""
    out: Counter[tuple[str, bool]] = Counter()
    for label, text in detections:
        types = meaning.get(label, ())
        correct = any(kind in types and _overlaps(text, value) for kind, value in planted)
        out[(label, correct)] += 1
    return out


def found(planted: tuple[tuple[str, str], ...], outputs: list[str]) -> Counter[tuple[str, bool]]:
    out: Counter[tuple[str, bool]] = Counter()
    for kind, value in planted:
        out[(kind, not any(value in text for text in outputs))] += 1
    return out


def _precision_rows(counts: Counter[tuple[str, bool]]) -> list[dict[str, Any]]:
    labels = sorted({label for label, _ in counts})
    rows = []
    for label in labels:
        right, wrong = counts[(label, True)], counts[(label, False)]
        rows.append(
            {
                "label": label,
                "detections": right + wrong,
                "correct": right,
                "precision": stats.ratio(right, right + wrong),
            }
        )
    return rows


def _recall(counts: Counter[tuple[str, bool]], kind: str) -> tuple[int, float | None]:
    hit, miss = counts[(kind, True)], counts[(kind, False)]
    return hit + miss, stats.ratio(hit, hit + miss)


# --- the measurement --------------------------------------------------------------------------


def select(corpus: list[LabelledTrace], other_share: float, seed: int) -> list[LabelledTrace]:
    rng = random.Random(f"{seed}/presidio-sample")
    pii = [c for c in corpus if c.labels.family == "pii_heavy"]
    others = [c for c in corpus if c.labels.family != "pii_heavy"]
    return pii + rng.sample(others, max(1, int(len(others) * other_share)))


def _time_ours(traces: list[Trace]) -> float:
    started = time.perf_counter()
    for t in traces:
        redact_trace(t)
    return time.perf_counter() - started


def _time_presidio(
    strings: list[str], analyzer: Any, anonymizer: Any, keep: dict[str, Any] | None = None
) -> float:
    """Seconds for analyze + anonymize of every string; the analyzer results are kept in
    ``keep`` (by string) for the recall and precision count."""
    started = time.perf_counter()
    for text in strings:
        results = analyzer.analyze(text=text, language="en")
        anonymizer.anonymize(text=text, analyzer_results=results)
        if keep is not None:
            keep[text] = results
    return time.perf_counter() - started


def compare(ctx: Context, corpus: list[LabelledTrace]) -> dict[str, Any]:
    chosen = select(corpus, ctx.plan.presidio_other_share, ctx.plan.seed)
    traces = [c.trace for c in chosen]
    per_trace = [strings_of(t) for t in traces]
    strings = [s for group in per_trace for s in group]
    with ctx.reporter.task("presidio: building the analyzer (imports spaCy)") as task:
        started = time.perf_counter()
        analyzer, anonymizer = build_presidio()
        build_s = time.perf_counter() - started
        task.done(f"ready in {build_s:.1f}s")
    _time_ours(traces[:3])  # first-use costs out of the timing
    _time_presidio(strings[:20], analyzer, anonymizer)
    ours_rates, presidio_rates = [], []
    analysed: dict[str, Any] = {}
    for rep in range(ctx.plan.reps):
        with ctx.reporter.task(
            f"redaction vs presidio on {len(strings):,} strings, run {rep + 1}/{ctx.plan.reps}"
        ) as task:
            ours_rates.append(stats.rate(len(strings), _time_ours(traces)))
            seconds = _time_presidio(strings, analyzer, anonymizer, analysed)
            presidio_rates.append(stats.rate(len(strings), seconds))
            task.done(
                f"ours {ours_rates[-1]:,.0f} strings/s, "
                f"presidio {presidio_rates[-1]:,.0f} strings/s"
            )
    with ctx.reporter.task(
        "redaction vs presidio: recall and precision", total=len(chosen)
    ) as task:
        quality = _quality(chosen, analysed, anonymizer, task)
        task.done("scored against the planted labels")
    ours = stats.measurement(ours_rates, "strings/s")
    presidio = stats.measurement(presidio_rates, "strings/s")
    return {
        "traces": len(chosen),
        "pii_traces": sum(1 for c in chosen if c.labels.family == "pii_heavy"),
        "strings": len(strings),
        "chars": sum(len(s) for s in strings),
        "ours_strings_per_s": ours,
        "presidio_strings_per_s": presidio,
        "ratio_ours_to_presidio": stats.ratio(ours["median"], presidio["median"]),
        "presidio_build_s": build_s,
        "presidio_recognizers": sorted(r.name for r in analyzer.registry.recognizers),
        **quality,
    }


def _quality(
    chosen: list[LabelledTrace], analysed: dict[str, Any], anonymizer: Any, task: TaskHandle
) -> dict[str, Any]:
    recall: dict[str, Counter[tuple[str, bool]]] = {
        "ours": Counter(),
        "presidio": Counter(),
        "presidio_04": Counter(),
    }
    precision: dict[str, Counter[tuple[str, bool]]] = {
        "ours": Counter(),
        "presidio": Counter(),
        "presidio_04": Counter(),
    }
    unaligned = 0
    for i, item in enumerate(chosen):
        planted = item.labels.planted
        clean, _report = redact_trace(item.trace)
        pairs = paired_strings(item.trace, clean)
        detections: list[tuple[str, str]] = []
        for original, redacted in pairs:
            replaced = replaced_values(original, redacted)
            if replaced is None:
                unaligned += 1
                continue
            detections.extend(replaced)
        precision["ours"] += judge(detections, planted, OURS)
        recall["ours"] += found(planted, [r for _, r in pairs])
        outputs: dict[str, list[str]] = {"presidio": [], "presidio_04": []}
        seen: dict[str, list[tuple[str, str]]] = {"presidio": [], "presidio_04": []}
        for text in strings_of(item.trace):
            results = analysed[text]
            strong = [r for r in results if r.score >= SECOND_PASS_THRESHOLD]
            for name, chosen_results in (("presidio", results), ("presidio_04", strong)):
                outputs[name].append(
                    anonymizer.anonymize(text=text, analyzer_results=chosen_results).text
                )
                seen[name].extend((r.entity_type, text[r.start : r.end]) for r in chosen_results)
        for name in ("presidio", "presidio_04"):
            precision[name] += judge(seen[name], planted, PRESIDIO)
            recall[name] += found(planted, outputs[name])
        task.update(completed=i + 1)
    kinds = sorted({kind for c in chosen for kind, _ in c.labels.planted})
    recall_rows = []
    for kind in kinds:
        n, ours_r = _recall(recall["ours"], kind)
        _, presidio_r = _recall(recall["presidio"], kind)
        _, strong_r = _recall(recall["presidio_04"], kind)
        recall_rows.append(
            {
                "type": kind,
                "planted": n,
                "ours": ours_r,
                "presidio": presidio_r,
                "presidio_score_0_4": strong_r,
            }
        )
    overall = {}
    for name, counts in recall.items():
        hit = sum(n for (_, ok), n in counts.items() if ok)
        total = sum(counts.values())
        overall[name] = stats.ratio(hit, total)
    return {
        "recall": recall_rows,
        "recall_overall": overall,
        "precision": {name: _precision_rows(c) for name, c in precision.items()},
        "unaligned_strings": unaligned,
        "presidio_second_threshold": SECOND_PASS_THRESHOLD,
    }


# --- the canary set, the real corpora, and a run of just this part ----------------------------
#
# ``python -m tools.bench.redaction [--out BENCHMARKS.md]`` measures, in one process and one run:
# per-entity recall and precision of this project's redaction and of Presidio (every
# predefined pattern recognizer it ships, English or not, loaded for English, no NLP engine)
# on the same Faker canary strings; the over-redaction rate on the real corpora; and both
# engines' throughput on the same real strings. It rewrites the "Redaction on the canary set"
# section of the Markdown file in place (the rest of the file is left as it is).

CANARY_SECTION = "## 3b. Redaction on the canary set and the real corpora"


def build_presidio_all() -> tuple[Any, Any, list[str]]:
    """Presidio with every predefined pattern recognizer (country-specific ones included)."""
    import inspect

    import presidio_analyzer.predefined_recognizers as predefined
    from presidio_analyzer import PatternRecognizer

    analyzer, anonymizer = build_presidio()
    have = {r.name for r in analyzer.registry.recognizers}
    for name in sorted(dir(predefined)):
        cls = getattr(predefined, name)
        if not (inspect.isclass(cls) and issubclass(cls, PatternRecognizer)) or name in have:
            continue
        if name == "EmailRecognizer":
            continue
        try:
            analyzer.registry.add_recognizer(cls(supported_language="en"))  # type: ignore[call-arg]
        except Exception:  # a recognizer that cannot load for English is left out
            continue
    entities = sorted({e for r in analyzer.registry.recognizers for e in r.supported_entities})
    return analyzer, anonymizer, entities


def _one_string_trace(text: str, context: tuple[str, ...] = ()) -> Trace:
    """The canary's string as the first span's input; its context strings (where the same
    trace gives the value away) as the inputs of further spans."""
    from datetime import UTC, datetime

    from shared.events import Span

    spans = tuple(
        Span(span_id=f"{i:016x}", name="step", start_time=datetime(2026, 1, 1, tzinfo=UTC), input=t)
        for i, t in enumerate((text, *context))
    )
    return Trace(trace_id="c" * 32, spans=spans)


HELD_OUT_SEEDS = (7, 31, 101, 202)


def held_out_recall(seeds: tuple[int, ...] = HELD_OUT_SEEDS, per_locale: int = 8) -> dict[str, Any]:
    """Redaction alone on other samples of the generator (other seeds, twice the values per
    locale): what the detectors were not looked at against."""
    from tools.bench.redaction_canaries import canaries, found_in

    planted: Counter[str] = Counter()
    missed: Counter[str] = Counter()
    for seed in seeds:
        for item in canaries(seed=seed, per_locale=per_locale):
            planted[item.kind] += 1
            clean, _ = redact_trace(_one_string_trace(item.text, item.context))
            missed[item.kind] += found_in(item.value, clean.spans[0].input or "") is not None
    return {
        "seeds": list(seeds),
        "per_locale": per_locale,
        "values": sum(planted.values()),
        "recall": [
            {"type": k, "planted": n, "ours": stats.ratio(n - missed[k], n)}
            for k, n in sorted(planted.items())
        ],
    }


def canary_quality(analyzer: Any, anonymizer: Any) -> dict[str, Any]:
    from tools.bench.redaction_canaries import LOCALES, canaries, found_in

    items = canaries()
    rows: dict[str, dict[str, int]] = {}
    precision: dict[str, Counter[tuple[str, bool]]] = {"ours": Counter(), "presidio": Counter()}
    for item in items:
        row = rows.setdefault(item.kind, {"planted": 0, "ours": 0, "presidio": 0})
        row["planted"] += 1
        clean, _ = redact_trace(_one_string_trace(item.text, item.context))
        ours_out = clean.spans[0].input or ""
        row["ours"] += found_in(item.value, ours_out) is None
        for label, text in replaced_values(item.text, ours_out) or []:
            precision["ours"][(label, _overlaps(text, item.value))] += 1
        results = analyzer.analyze(text=item.text, language="en")
        presidio_out = anonymizer.anonymize(text=item.text, analyzer_results=results).text
        row["presidio"] += found_in(item.value, presidio_out) is None
        for r in results:
            span = item.text[r.start : r.end]
            precision["presidio"][(r.entity_type, _overlaps(span, item.value))] += 1
    return {
        "canaries": len(items),
        "locales": list(LOCALES),
        "recall": [
            {
                "type": kind,
                "planted": row["planted"],
                "ours": stats.ratio(row["ours"], row["planted"]),
                "presidio": stats.ratio(row["presidio"], row["planted"]),
            }
            for kind, row in sorted(rows.items())
        ],
        "precision": {name: _precision_rows(c) for name, c in precision.items()},
    }


def real_throughput(
    analyzer: Any, anonymizer: Any, traces: int = 60, default_analyzer: Any = None
) -> dict[str, Any]:
    """Both engines on the same real strings: tau2 runs (dense with tool JSON) and wiki runs."""
    from tools.bench.redaction_corpora import DEFAULT_ROOT, tau2_runs, wiki_runs

    chosen: list[Trace] = []
    for source in (tau2_runs(DEFAULT_ROOT), wiki_runs(DEFAULT_ROOT, limit_per_model=5)):
        for i, (trace, _) in enumerate(source):
            if i >= traces // 2:
                break
            chosen.append(trace)
    strings = [s for t in chosen for s in strings_of(t)]
    _time_ours(chosen[:3])
    _time_presidio(strings[:20], analyzer, anonymizer)
    # Interleaved repetitions, medians compared: a busy machine slows all three alike.
    ours: list[float] = []
    presidio: list[float] = []
    default: list[float] = []
    if default_analyzer is not None:
        _time_presidio(strings[:20], default_analyzer, anonymizer)
    for _ in range(REPETITIONS):
        ours.append(stats.rate(len(strings), _time_ours(chosen)))
        presidio.append(stats.rate(len(strings), _time_presidio(strings, analyzer, anonymizer)))
        if default_analyzer is not None:
            seconds = _time_presidio(strings, default_analyzer, anonymizer)
            default.append(stats.rate(len(strings), seconds))
    ours.sort()
    presidio.sort()
    default.sort()
    mid = REPETITIONS // 2
    return {
        "presidio_default_strings_per_s": stats.measurement(default, "strings/s")
        if default
        else None,
        "ratio_to_default": stats.ratio(ours[mid], default[mid]) if default else None,
        "traces": len(chosen),
        "strings": len(strings),
        "chars": sum(len(s) for s in strings),
        "ours_strings_per_s": stats.measurement(ours, "strings/s"),
        "presidio_strings_per_s": stats.measurement(presidio, "strings/s"),
        "ratio": stats.ratio(ours[mid], presidio[mid]),
    }


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value * 100:.1f} %"


def canary_markdown(results: dict[str, Any]) -> str:
    q, t, o = results["canary"], results["throughput"], results["over_redaction"]
    lines = [
        CANARY_SECTION,
        "",
        f"Run with `{results['command']}` ({results['seconds']:.0f} s). Canary set: "
        f"{q['canaries']} values generated by Faker's locale providers for "
        f"{len(q['locales'])} locales ({', '.join(q['locales'])}) plus check-digit-valid "
        "identifiers Faker has no provider for (NHS, DE tax id, TFN, Medicare, NRIC) and "
        "credentials, each in the sentence real traffic carries it in (an introduction, in "
        "capitals or in lower case, a tool error, a signature, a labelled id, a postal address "
        "over several lines with its postcode, a name with no cue word that another string of "
        "the same trace gives away: PERSON_MENTIONED_ELSEWHERE, where Presidio, reading one "
        "string at a time, cannot compete). Presidio: every predefined pattern "
        f"recognizer it ships ({results['presidio_recognizers']} recognizers, country-specific "
        "ones loaded for English), no NLP engine, same strings, same run. A value counts as "
        "found when neither it nor any line of it is left in the output as a token of its own.",
        "",
        "| planted type | values | redaction | Presidio |",
        "|---|---|---|---|",
    ]
    for row in q["recall"]:
        lines.append(
            f"| {row['type']} | {row['planted']} | {_pct(row['ours'])} | {_pct(row['presidio'])} |"
        )
    h = results.get("held_out")
    if h:
        short = [r for r in h["recall"] if r["ours"] is not None and r["ours"] < 1]
        lines += [
            "",
            f"Held out: {h['values']:,} values from other samples of the same generator "
            f"(seeds {', '.join(map(str, h['seeds']))}, {h['per_locale']} per locale), redaction "
            "alone. Every type not listed is at 100 %:",
            "",
            "| planted type | values | redaction |",
            "|---|---|---|",
            *(f"| {r['type']} | {r['planted']} | {_pct(r['ours'])} |" for r in short),
        ]
    lines += [
        "",
        "Precision per detection label (correct when the detection overlaps the planted "
        "value of its string):",
        "",
        "| engine | label | detections | correct | precision |",
        "|---|---|---|---|---|",
    ]
    for engine, name in (("ours", "redaction"), ("presidio", "Presidio")):
        for row in q["precision"][engine]:
            lines.append(
                f"| {name} | {row['label']} | {row['detections']} | {row['correct']} | "
                f"{_pct(row['precision'])} |"
            )
    lines += [
        "",
        "Over-redaction on the real corpora (`../shared/corpora`, simulated people): every "
        "run redacted as the stage does; a replaced token is personal when it overlaps a "
        "value the run's own tool results hold under a personal key, or is an e-mail address; "
        "any other replaced token is over-redaction.",
        "",
        "| corpus | runs | tokens | personal tokens replaced | non-personal tokens replaced "
        "| over-redaction rate | by type | order ids / 10-digit ids / dates lost |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for corpus, r in o.items():
        lost = r["kept_shapes_lost"]
        lines.append(
            f"| {corpus} | {r['traces']} | {r['tokens']:,} | {r['replaced_personal_tokens']:,} "
            f"| {r['replaced_non_personal_tokens']:,} | {r['over_redaction_rate'] * 100:.3f} % "
            f"| {', '.join(f'{k} {v}' for k, v in r['non_personal_by_type'].items()) or '-'} "
            f"| {lost.get('order id', 0)} / {lost.get('10-digit item/product id', 0)} / "
            f"{lost.get('date', 0)} |"
        )
    lines += [
        "",
        f"Throughput on the same {t['strings']:,} real strings ({t['chars']:,} characters of "
        f"{t['traces']} tau2 and wiki-search runs), single-threaded: redaction "
        f"{t['ours_strings_per_s']['median']:,.0f} strings/s, Presidio (all recognizers) "
        f"{t['presidio_strings_per_s']['median']:,.0f} strings/s: **{t['ratio']:.1f}x**"
        + (
            f"; Presidio with only its default English recognizers "
            f"{t['presidio_default_strings_per_s']['median']:,.0f} strings/s: "
            f"**{t['ratio_to_default']:.1f}x**."
            if t.get("ratio_to_default")
            else "."
        ),
        "",
        "Section 3 above comes from the last full `make bench` run, on the generated corpus "
        "(the code it ran is named in the report's closing sections); this section is "
        "rewritten by each `python -m tools.bench.redaction` run. Throughput is five "
        "interleaved repetitions per engine, medians compared, on a shared 2-core machine.",
        "",
    ]
    return "\n".join(lines)


def write_section(path: Any, section: str) -> None:
    from pathlib import Path

    target = Path(path)
    text = target.read_text() if target.exists() else ""
    if CANARY_SECTION in text:
        start = text.index(CANARY_SECTION)
        nxt = text.find("\n## ", start + len(CANARY_SECTION))
        text = text[:start] + section + ("\n" + text[nxt + 1 :] if nxt != -1 else "")
    else:
        anchor = text.find("\n## 4.")
        text = (
            text[: anchor + 1] + section + "\n" + text[anchor + 1 :]
            if anchor != -1
            else text + "\n" + section
        )
    target.write_text(text)


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json
    from pathlib import Path

    from tools.bench.redaction_corpora import measure

    parser = argparse.ArgumentParser(prog="python -m tools.bench.redaction")
    parser.add_argument("--out", type=Path, default=Path("BENCHMARKS.md"))
    parser.add_argument("--json", dest="json_out", type=Path, default=None)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    analyzer, anonymizer, _entities = build_presidio_all()
    results: dict[str, Any] = {
        "command": "python -m tools.bench.redaction",
        "presidio_recognizers": len(analyzer.registry.recognizers),
        "canary": canary_quality(analyzer, anonymizer),
        "held_out": held_out_recall(),
        "over_redaction": measure(),
        "throughput": real_throughput(analyzer, anonymizer, default_analyzer=build_presidio()[0]),
    }
    results["seconds"] = time.perf_counter() - started
    write_section(args.out, canary_markdown(results))
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(canary_markdown(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
