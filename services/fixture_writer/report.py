"""The release-gate report: what changed in the fixture store, grouped so a reviewer can
approve it, with the evidence behind every change. Pure: entries in, Markdown out."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from services.fixture_writer.logic import FixtureKind

ACTIONS = ("added", "versioned", "restored", "reverted", "retired")
# Always a column of the counts table; the others only when they happened.
ALWAYS_COUNTED = ("added", "versioned", "retired")
NO_CRITERION = "(none above the floor)"
# Missed offline, observable and teachable say a case can and should become a fixture, and
# nearly every promotion carries them; these say why it matters, which a gate reviewer asks.
WHY_IT_MATTERS = ("risk_bearing", "operationally_costly", "patterned", "enduring")


@dataclass(frozen=True)
class GateEntry:
    """One line of the release-gate log, joined with the evidence of its fixture version."""

    at: datetime
    action: str
    fixture_id: str
    version: int
    kind: str
    pattern_id: str
    criteria: tuple[str, ...]
    reason: str
    source_trace_ids: tuple[str, ...] = ()
    policy_version: str | None = None
    occurrences: int | None = None
    first_seen: datetime | None = None
    last_seen: datetime | None = None

    @property
    def criterion(self) -> str:
        """The criterion the entry is filed under: the strongest (the gate log keeps them
        strongest first) of those that say why the case matters."""
        for name in self.criteria:
            if name in WHY_IT_MATTERS:
                return name
        return self.criteria[0] if self.criteria else NO_CRITERION


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "unknown"


def _day(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d") if at is not None else "unknown"


def _one_line(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _kind_order(kind: str) -> tuple[int, str]:
    known = [k.value for k in FixtureKind]
    return (known.index(kind) if kind in known else len(known), kind)


def _action_order(action: str) -> tuple[int, str]:
    return (ACTIONS.index(action) if action in ACTIONS else len(ACTIONS), action)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _summary_tables(entries: list[GateEntry]) -> list[str]:
    actions = sorted({e.action for e in entries} | set(ALWAYS_COUNTED), key=_action_order)
    by_kind = Counter((e.kind, e.action) for e in entries)
    kinds = sorted({e.kind for e in entries}, key=_kind_order)
    lines = [
        "| kind | " + " | ".join(actions) + " | total |",
        "|---|" + "---:|" * (len(actions) + 1),
    ]
    for kind in kinds:
        counts = [by_kind[(kind, a)] for a in actions]
        lines.append(f"| {kind} | " + " | ".join(map(str, counts)) + f" | {sum(counts)} |")
    totals = [sum(by_kind[(k, a)] for k in kinds) for a in actions]
    lines.append(
        "| **all kinds** | " + " | ".join(f"**{n}**" for n in totals) + f" | **{sum(totals)}** |"
    )
    carried = Counter(c for e in entries for c in e.criteria)
    filed = Counter(e.criterion for e in entries)
    lines += [
        "",
        "| criterion | changes filed under it | changes it carried |",
        "|---|---:|---:|",
    ]
    for criterion in sorted(set(carried) | set(filed), key=lambda c: (-filed[c], -carried[c], c)):
        lines.append(f"| {criterion} | {filed[criterion]} | {carried[criterion]} |")
    return lines


def _entry(e: GateEntry) -> list[str]:
    traces = ", ".join(f"`{t}`" for t in e.source_trace_ids) or "none recorded"
    seen = (
        f"{_plural(e.occurrences, 'occurrence')}, first seen {_day(e.first_seen)}, "
        f"last seen {_day(e.last_seen)}"
        if e.occurrences is not None
        else "no counts recorded"
    )
    return [
        f"- **{e.action}** `{e.fixture_id}@v{e.version}` — {_when(e.at)}",
        f"  - why: {_one_line(e.reason)}",
        f"  - criteria: {', '.join(e.criteria) or 'none'} · pattern `{e.pattern_id}` · "
        f"policy `{e.policy_version or 'unknown'}`",
        f"  - evidence: source trace {traces}; {seen}",
    ]


def render_report(entries: Iterable[GateEntry], since: datetime | None) -> str:
    """Markdown for the release gate: counts by kind and criterion, then every change filed
    under the strongest criterion that carried it and, within that, by kind."""
    ordered = sorted(entries, key=lambda e: (e.at, e.fixture_id, e.version, e.action))
    period = f"since {_when(since)}" if since is not None else "over the whole recorded history"
    lines = ["# Release-gate report: offline fixtures", ""]
    if not ordered:
        lines.append(f"No fixture was added, versioned or retired {period}.")
        return "\n".join(lines) + "\n"
    actions = Counter(e.action for e in ordered)
    fixtures = {e.fixture_id for e in ordered}
    lines += [
        f"Changes {period} (latest {_when(ordered[-1].at)}): "
        + ", ".join(f"**{actions[a]} {a}**" for a in sorted(actions, key=_action_order))
        + f" — {_plural(len(ordered), 'change')} to {_plural(len(fixtures), 'fixture')} "
        f"of {_plural(len({e.pattern_id for e in ordered}), 'pattern')}.",
        "",
        "## Summary",
        "",
        *_summary_tables(ordered),
        "",
        "## Changes by criterion and kind",
        "",
        "Each change is filed once, under the strongest criterion that carried it among those",
        f"saying why a case matters ({', '.join(WHY_IT_MATTERS)}), or under another",
        "when none of them did; every criterion that carried it is listed with it.",
    ]
    criteria = Counter(e.criterion for e in ordered)
    for criterion in sorted(criteria, key=lambda c: (c == NO_CRITERION, -criteria[c], c)):
        group = [e for e in ordered if e.criterion == criterion]
        lines += ["", f"### {criterion} ({_plural(len(group), 'change')})"]
        for kind in sorted({e.kind for e in group}, key=_kind_order):
            of_kind = [e for e in group if e.kind == kind]
            lines += ["", f"#### {kind} ({len(of_kind)})", ""]
            for e in of_kind:
                lines += _entry(e)
    return "\n".join(lines) + "\n"
