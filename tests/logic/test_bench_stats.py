"""The benchmark harness's pure helpers: the arithmetic and rendering behind BENCHMARKS.md."""

from __future__ import annotations

from typing import Any

import pytest

from tools.bench import profile, report, stats
from tools.bench.kafka_tools import parse_consumer, parse_producer

pytestmark = pytest.mark.logic


def test_median_of_odd_and_even_counts() -> None:
    assert stats.median([3, 1, 2]) == 2
    assert stats.median([4, 1, 3, 2]) == 2.5
    assert stats.median([7.0]) == 7.0
    with pytest.raises(ValueError):
        stats.median([])


def test_percentile_interpolates_between_closest_ranks() -> None:
    values = [1, 2, 3, 4]
    assert stats.percentile(values, 50) == 2.5
    assert stats.percentile(values, 0) == 1
    assert stats.percentile(values, 100) == 4
    assert stats.percentile(list(range(1, 101)), 95) == pytest.approx(95.05)
    assert stats.percentile([5], 99) == 5
    with pytest.raises(ValueError):
        stats.percentile(values, 101)


def test_latency_summary_and_its_empty_case() -> None:
    summary = stats.latency_summary([10.0, 20.0, 30.0, 40.0, 50.0])
    assert summary == {"n": 5, "p50": 30.0, "p95": 48.0, "p99": pytest.approx(49.6), "max": 50.0}
    assert stats.latency_summary([]) == {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}


def test_rate_ratio_and_measurement() -> None:
    assert stats.rate(100, 4.0) == 25.0
    with pytest.raises(ValueError):
        stats.rate(1, 0.0)
    assert stats.ratio(1.0, 4.0) == 0.25
    assert stats.ratio(None, 4.0) is None
    assert stats.ratio(1.0, 0.0) is None
    m = stats.measurement([3.0, 1.0, 2.0], "traces/s")
    assert (m["median"], m["min"], m["max"], m["reps"]) == (2.0, 1.0, 3.0, [3.0, 1.0, 2.0])
    assert stats.median_of([{"p": 1.0}, {"p": None}, {"p": 3.0}], "p") == 2.0


def test_figures_are_formatted_to_three_significant_digits() -> None:
    assert stats.fmt(None) == stats.DASH
    assert stats.fmt(1234) == "1,234"
    assert stats.fmt(12345.678) == "12,346"
    assert stats.fmt(40.0) == "40"
    assert stats.fmt(17.31) == "17.3"
    assert stats.fmt(0.02217) == "0.0222"
    assert stats.fmt(0) == "0"
    assert stats.fmt_ratio(0.875) == "0.875" + stats.TIMES
    assert stats.fmt_pct(0.5043) == "50.4 %"
    assert stats.fmt_pct(None) == stats.DASH


def test_markdown_table_renders_aligns_and_escapes() -> None:
    table = stats.markdown_table(["stage", "traces/s"], [["ingest", 98.71], ["a|b", None]])
    assert table.splitlines() == [
        "| stage | traces/s |",
        "| :--- | ---: |",
        "| ingest | 98.7 |",
        f"| a\\|b | {stats.DASH} |",
    ]
    assert stats.markdown_table(["a", "b"], [], "ll").splitlines()[1] == "| :--- | :--- |"
    with pytest.raises(ValueError):
        stats.markdown_table(["a", "b"], [[1]])
    with pytest.raises(ValueError):
        stats.markdown_table(["a", "b"], [[1, 2]], "l")


def test_kafka_perf_tool_output_is_parsed() -> None:
    produced = parse_producer(
        "3835 records sent, 765.8 records/sec (5.78 MB/sec), 1506.6 ms avg latency, 2818.0 ms"
        " max latency.\n30000 records sent, 1446.689492 records/sec (10.92 MB/sec), 2413.97 ms"
        " avg latency, 3497.00 ms max latency, 2471 ms 50th, 3118 ms 95th, 3371 ms 99th, 3458"
        " ms 99.9th.\n"
    )
    assert (produced.records, produced.records_per_s, produced.mb_per_s) == (
        30000,
        1446.689492,
        10.92,
    )
    assert produced.detail["p99_latency_ms"] == 3371.0
    assert produced.detail["p99.9_latency_ms"] == 3458.0
    consumed = parse_consumer(
        "Warning: --messages is deprecated.\n"
        "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,"
        " rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec\n"
        "2026-11-27 06:04:08:918, 2026-11-27 06:04:16:574, 226.5358, 29.5893, 30000, 3918.4953,"
        " 2887, 4769, 47.5017, 6290.6270\n"
    )
    assert (consumed.records, consumed.records_per_s, consumed.mb_per_s) == (
        30000,
        6290.627,
        47.5017,
    )
    with pytest.raises(ValueError):
        parse_producer("nothing useful")


def test_profile_summary_leaves_idle_waits_out_and_attributes_components() -> None:
    raw = "\n".join(
        [
            "run (faststream/cli.py:10);on_promoted (services/fixture_writer/app.py:60);"
            "find_leaks (services/redaction/second_pass.py:50);"
            "analyze (presidio_analyzer/analyzer_engine.py:200) 6",
            "run (faststream/cli.py:10);on_promoted (services/fixture_writer/app.py:60);"
            "loads (json/__init__.py:346) 2",
            "run (faststream/cli.py:10);BaseEventLoop._run_once (asyncio/base_events.py:1);"
            "EpollSelector.select (selectors.py:468) 5",
            "_bootstrap (threading.py:1);Condition.wait (threading.py:320) 3",
            "",
        ]
    )
    summary = profile.summarise(raw)
    assert summary["samples"] == 8
    assert summary["idle_samples"] == 8
    components = {c["name"]: c["share"] for c in summary["components"]}
    assert components["Presidio (second pass)"] == 0.75
    assert components["fixture writer (services/fixture_writer)"] == 0.25
    inclusive = {c["name"]: c["share"] for c in summary["inclusive_project"]}
    assert inclusive["on_promoted (services/fixture_writer/app.py)"] == 1.0
    assert inclusive["find_leaks (services/redaction/second_pass.py)"] == 0.75
    assert profile.parse_frame("f (a/b.py:3)") == ("f", "a/b.py")


def _results() -> dict[str, Any]:
    return {
        "command": "python -m bench",
        "quick": False,
        "plan": {"reps": 3, "seed": 7, "corpus_scale": 3, "assembly_quiet_ms": 50},
        "machine": {"logical_cores": 2, "load_average_at_start": [0.1, 0.1, 0.1]},
        "ceilings": {
            "chain": {
                "hops": 5,
                "messages": 100,
                "traces_per_s": stats.measurement([40.0, 50.0, 60.0], "traces/s"),
            },
            "kafka_tools": {
                "record_size_bytes": 7920,
                "producer": {"records_per_s": stats.measurement([1000.0], "r/s")},
            },
        },
        "pipeline": {
            "end_to_end": {"traces_per_s": stats.measurement([20.0, 25.0, 30.0], "traces/s")},
            "isolation": {
                "ingest": {"events": 10, "traces_per_s": stats.measurement([90.0], "t/s")},
                "fixture_writer": {"events": 10, "traces_per_s": stats.measurement([10.0], "t/s")},
            },
        },
        "errors": [{"section": "growth", "error": "RuntimeError: boom"}],
    }


def test_report_ratios_and_rendering_use_the_medians() -> None:
    results = _results()
    ratios = report.ratios(results)
    assert ratios["pipeline_to_chain"] == 0.5
    assert ratios["pipeline_to_kafka_producer"] == 0.025
    assert ratios["replay_to_live_scoring"] is None
    assert report.slowest_stage(results) == ("fixture_writer", 10.0)
    text = report.render(results)
    assert text.startswith("# Benchmarks\n")
    assert f"| Pipeline ÷ pass-through chain | 0.500{stats.TIMES} |" in text
    assert "| fixture_writer | 10 |" in text
    assert "_Not measured: growth failed — RuntimeError: boom_" in text
    assert "## Closing note" in text


def test_report_shows_each_profiling_fix_with_its_before_after_and_speedup() -> None:
    results = _results()
    results["pipeline"]["fixes"] = [
        {
            "fix": "second pass keeps verdicts per string",
            "what": "privacy check",
            "units": 10,
            "unit": "promotions",
            "before": stats.measurement([20.0, 25.0, 30.0], "promotions/s"),
            "after": stats.measurement([100.0], "promotions/s"),
            "speedup": 4.0,
        }
    ]
    text = report.render(results)
    assert "### What was done about it" in text
    row = (
        "| second pass keeps verdicts per string | privacy check | 25 promotions/s "
        f"| 100 promotions/s | 4.00{stats.TIMES} |"
    )
    assert row in text


def _growth_results(absolute: tuple[float, float], paired: tuple[float, float] | None) -> Any:
    def size(i: int) -> dict[str, Any]:
        out: dict[str, Any] = {"dedupe_us_per_trace": stats.measurement([absolute[i]], "µs")}
        if paired is not None:
            out["dedupe_to_reference"] = stats.measurement([paired[i]], "ratio")
        return out

    return {"growth": {"sizes": {"10000": size(0), "1000000": size(1)}}}


def test_store_growth_compares_sizes_over_their_reference_when_measured_in_turn() -> None:
    # The host slowed between sizes (600 → 900 µs), the store did not (1.0 → 1.05 times its
    # reference): the flatness figure follows the paired ratios.
    results = _growth_results((600.0, 900.0), (1.0, 1.05))
    change = report.growth_change(results, "dedupe_us_per_trace")
    assert change == pytest.approx(0.05)
    assert "+5.0 %" in report.render(results)


def test_store_growth_falls_back_to_absolute_costs_without_a_reference() -> None:
    results = _growth_results((600.0, 900.0), None)
    assert report.growth_change(results, "dedupe_us_per_trace") == pytest.approx(0.5)
