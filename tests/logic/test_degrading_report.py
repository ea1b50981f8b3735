"""The release-gate report's degrading-patterns section and its charts."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from promoter.charts import draw
from services.fixture_writer.degrading import PatternSeries, degrading, render_degrading
from shared.trends import DayCount

pytestmark = pytest.mark.logic

TODAY = date(2026, 11, 30)


def series(pattern_id: str, counts: list[int], covered: bool = False) -> PatternSeries:
    start = TODAY - timedelta(days=len(counts) - 1)
    days = tuple(DayCount(start + timedelta(days=i), n, 300) for i, n in enumerate(counts))
    return PatternSeries(pattern_id, "support-agent", covered, days)


RISING = series("p3-rising", [1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 0, 1, 1, 1, 5, 6, 7], covered=True)
STEADY = series("p3-steady", [2] * 17)


def test_only_patterns_rising_against_their_own_past_are_degrading() -> None:
    found = degrading([STEADY, RISING], TODAY)
    assert [d.series.pattern_id for d in found] == ["p3-rising"]


def test_the_section_says_what_changed_since_when_and_whether_a_fixture_covers_it() -> None:
    found = degrading([RISING], TODAY)
    text = "\n".join(render_degrading(found, {"p3-rising": "charts/p3-rising.svg"}, TODAY))
    assert "## Degrading patterns" in text
    assert "covered but not protected" in text
    assert "since" in text and (TODAY - timedelta(days=2)).isoformat() in text
    assert "[chart](charts/p3-rising.svg)" in text


def test_a_quiet_store_says_nothing_is_degrading() -> None:
    assert "No pattern is rising" in "\n".join(render_degrading([], {}, TODAY))


def test_the_chart_is_an_svg_drawn_the_same_for_the_same_data(tmp_path: Path) -> None:
    (item,) = degrading([RISING], TODAY)
    first = draw(item, tmp_path / "a").read_bytes()
    second = draw(item, tmp_path / "b").read_bytes()
    assert first.startswith(b"<?xml") and b"<svg" in first
    assert first == second
