"""BENCHMARKS.md from the results dict (the same dict that is written as JSON)."""

from __future__ import annotations

from typing import Any

from services.ingest.assembly import FLUSH_INTERVAL_S
from tools.bench.stats import DASH, fmt, fmt_pct, fmt_ratio, markdown_table, ratio

STAGE_ORDER = ("ingest", "dedupe", "redaction", "scoring", "fixture_writer")

# The figures of the last run before the batched kernel (traces/s, BENCHMARKS.md of
# 2026-11-27, full run): the "before" of the targets.
BEFORE: dict[str, float] = {
    "ingest": 192.0,
    "dedupe": 74.2,
    "redaction": 135.0,
    "scoring": 143.0,
    "fixture_writer": 49.4,
    "pipeline": 51.5,
}
# The targets.
TARGET_E2E_PER_S = 500.0
TARGET_E2E_TO_CHAIN = 0.5
TARGET_CPU_MS_PER_TRACE = 2.0
TARGET_P99_MS = 1000.0
TARGET_GROWTH_BAND = 0.2


def _get(data: dict[str, Any], path: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def med(data: dict[str, Any], path: str) -> float | None:
    """The median of a measurement at ``path`` (or a bare number there)."""
    value = _get(data, path)
    if isinstance(value, dict):
        found = value.get("median")
        return float(found) if isinstance(found, int | float) else None
    return float(value) if isinstance(value, int | float) else None


def _reps(data: dict[str, Any], path: str) -> str:
    value = _get(data, path)
    if not isinstance(value, dict) or not value.get("reps"):
        return DASH
    return ", ".join(fmt(x) for x in value["reps"])


def _mib(n: int | None) -> str:
    return DASH if n is None else f"{n / 2**20:,.0f} MiB"


def _failed(results: dict[str, Any], section: str) -> str | None:
    for error in results.get("errors", []):
        if error["section"] == section or error["section"].startswith(section + "."):
            return f"_Not measured: {error['section']} failed — {error['error']}_"
    return None


def ratios(results: dict[str, Any]) -> dict[str, float | None]:
    """The headline ratios, from figures measured in the same run."""
    e2e = med(results, "pipeline.end_to_end.traces_per_s")
    chain = med(results, "ceilings.chain.traces_per_s")
    producer = med(results, "ceilings.kafka_tools.producer.records_per_s")
    consumer = med(results, "ceilings.kafka_tools.consumer.records_per_s")
    scoring = med(results, "pipeline.isolation.scoring.traces_per_s")
    replay = med(results, "replay.traces_per_s")
    return {
        "pipeline_to_chain": ratio(e2e, chain),
        "pipeline_to_kafka_producer": ratio(e2e, producer),
        "chain_to_kafka_producer": ratio(chain, producer),
        "chain_to_kafka_consumer": ratio(chain, consumer),
        "chain_single_to_chain": ratio(med(results, "ceilings.chain_single.traces_per_s"), chain),
        "pipeline_to_before": ratio(e2e, BEFORE["pipeline"]),
        "replay_to_live_scoring": ratio(replay, scoring),
        "redaction_to_presidio": _get(results, "redaction.ratio_ours_to_presidio"),
    }


def slowest_stage(results: dict[str, Any]) -> tuple[str, float] | None:
    rates = [(s, med(results, f"pipeline.isolation.{s}.traces_per_s")) for s in STAGE_ORDER]
    known = [(s, r) for s, r in rates if r is not None]
    return min(known, key=lambda sr: sr[1]) if known else None


FUNNEL_TOPIC = {
    "ingest": "traces.raw",
    "dedupe": "traces.normalized",
    "redaction": "traces.deduped",
    "scoring": "traces.redacted",
    "fixture_writer": "traces.promoted",
}


def reach(results: dict[str, Any]) -> dict[str, float]:
    """Share of the traces sent end to end that reach each stage's input (first run)."""
    runs = _get(results, "pipeline.end_to_end.runs") or []
    if not runs:
        return {}
    funnel = runs[0].get("funnel") or {}
    sent = funnel.get("traces.raw") or 0
    if not sent:
        return {}
    return {stage: funnel.get(topic, 0) / sent for stage, topic in FUNNEL_TOPIC.items()}


def carrying(results: dict[str, Any]) -> dict[str, float]:
    """Traces/s of pipeline input each stage can carry: its rate alone over the share of
    the input that reaches it. The smallest is the pipeline's bottleneck."""
    shares = reach(results)
    out = {}
    for stage in STAGE_ORDER:
        rate = med(results, f"pipeline.isolation.{stage}.traces_per_s")
        share = shares.get(stage)
        if rate is not None and share:
            out[stage] = rate / share
    return out


def bottleneck_stage(results: dict[str, Any]) -> tuple[str, float] | None:
    capacity = carrying(results)
    return min(capacity.items(), key=lambda kv: kv[1]) if capacity else None


def render(results: dict[str, Any]) -> str:
    parts = [
        _header(results),
        _summary(results),
        _targets(results),
        _machine(results),
        _method(results),
        _ceilings(results),
        _pipeline(results),
        _redaction(results),
        _growth(results),
        _replay(results),
        _profile(results),
        _errors(results),
        _closing(results),
    ]
    return "\n\n".join(p for p in parts if p).rstrip() + "\n"


def _header(results: dict[str, Any]) -> str:
    mode = (
        "quick mode, a smoke run: one repetition, small corpus"
        if results.get("quick")
        else "full run"
    )
    return "\n".join(
        [
            "# Benchmarks",
            "",
            f"Generated by `{results.get('command', 'python -m tools.bench')}` on "
            f"{results.get('started_at', '?')} ({mode}); the run took "
            f"{fmt(results.get('duration_s'))} s. Every figure below was measured in this one run "
            "on the local broker and database; each is the **median of "
            f"{results.get('plan', {}).get('reps', '?')} repetition(s)** (every repetition is in "
            "`bench.json`). Ratios compare figures of this run only. Regenerate with `make bench`.",
        ]
    )


def _summary(results: dict[str, Any]) -> str:
    r = ratios(results)
    rows = [
        [
            "Pipeline end to end",
            f"{fmt(med(results, 'pipeline.end_to_end.traces_per_s'))} traces/s",
        ],
        [
            "aiokafka 5-hop pass-through chain",
            f"{fmt(med(results, 'ceilings.chain.traces_per_s'))} traces/s",
        ],
        ["Pipeline ÷ pass-through chain", fmt_ratio(r["pipeline_to_chain"])],
        [
            "Kafka ProducerPerformance (same record size)",
            f"{fmt(med(results, 'ceilings.kafka_tools.producer.records_per_s'))} records/s",
        ],
    ]
    slow = slowest_stage(results)
    if slow:
        rows.append([f"Slowest stage alone ({slow[0]})", f"{fmt(slow[1])} traces/s"])
    cpu = _get(results, "pipeline.end_to_end.cpu_ms_per_trace.total")
    if cpu is not None:
        rows.append(["CPU per sent trace, all five stages", f"{fmt(cpu)} ms"])
    dec = _get(results, "pipeline.latency.send_to_decision_ms_excl_quiet") or {}
    if dec.get("p99") is not None:
        rows.append(
            [
                "Latency send → decision at 50 % load, excluding the quiet period, p50 / p95 / p99",
                f"{fmt(dec['p50'])} / {fmt(dec['p95'])} / {fmt(dec['p99'])} ms",
            ]
        )
    lat = _get(results, "pipeline.latency.send_to_fixture_ms") or {}
    if lat.get("p50") is not None:
        rows.append(
            [
                "Latency send → fixture at 50 % load, p50 / p95 / p99",
                f"{fmt(lat['p50'])} / {fmt(lat['p95'])} / {fmt(lat['p99'])} ms",
            ]
        )
    rows.append(["Redaction ÷ Presidio (strings/s)", fmt_ratio(r["redaction_to_presidio"])])
    rows.append(["Replay ÷ live scoring stage", fmt_ratio(r["replay_to_live_scoring"])])
    return "## Summary\n\n" + markdown_table(["figure", "value"], rows, "lr")


def _met(value: float | None, ok: bool | None) -> str:
    if value is None or ok is None:
        return DASH
    return "yes" if ok else "**no**"


def growth_paired(results: dict[str, Any]) -> bool:
    """Whether the largest size was measured in turn with the reference store."""
    sizes = list(_get(results, "growth.sizes") or {})
    return bool(sizes) and med(results, f"growth.sizes.{sizes[-1]}.dedupe_to_reference") is not None


def growth_change(results: dict[str, Any], key: str) -> float | None:
    """Cost per trace at the largest store size over the smallest, minus one (None with
    fewer than two sizes). Where each size was measured in turn with the reference store,
    the sizes' costs over the reference are compared: figures taken milliseconds apart, not the
    minutes apart that let the host's drift in."""
    sizes = list(_get(results, "growth.sizes") or {})
    if len(sizes) < 2:
        return None
    if growth_paired(results):
        key = key.split("_", 1)[0] + "_to_reference"
    change = ratio(
        med(results, f"growth.sizes.{sizes[-1]}.{key}"),
        med(results, f"growth.sizes.{sizes[0]}.{key}"),
    )
    return None if change is None else change - 1.0


def _targets(results: dict[str, Any]) -> str:
    r = ratios(results)
    e2e = med(results, "pipeline.end_to_end.traces_per_s")
    cpu = _get(results, "pipeline.end_to_end.cpu_ms_per_trace.total")
    dec = _get(results, "pipeline.latency.send_to_decision_ms_excl_quiet") or {}
    dec_in = _get(results, "pipeline.latency.send_to_decision_ms") or {}
    p99 = dec.get("p99")
    grow = growth_change(results, "dedupe_us_per_trace")
    sizes = list(_get(results, "growth.sizes") or {})
    grow_span = (
        f"{fmt(int(sizes[0]))} → {fmt(int(sizes[-1]))} patterns"
        if len(sizes) >= 2
        else "10k → 1M patterns (one size measured only)"
    )
    to_chain = r["pipeline_to_chain"]
    rows = [
        [
            "End to end, traces/s",
            fmt(e2e),
            f"≥ {fmt(TARGET_E2E_PER_S)}",
            _met(e2e, None if e2e is None else e2e >= TARGET_E2E_PER_S),
        ],
        [
            "End to end ÷ batched pass-through chain",
            fmt_ratio(to_chain),
            f"≥ {fmt_ratio(TARGET_E2E_TO_CHAIN)}",
            _met(to_chain, None if to_chain is None else to_chain >= TARGET_E2E_TO_CHAIN),
        ],
        [
            "CPU ms per sent trace, all five stages",
            fmt(cpu),
            f"≤ {fmt(TARGET_CPU_MS_PER_TRACE)}",
            _met(cpu, None if cpu is None else cpu <= TARGET_CPU_MS_PER_TRACE),
        ],
        [
            "p99 send → decision at half the maximum rate, ms (excluding the quiet period; "
            f"including it: {fmt(dec_in.get('p99'))})",
            fmt(p99),
            f"≤ {fmt(TARGET_P99_MS)}",
            _met(p99, None if p99 is None else p99 <= TARGET_P99_MS),
        ],
        [
            f"Dedupe store cost per trace, {grow_span}",
            DASH if grow is None else f"{grow * 100:+.1f} %",
            f"within ±{TARGET_GROWTH_BAND * 100:.0f} %",
            _met(grow, None if grow is None else abs(grow) <= TARGET_GROWTH_BAND),
        ],
    ]
    e2e_cpu = _get(results, "pipeline.end_to_end.cpu_ms_per_trace") or {}
    stage_rows = [
        [
            "pipeline end to end",
            fmt(BEFORE["pipeline"]),
            fmt(e2e),
            fmt_ratio(r["pipeline_to_before"]),
            DASH,
            DASH,
            fmt(cpu),
        ]
    ]
    for stage in STAGE_ORDER:
        now = med(results, f"pipeline.isolation.{stage}.traces_per_s")
        stage_rows.append(
            [
                stage,
                fmt(BEFORE[stage]),
                fmt(now),
                fmt_ratio(ratio(now, BEFORE[stage])),
                fmt(med(results, f"pipeline.compute.{stage}.traces_per_s")),
                fmt(med(results, f"pipeline.isolation.{stage}.cpu_ms_per_event")),
                fmt(e2e_cpu.get(stage)),
            ]
        )
    text = [
        "## The issue's targets",
        "",
        markdown_table(["target", "measured", "wanted", "met"], rows, "lrrl"),
        "",
        "Every stage alone against the figures of the last run before the batched kernel "
        '(traces/s, full run of 2026-11-27: the "before"); the pure compute is the '
        "stage's logic alone in-process, no I/O (section 2); CPU is user + system time of "
        "the stage process and its children.",
        "",
        markdown_table(
            [
                "",
                "before, traces/s",
                "now alone, traces/s",
                "now ÷ before",
                "pure compute, traces/s",
                "CPU ms per event alone",
                "CPU ms per sent trace, end to end",
            ],
            stage_rows,
            "lrrrrrr",
        ),
    ]
    if results.get("quick"):
        text += [
            "",
            "_Quick mode: a smoke run on a small corpus; the targets are judged on the "
            "full run only._",
        ]
    return "\n".join(text)


def _machine(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    packages = ", ".join(f"{k} {v}" for k, v in (m.get("packages") or {}).items() if v)
    rows = [
        [
            "CPU",
            f"{m.get('cpu_model', '?')}: {m.get('logical_cores', '?')} logical cores "
            f"({m.get('usable_cores', '?')} usable)",
        ],
        ["Memory", f"{m.get('memory_gib', '?')} GiB"],
        ["OS", m.get("os", "?")],
        ["Python", m.get("python", "?")],
        ["Java", m.get("java", "?")],
        [
            "Kafka",
            f"{m.get('kafka', '?')} (single KRaft node from the official jars, "
            f"{'started by the harness' if m.get('kafka_managed') else 'given'})",
        ],
        [
            "PostgreSQL",
            f"{m.get('postgresql', '?')} "
            f"({'embedded, started by the harness' if m.get('postgres_managed') else 'given'})",
        ],
        ["Packages", packages or "?"],
        [
            "Load average (1/5/15 min) at start / end",
            f"{_load(m.get('load_average_at_start'))} / {_load(m.get('load_average_at_end'))}",
        ],
    ]
    note = ""
    load = m.get("load_average_at_start") or []
    cores = m.get("logical_cores") or 0
    if load and cores and load[0] > cores * 0.5:
        note = (
            "\n\nThe machine was not idle when the run started (load average above half the "
            "cores): other work competed for the CPU, so absolute figures are pessimistic; "
            "ratios of figures measured side by side are the more robust reading."
        )
    return "## Machine\n\n" + markdown_table(["", ""], rows, "ll") + note


def _load(values: list[float] | None) -> str:
    return " ".join(f"{v:.2f}" for v in values) if values else "?"


def _method(results: dict[str, Any]) -> str:
    plan = results.get("plan", {})
    corpus = results.get("corpus", {})
    quiet = plan.get("assembly_quiet_ms")
    max_wait = plan.get("assembly_max_wait_ms")
    partitions = results.get("settings", {}).get("partitions", "?")
    generated = f"generate(seed={plan.get('seed')}, scale={plan.get('corpus_scale')})"
    lines = [
        f"- Corpus: `tools.corpus.generate.{generated}`, {corpus.get('traces', '?')} traces "
        f"sent as native JSON (median {fmt(corpus.get('median_bytes'))} bytes, "
        f"{fmt(corpus.get('spans_median'))} spans), exact re-sends included; the "
        f"{corpus.get('incomplete_dropped', '?')} traces whose root never ends are left out "
        "(they only measure the assembly's maximum wait).",
        "- Stages run as five separate processes (`faststream run services.<stage>.app:app`, "
        "as `promote up` starts them, on the event loop it picks: uvloop when installed, see "
        f"Packages) with `PROMOTE_ASSEMBLY_QUIET_MS={quiet}` (default 1500)"
        f" and `PROMOTE_ASSEMBLY_MAX_WAIT_MS={max_wait}`, {partitions} partitions per topic, "
        "logging at INFO as deployed. Before every repetition every table of the store is "
        "emptied, so each repetition starts from the same empty store.",
        "- Throughput is counted from the first send until the consumer groups are idle by the "
        "rule of `promote wait` (every group at lag 0 on two readings 0.5 s apart), nothing "
        "subtracted; the same rule ends the pass-through chain's runs. The time to the last "
        "decision record (its Kafka timestamp) is given beside it.",
        "- Per-stage figures: the stage's input topic is fed events built in-process with the "
        "stages' own pure logic while the other four stage processes are frozen (SIGSTOP); "
        "the time runs from the first send until the stage's group lag is 0; the stage's "
        "CPU over that time, divided by the events, is given beside.",
        "- Latency: traces are sent at half the measured end-to-end maximum; send time is "
        "taken just before each send, arrival as the Kafka timestamp of the trace's decision "
        "on `traces.scored` and of the `fixtures.index` record published after its fixtures "
        "were written. Each latency repetition starts from the pattern store the end-to-end "
        "run left (the patterns known; their coverage, budgets, decisions and fixtures "
        "emptied), so recurring traces are promotable from their first occurrence on, and "
        f"sends traces of new ids. The assembly quiet period is set to {quiet} ms and "
        "subtracted from every sample in the rows that exclude it (add the configured "
        "quiet period, default 1.5 s, for production settings); the ingest flush tick "
        f"({FLUSH_INTERVAL_S * 1000:.0f} ms) is included.",
        "- CPU: user + system time (psutil) of every stage process and its children, read "
        "just before the first send and once the groups are idle, divided by the traces "
        "sent; the broker's and PostgreSQL's are shown beside, not counted.",
        "- Pure compute: each stage's logic functions in the harness' process on the same "
        "kind of input events, with every stage process stopped.",
    ]
    return "## How it was measured\n\n" + "\n".join(lines)


def _ceilings(results: dict[str, Any]) -> str:
    failed = _failed(results, "ceilings")
    kt = _get(results, "ceilings.kafka_tools") or {}
    rows = []
    if kt:
        rows.append(
            [
                f"Kafka ProducerPerformance ({fmt(kt.get('record_size_bytes'))}-byte "
                f"records, {kt.get('producer_settings')}, "
                f"{fmt(_get(kt, 'producer.records'))} records after "
                f"{fmt(kt.get('warmup_records'))} warm-up records left out)",
                fmt(med(results, "ceilings.kafka_tools.producer.records_per_s")),
                fmt(med(results, "ceilings.kafka_tools.producer.mb_per_s")),
                _reps(results, "ceilings.kafka_tools.producer.records_per_s"),
            ]
        )
        rows.append(
            [
                f"Kafka ConsumerPerformance (fetch rate, {fmt(_get(kt, 'consumer.records'))}"
                " records)",
                fmt(med(results, "ceilings.kafka_tools.consumer.records_per_s")),
                fmt(med(results, "ceilings.kafka_tools.consumer.mb_per_s")),
                _reps(results, "ceilings.kafka_tools.consumer.records_per_s"),
            ]
        )
    labels = {
        "chain": "batched (getmany → send all → await the acks → commit)",
        "chain_single": "one record at a time, as before the batched kernel (for comparison)",
    }
    for key, label in labels.items():
        chain = _get(results, f"ceilings.{key}") or {}
        if not chain:
            continue
        rows.append(
            [
                f"aiokafka pass-through chain, {chain.get('hops')} hops, one process each, "
                f"{label}, {fmt(chain.get('messages'))} traces, to idle",
                fmt(med(results, f"ceilings.{key}.traces_per_s")),
                DASH,
                _reps(results, f"ceilings.{key}.traces_per_s"),
            ]
        )
        rows.append(
            [
                "… same, to the last record on the chain's last topic",
                fmt(med(results, f"ceilings.{key}.traces_per_s_to_last_output")),
                DASH,
                _reps(results, f"ceilings.{key}.traces_per_s_to_last_output"),
            ]
        )
    body = (
        markdown_table(["ceiling", "records/s", "MB/s", "repetitions"], rows, "lrrl")
        if rows
        else ""
    )
    r = ratios(results)
    settings = _get(results, "ceilings.chain.settings") or {}
    described = ", ".join(
        f"{k}={v}"
        for k, v in settings.items()
        if k
        in (
            "acks",
            "enable_idempotence",
            "linger_ms",
            "max_batch_size",
            "stage_batch_records",
            "stage_batch_timeout_ms",
        )
    )
    text = [
        "## 1. Ceilings (same run)",
        "",
        "The broker's own tools on a fresh topic with the pipeline's partition count per "
        "repetition (the producer's warm-up records are sent first by the same producer "
        "and left out of its figures), and a chain of five aiokafka processes that do what "
        "a batched stage does minus the work: take a poll of records (`getmany`), hand "
        "every one to the producer without awaiting each, await all the acknowledgements, "
        "then commit the batch's offsets. The hops' producer and consumer are built by "
        "the stages' own factories (`shared.kafka.make_producer` / `make_consumer`: "
        f"{described or 'the stages settings'}). The chain carries exactly the raw "
        "messages of the pipeline run."
        + (
            " The one-record-at-a-time chain of before (consume one, publish, await its "
            "acknowledgement, commit) runs on the first "
            f"{fmt(_get(results, 'ceilings.chain_single.messages'))} of them, for comparison."
            if _get(results, "ceilings.chain_single")
            else ""
        ),
        "",
        body,
    ]
    if r["chain_to_kafka_producer"] is not None:
        text += [
            "",
            f"The batched pass-through chain reaches {fmt_ratio(r['chain_to_kafka_producer'])} "
            "of the Java producer's record rate.",
        ]
    if r["chain_single_to_chain"] is not None:
        text += [
            "",
            "The one-record-at-a-time chain runs "
            f"{fmt_ratio(r['chain_single_to_chain'])} as fast as the batched one.",
        ]
    if failed:
        text += ["", failed]
    return "\n".join(text)


def _pipeline(results: dict[str, Any]) -> str:
    text = ["## 2. The pipeline"]
    failed = _failed(results, "pipeline")
    e2e = _get(results, "pipeline.end_to_end")
    if e2e:
        r = ratios(results)
        rows = [
            [
                "traces/s, first send → idle",
                fmt(med(results, "pipeline.end_to_end.traces_per_s")),
                _reps(results, "pipeline.end_to_end.traces_per_s"),
            ],
            [
                "traces/s, first send → last decision on traces.scored",
                fmt(med(results, "pipeline.end_to_end.traces_per_s_to_last_decision")),
                _reps(results, "pipeline.end_to_end.traces_per_s_to_last_decision"),
            ],
            ["÷ aiokafka pass-through chain (to idle)", fmt_ratio(r["pipeline_to_chain"]), ""],
            ["÷ Kafka ProducerPerformance", fmt_ratio(r["pipeline_to_kafka_producer"]), ""],
        ]
        text += [
            "",
            "### End to end (all five stages, separate processes)",
            "",
            markdown_table(["", "value", "repetitions"], rows, "lrl"),
        ]
        runs = e2e.get("runs") or []
        if runs:
            funnel = runs[0].get("funnel", {})
            order = [
                "traces.raw",
                "traces.normalized",
                "traces.deduped",
                "traces.redacted",
                "traces.scored",
                "traces.promoted",
                "fixtures.index",
                "traces.dlq",
            ]
            text += [
                "",
                "What one repetition put on each topic (dedupe forwards only the first "
                "traces of a pattern that are not near copies, until a fixture covers it):",
                "",
                markdown_table(["topic", "records"], [[t, funnel.get(t, 0)] for t in order], "lr"),
            ]
        cpu = e2e.get("cpu_ms_per_trace") or {}
        if any(v is not None for v in cpu.values()):
            others = e2e.get("cpu_ms_per_trace_others") or {}
            cpu_rows: list[list[object]] = [[s, fmt(cpu.get(s))] for s in STAGE_ORDER]
            cpu_rows.append(["**all five stages**", fmt(cpu.get("total"))])
            cpu_rows += [[f"({name}, not counted above)", fmt(v)] for name, v in others.items()]
            text += [
                "",
                "CPU per sent trace: user + system time of each stage process and its "
                "children from the first send until idle (psutil, before and after each "
                "repetition), divided by the traces sent (median of the repetitions):",
                "",
                markdown_table(["process", "CPU ms per sent trace"], cpu_rows, "lr"),
            ]
    iso = _get(results, "pipeline.isolation")
    if iso:
        e2e_rate = med(results, "pipeline.end_to_end.traces_per_s")
        shares = reach(results)
        capacity = carrying(results)
        rows = []
        for stage in STAGE_ORDER:
            data = iso.get(stage) or {}
            if "error" in data:
                rows.append([stage, DASH, DASH, DASH, DASH, DASH, DASH, DASH, data["error"]])
                continue
            rate = med(results, f"pipeline.isolation.{stage}.traces_per_s")
            rows.append(
                [
                    stage,
                    fmt(data.get("events")),
                    f"{fmt(data.get('input_bytes_median'))} B",
                    fmt(rate),
                    fmt_ratio(ratio(rate, e2e_rate)),
                    fmt_pct(shares.get(stage)),
                    fmt(capacity.get(stage)),
                    fmt(med(results, f"pipeline.isolation.{stage}.cpu_ms_per_event")),
                    _reps(results, f"pipeline.isolation.{stage}.traces_per_s"),
                ]
            )
        text += [
            "",
            "### Each stage alone",
            "",
            markdown_table(
                [
                    "stage",
                    "events",
                    "input size (median)",
                    "traces/s",
                    "÷ end to end",
                    "share of sent traces reaching it",
                    "sent traces/s it can carry",
                    "CPU ms per event",
                    "repetitions",
                ],
                rows,
                "lrrrrrrrl",
            ),
        ]
        neck = bottleneck_stage(results)
        if neck:
            text += [
                "",
                f"A stage carries its rate alone divided by the share of the sent "
                f"traces that reach it (from the end-to-end funnel above): the pipeline's "
                f"bottleneck on this corpus is **{neck[0]}** "
                f"({fmt(neck[1])} sent traces/s).",
            ]
    comp = _get(results, "pipeline.compute")
    if comp:
        rows = []
        for stage in STAGE_ORDER:
            data = comp.get(stage) or {}
            if "error" in data:
                rows.append([stage, DASH, DASH, DASH, DASH, DASH, data["error"]])
                continue
            rate = med(results, f"pipeline.compute.{stage}.traces_per_s")
            alone = med(results, f"pipeline.isolation.{stage}.traces_per_s")
            rows.append(
                [
                    stage,
                    data.get("what", ""),
                    fmt(data.get("events")),
                    fmt(rate),
                    fmt(data.get("cpu_ms_per_event")),
                    fmt_ratio(ratio(alone, rate)),
                    _reps(results, f"pipeline.compute.{stage}.traces_per_s"),
                ]
            )
        text += [
            "",
            "### Each stage's pure compute (in-process, no I/O)",
            "",
            "The stage's logic functions alone on the same input events, single-threaded in "
            "the harness' process with the stage processes stopped: from the input record's "
            "bytes to the output record's bytes, no Kafka, database or files (see "
            "`tools/bench/compute.py` for what each includes). The stage alone ÷ its pure "
            "compute is the share of the compute's rate the deployed stage reaches.",
            "",
            markdown_table(
                [
                    "stage",
                    "what is timed",
                    "events",
                    "traces/s",
                    "ms per event",
                    "stage alone ÷ pure compute",
                    "repetitions",
                ],
                rows,
                "llrrrrl",
            ),
        ]
    lat = _get(results, "pipeline.latency")
    if lat:
        rows = []
        quiet_ms = lat.get("assembly_quiet_ms")
        for key, label in (
            (
                "send_to_decision_ms_excl_quiet",
                f"send → decision on traces.scored, excluding the {quiet_ms} ms quiet period",
            ),
            ("send_to_decision_ms", "send → decision on traces.scored, as measured"),
            (
                "send_to_fixture_ms_excl_quiet",
                f"send → fixture written (fixtures.index), excluding the {quiet_ms} ms "
                "quiet period",
            ),
            ("send_to_fixture_ms", "send → fixture written (fixtures.index), as measured"),
        ):
            if key not in lat:
                continue
            d = lat.get(key) or {}
            rows.append(
                [
                    label,
                    fmt(d.get("n")),
                    fmt(d.get("p50")),
                    fmt(d.get("p95")),
                    fmt(d.get("p99")),
                    fmt(d.get("max")),
                ]
            )
        text += [
            "",
            f"### Latency at 50 % of the measured maximum "
            f"({fmt(lat.get('rate_per_s'))} traces/s, {fmt(lat.get('traces_per_run'))} "
            "traces per repetition)",
            "",
            markdown_table(
                ["path", "traces", "p50 ms", "p95 ms", "p99 ms", "max ms"], rows, "lrrrrr"
            ),
            "",
            f"Assembly quiet period: {quiet_ms} ms. The ingest assembly releases a trace "
            "only once no span of it has arrived for the quiet period (a wait set by "
            'configuration, production default 1500 ms, not work): the rows "excluding the '
            'quiet period" subtract it from every sample, the rows "as measured" include '
            f"it. The ingest flush tick ({FLUSH_INTERVAL_S * 1000:.0f} ms) is included in "
            "both. Only traces that "
            "reach scoring have a decision and only promoted ones a fixture; the counts are "
            "per repetition.",
        ]
    peak = _get(results, "pipeline.end_to_end.rss_peak_bytes") or {}
    end = _get(results, "pipeline.end_to_end.rss_end_bytes") or {}
    if peak:
        rows = [[name, _mib(peak.get(name)), _mib(end.get(name))] for name in peak]
        chain_peak = _get(results, "ceilings.chain.rss_peak_bytes") or {}
        if chain_peak:
            rows.append(
                ["(a pass-through hop, for comparison)", _mib(max(chain_peak.values())), DASH]
            )
        text += [
            "",
            "### Memory (RSS, sampled every 0.25 s during the end-to-end runs)",
            "",
            markdown_table(["process", "peak", "at the end"], rows, "lrr"),
            "",
            "PostgreSQL's figure sums its processes, so shared buffers count once per backend.",
        ]
    if failed:
        text += ["", failed]
    return "\n".join(text)


def _redaction(results: dict[str, Any]) -> str:
    red = results.get("redaction")
    failed = _failed(results, "redaction")
    text = ["## 3. Redaction vs Presidio"]
    if red:
        text += [
            "",
            f"{fmt(red.get('strings'))} strings ({fmt(red.get('chars'))} characters) "
            f"of {red.get('traces')} traces: all {red.get('pii_traces')} PII-heavy traces and "
            "a sample of the others. Presidio: AnalyzerEngine with its predefined recognizers "
            "and no NLP engine, then AnonymizerEngine; the project's redaction as the stage "
            "runs it (`redact_trace` per trace). Both single-threaded in one process.",
            "",
            markdown_table(
                ["engine", "strings/s", "repetitions"],
                [
                    [
                        "redaction (services/redaction)",
                        fmt(med(results, "redaction.ours_strings_per_s")),
                        _reps(results, "redaction.ours_strings_per_s"),
                    ],
                    [
                        "Presidio (analyze + anonymize)",
                        fmt(med(results, "redaction.presidio_strings_per_s")),
                        _reps(results, "redaction.presidio_strings_per_s"),
                    ],
                    ["ratio", fmt_ratio(red.get("ratio_ours_to_presidio")), ""],
                ],
                "lrl",
            ),
        ]
        threshold = red.get("presidio_second_threshold")
        rows = [
            [
                r["type"],
                r["planted"],
                fmt_pct(r["ours"]),
                fmt_pct(r["presidio"]),
                fmt_pct(r["presidio_score_0_4"]),
            ]
            for r in red.get("recall", [])
        ]
        overall = red.get("recall_overall", {})
        rows.append(
            [
                "**all**",
                sum(r["planted"] for r in red.get("recall", [])),
                fmt_pct(overall.get("ours")),
                fmt_pct(overall.get("presidio")),
                fmt_pct(overall.get("presidio_04")),
            ]
        )
        text += [
            "",
            "Recall per planted type (a value counts as found when it no longer appears "
            "in any output string of its trace):",
            "",
            markdown_table(
                [
                    "planted type",
                    "values",
                    "redaction",
                    "Presidio",
                    f"Presidio, score ≥ {threshold}",
                ],
                rows,
                "lrrrr",
            ),
        ]
        rows = []
        for engine, name in (
            ("ours", "redaction"),
            ("presidio", "Presidio"),
            ("presidio_04", f"Presidio, score ≥ {threshold}"),
        ):
            for r in red.get("precision", {}).get(engine, []):
                rows.append(
                    [name, r["label"], r["detections"], r["correct"], fmt_pct(r["precision"])]
                )
        text += [
            "",
            "Precision per detection label (a detection is correct when its text "
            "overlaps a planted value of a type the label stands for; labels with no "
            "planted counterpart, such as Presidio's URL or DATE_TIME, are all counted "
            "wrong):",
            "",
            markdown_table(
                ["engine", "label", "detections", "correct", "precision"], rows, "llrrr"
            ),
        ]
        if red.get("unaligned_strings"):
            text += [
                "",
                f"{red['unaligned_strings']} redacted strings could not be aligned with "
                "their originals; their detections are not in the precision table.",
            ]
    if failed:
        text += ["", failed]
    return "\n".join(text)


def _growth(results: dict[str, Any]) -> str:
    growth = results.get("growth")
    failed = _failed(results, "growth")
    text = ["## 4. Growth: cost per trace as the pattern store grows"]
    if growth:
        sizes = growth.get("sizes", {})
        rows = []
        for key, data in sizes.items():
            bytes_total = sum((data.get("table_bytes") or {}).values())
            rows.append(
                [
                    fmt(int(key)),
                    fmt(med(results, f"growth.sizes.{key}.dedupe_us_per_trace")),
                    fmt(data.get("dedupe_p95_us")),
                    fmt(med(results, f"growth.sizes.{key}.scoring_us_per_trace")),
                    fmt(data.get("scoring_p95_us")),
                    fmt(data.get("scoring_daily_cap_us_per_trace")),
                    fmt(med(results, f"growth.sizes.{key}.reference_dedupe_us_per_trace")),
                    fmt_ratio(med(results, f"growth.sizes.{key}.dedupe_to_reference")),
                    _mib(bytes_total),
                ]
            )
        text += [
            "",
            "Store calls per trace against the real database, in batches of 50 traces as "
            "the batched stages make them, a batch's time divided by its traces (dedupe: "
            "one `batch(buckets)` session with `record`, `days`, `pattern`, and "
            "`reference` + `baseline` for a trace it forwards, then `mark_forwarded` of "
            "the batch; scoring: `facts` for the batch), for realistic traces of new trace "
            "ids, after one untimed pass at each size (the first batches on the pool's "
            "connections prepare their statements); the p95 columns are of those "
            "per-batch figures. The default policy "
            "has no daily cap, so its budget query counts only the pattern's promotions; "
            "the daily-cap column is the query a policy with a cap pays (it also counts "
            "the day's promotions, which grow with the store). Synthetic patterns: "
            f"{growth.get('synthetic_per_pattern')}; they live in "
            f"{fmt(growth.get('buckets'))} buckets of their own. Every batch also runs "
            "against a reference store of the smallest size, "
            "milliseconds apart, the two taking turns going first; the host's speed "
            "drifts over the minutes a million patterns take to synthesise, so the "
            "flatness figure compares each size's cost over the reference's.",
            "",
            markdown_table(
                [
                    "patterns in the store",
                    "dedupe µs/trace",
                    "dedupe p95 µs",
                    "scoring µs/trace",
                    "scoring p95 µs",
                    "scoring µs/trace, daily cap",
                    "dedupe µs/trace, reference store",
                    "dedupe ÷ reference",
                    "store on disk",
                ],
                rows,
                "rrrrrrrrr",
            ),
        ]
        keys = list(sizes)
        if keys:
            tables = sizes[keys[-1]].get("table_bytes") or {}
            total = sum(tables.values())
            if tables and total:
                biggest = max(tables, key=lambda t: tables[t])
                text += [
                    "",
                    f"At {fmt(int(keys[-1]))} patterns the store takes {_mib(total)} "
                    f"on disk, {fmt_pct(tables[biggest] / total)} of it in `{biggest}` "
                    f"({fmt(tables[biggest] / int(keys[-1]))} bytes per pattern).",
                ]
        if len(keys) >= 2:
            first, last = keys[0], keys[-1]
            d = growth_change(results, "dedupe_us_per_trace")
            s = growth_change(results, "scoring_us_per_trace")
            text += [
                "",
                f"From {fmt(int(first))} to {fmt(int(last))} patterns the dedupe store "
                f"calls cost {fmt_ratio(None if d is None else 1 + d)} and the scoring "
                f"budget query {fmt_ratio(None if s is None else 1 + s)} as much per trace"
                + (
                    " (each size's cost over the reference store's, measured in turn)."
                    if growth_paired(results)
                    else "."
                ),
            ]
            if d is not None:
                flat = abs(d) <= TARGET_GROWTH_BAND
                text += [
                    "",
                    f"Dedupe's cost per trace changes by {d * 100:+.1f} % over that "
                    f"range: {'within' if flat else 'outside'} the ±"
                    f"{TARGET_GROWTH_BAND * 100:.0f} % of a flat cost.",
                ]
    if failed:
        text += ["", failed]
    return "\n".join(text)


def _replay(results: dict[str, Any]) -> str:
    rep = results.get("replay")
    failed = _failed(results, "replay")
    text = ["## 5. Replay"]
    if rep:
        live = med(results, "pipeline.isolation.scoring.traces_per_s")
        rate = med(results, "replay.traces_per_s")
        text += [
            "",
            f"`{rep.get('command')}` over the {fmt(rep.get('traces'))} traces the "
            "benchmark left on traces.redacted, against the scoring stage's live rate "
            "(alone, from section 2).",
            "",
            markdown_table(
                ["", "traces/s", "repetitions"],
                [
                    [
                        "replay, re-scoring from traces.redacted",
                        fmt(rate),
                        _reps(results, "replay.traces_per_s"),
                    ],
                    [
                        "live scoring stage",
                        fmt(live),
                        _reps(results, "pipeline.isolation.scoring.traces_per_s"),
                    ],
                    ["replay ÷ live", fmt_ratio(ratio(rate, live)), ""],
                ],
                "lrl",
            ),
        ]
    if failed:
        text += ["", failed]
    return "\n".join(text)


def _on_cpu(prof: dict[str, Any]) -> str:
    """Busy samples over the samples 100 Hz would give for the run's duration: the share
    of wall time the stage process was on the CPU (the rest it waited for I/O)."""
    rate, events, busy = prof.get("traces_per_s_sampled"), prof.get("events"), prof.get("samples")
    if not rate or not events or busy is None:
        return ""
    share = min(1.0, busy / (events / rate * 100.0))
    return f", on the CPU about {fmt_pct(share)} of the run's wall time"


def _profile(results: dict[str, Any]) -> str:
    profiles = _get(results, "pipeline.profiles") or []
    failed = _failed(results, "pipeline.profiles")
    text = ["## Where the time goes (profiles)"]
    for prof in profiles:
        title = f"### {prof.get('stage')}: {prof.get('why', '')}"
        if "error" in prof:
            text += ["", title, "", f"_Not profiled: {prof['error']}_"]
            continue
        text += [
            "",
            title,
            "",
            f"`{prof.get('stage')}` alone, {prof.get('events')} events, sampled with "
            f"{prof.get('tool')}: {fmt(prof.get('samples'))} busy samples (and "
            f"{fmt(prof.get('idle_samples'))} of threads waiting in select() or on a "
            "condition, left out), "
            f"{fmt(prof.get('traces_per_s_sampled'))} traces/s while sampled{_on_cpu(prof)}. "
            "A sample "
            "belongs to the first component found walking from the innermost frame "
            "outwards (a json.loads inside the redaction logic counts as redaction).",
            "",
            markdown_table(
                ["component", "share of busy samples"],
                [[c["name"], fmt_pct(c["share"])] for c in prof.get("components", [])],
                "lr",
            ),
            "",
            "Hottest functions by self time:",
            "",
            markdown_table(
                ["function", "self"],
                [[f"`{c['name']}`", fmt_pct(c["share"])] for c in prof.get("self", [])],
                "lr",
            ),
            "",
            "The project's functions by inclusive time:",
            "",
            markdown_table(
                ["function", "inclusive"],
                [
                    [f"`{c['name']}`", fmt_pct(c["share"])]
                    for c in prof.get("inclusive_project", [])
                ],
                "lr",
            ),
        ]
        top = prof.get("components", [])[:3]
        if top:
            text += [
                "",
                "Most of the busy time: "
                + ", ".join(f"{c['name']} {fmt_pct(c['share'])}" for c in top)
                + ".",
            ]
        rep = prof.get("second_pass_strings")
        if rep and rep.get("checked"):
            text += [
                "",
                f"Of the {fmt(rep['checked'])} strings the privacy second pass analysed "
                f"for these {prof.get('events')} promotions, {fmt(rep['repeated'])} "
                f"({fmt_pct(rep['repeated'] / rep['checked'])}) had already been analysed "
                "for an earlier promotion (only "
                f"{fmt(rep['distinct'])} distinct strings).",
            ]
    text += _fixes(results)
    if failed:
        text += ["", failed]
    return "\n".join(text) if len(text) > 1 else ""


def _fixes(results: dict[str, Any]) -> list[str]:
    found = _get(results, "pipeline.fixes") or []
    failed = _failed(results, "pipeline.fixes")
    if not found and not failed:
        return []
    text = [
        "",
        "### What was done about it",
        "",
        "Each fix below came from these profiles. Its code path is timed against the path "
        "it replaced, in one process on the same inputs in this run (median of the "
        "repetitions); the stage rates above already include it. The budget query that "
        "counted the day's promotions for every trace now does so only under a policy with "
        "a daily cap: section 4 gives both costs. The promotions here are built without "
        "the per-pattern budget, so they repeat strings more than live promotions do: the "
        'second-pass speedup is an upper bound for live traffic. The memo\'s "before" keeps '
        "repeats within one trace, so its speedup is a lower bound.",
        "",
        markdown_table(
            ["fix", "measured on", "before", "after", "speedup"],
            [
                [
                    f["fix"],
                    f["what"],
                    f"{fmt(f['before']['median'])} {f['unit']}/s",
                    f"{fmt(f['after']['median'])} {f['unit']}/s",
                    fmt_ratio(f["speedup"]),
                ]
                for f in found
            ],
            "llrrr",
        ),
    ]
    if failed:
        text += ["", failed]
    return text


def _errors(results: dict[str, Any]) -> str:
    errors = results.get("errors") or []
    if not errors:
        return ""
    rows = [[e["section"], e["error"]] for e in errors]
    return "## Failures in this run\n\n" + markdown_table(["section", "error"], rows, "ll")


def _closing(results: dict[str, Any]) -> str:
    r = ratios(results)
    bits = []
    e2e = med(results, "pipeline.end_to_end.traces_per_s")
    cores = _get(results, "machine.logical_cores")
    if e2e is not None:
        per_core = f" ({fmt(e2e / cores)} per core)" if cores else ""
        bits.append(
            f"the five-stage pipeline sustains {fmt(e2e)} traces/s end to end{per_core},"
            f" {fmt_ratio(r['pipeline_to_chain'])} of a five-hop aiokafka pass-through "
            f"chain ({fmt(med(results, 'ceilings.chain.traces_per_s'))} traces/s) and "
            f"{fmt_ratio(r['pipeline_to_kafka_producer'])} of Kafka's own producer "
            f"({fmt(med(results, 'ceilings.kafka_tools.producer.records_per_s'))} records/s)"
        )
    slow = slowest_stage(results)
    if slow:
        bits.append(f"the slowest stage alone is {slow[0]} at {fmt(slow[1])} traces/s")
    neck = bottleneck_stage(results)
    if neck:
        bits.append(
            f"the end-to-end bottleneck is {neck[0]}, which carries {fmt(neck[1])} "
            "sent traces/s given the share of traces that reach it"
        )
    lat = _get(results, "pipeline.latency.send_to_fixture_ms") or {}
    if lat.get("p50") is not None:
        bits.append(
            f"at half the end-to-end maximum a promoted trace becomes a fixture in "
            f"{fmt(lat['p50'])} ms (p50), {fmt(lat['p95'])} ms (p95), "
            f"{fmt(lat['p99'])} ms (p99)"
        )
    if r["redaction_to_presidio"] is not None:
        overall = _get(results, "redaction.recall_overall") or {}
        bits.append(
            f"redaction runs {fmt_ratio(r['redaction_to_presidio'])} as fast as Presidio "
            f"on the same strings with recall {fmt_pct(overall.get('ours'))} against "
            f"Presidio's {fmt_pct(overall.get('presidio'))}"
        )
    sizes = list(_get(results, "growth.sizes") or {})
    if sizes:
        first, last = sizes[0], sizes[-1]
        d0 = fmt(med(results, f"growth.sizes.{first}.dedupe_us_per_trace"))
        s0 = fmt(med(results, f"growth.sizes.{first}.scoring_us_per_trace"))
        if first == last:
            bits.append(
                f"with {fmt(int(first))} patterns in the store dedupe's store calls "
                f"cost {d0} µs/trace and scoring's budget query {s0} µs"
            )
        else:
            change = growth_change(results, "dedupe_us_per_trace")
            d1 = fmt(med(results, f"growth.sizes.{last}.dedupe_us_per_trace"))
            s1 = fmt(med(results, f"growth.sizes.{last}.scoring_us_per_trace"))
            bits.append(
                f"from {fmt(int(first))} to {fmt(int(last))} patterns in the store "
                f"dedupe's store calls go from {d0} to {d1} µs/trace and scoring's "
                f"budget query from {s0} to {s1} µs"
                + (
                    f" ({fmt_ratio(1 + change)} the cost at {fmt(int(first))}, each measured "
                    "in turn with a reference store)"
                    if change is not None and growth_paired(results)
                    else ""
                )
            )
    if r["replay_to_live_scoring"] is not None:
        bits.append(
            f"replay re-scores history at {fmt(med(results, 'replay.traces_per_s'))} "
            f"traces/s, {fmt_ratio(r['replay_to_live_scoring'])} the live scoring stage"
        )
    if not bits:
        return ""
    cores_text = f"{cores} cores" if cores else "this machine"
    return "## Closing note\n\nOn " + cores_text + ", " + "; ".join(bits) + "."
