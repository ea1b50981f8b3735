"""One multi-pattern prefilter scan per string, then exact extraction only where it fired.

The prefilter is a Hyperscan block-mode database holding every detector's prefilter patterns,
each with its own id. Flags are HS_FLAG_SINGLEMATCH (we only need to know *which* detectors
fired, so one report per pattern keeps callbacks to a handful) plus HS_FLAG_CASELESS where a
detector asks for it. Not used, deliberately: HS_FLAG_SOM_LEFTMOST (no start offsets are
needed, and SOM makes databases larger and refuses some patterns) and HS_FLAG_UTF8 (every
pattern is ASCII, so byte mode finds exactly the same matches).

Without Hyperscan (it is x86-only), an RE2 set plays the same role.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable, Sequence
from typing import Any

from services.redaction.detectors import Detector, Finding

try:
    import hyperscan
except ImportError:  # pragma: no cover - exercised only on machines without Hyperscan
    hyperscan = None  # type: ignore[assignment]

import re2


class RedactionFailed(Exception):
    """The trace cannot be redacted with certainty; it must not travel on.

    ``reason`` is a short machine-readable word ("oversize", "detector_error", ...);
    the message never contains any part of the trace's content.
    """

    def __init__(self, reason: str, detail: str = "") -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"redaction failed: {reason}" + (f" ({detail})" if detail else ""))


def _collect(pid: int, _from: int, _to: int, _flags: int, pids: list[int]) -> None:
    pids.append(pid)


_SURROGATES = re.compile("[\ud800-\udfff]")


def scannable(text: str) -> str:
    """The text with lone surrogates (valid in a Python string parsed from JSON, not
    encodable for RE2) replaced one-for-one, so offsets still point into the original."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATES.sub("\ufffd", text)
    return text


class ScanSession:
    """Per-call scan state. Hyperscan scratch space must not be shared between threads
    (the stage redacts in worker threads), so each redaction gets its own: a clone of a
    prototype made at compile time (half a microsecond, against ~50 µs for a fresh one)."""

    __slots__ = ("scratch",)

    def __init__(self, scratch: Any) -> None:
        self.scratch = scratch


# Keys, span names, statuses and models recur in nearly every trace: most scans are of a
# string an earlier trace already had. Long strings are rarely repeated, and are left out
# so the memo's memory stays bounded (~MEMO_ENTRIES * MEMO_MAX_CHARS characters).
MEMO_ENTRIES = 4096
MEMO_MAX_CHARS = 512


class _Memo:
    """The findings of recently scanned strings, shared by the stage's worker threads.

    Two generations of at most ``size`` entries each: a hit in the older one is carried into
    the current one, and when the current one is full it becomes the older one (the oldest
    is dropped whole). Bounded, recently used strings stay, and no entry is moved or evicted
    one by one. Findings are a pure function of the text for a given scanner, so a hit is
    exactly what a fresh scan would return."""

    __slots__ = ("_current", "_lock", "_older", "_size")

    def __init__(self, size: int) -> None:
        self._current: dict[str, tuple[tuple[int, Finding], ...]] = {}
        self._older: dict[str, tuple[tuple[int, Finding], ...]] = {}
        self._lock = threading.Lock()
        self._size = size

    def get(self, text: str) -> tuple[tuple[int, Finding], ...] | None:
        found = self._current.get(text)
        if found is None:
            found = self._older.get(text)
            if found is not None:
                self.put(text, found)
        return found

    def put(self, text: str, found: tuple[tuple[int, Finding], ...]) -> None:
        current = self._current
        current[text] = found
        if len(current) >= self._size:
            with self._lock:
                if self._current is current:  # another thread may have rotated already
                    self._older, self._current = current, {}


class Scanner:
    def __init__(self, detectors: Sequence[Detector]) -> None:
        self.detectors: tuple[Detector, ...] = tuple(detectors)
        self._memo = _Memo(MEMO_ENTRIES)
        self._owner: list[int] = []
        patterns: list[str] = []
        caseless: list[bool] = []
        for index, detector in enumerate(self.detectors):
            for pattern in detector.prefilters:
                self._owner.append(index)
                patterns.append(pattern)
                caseless.append(detector.caseless)
        self._hs: Any = None
        self._set: Any = None
        if hyperscan is not None:
            db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
            db.compile(
                expressions=[p.encode("ascii") for p in patterns],
                ids=list(range(len(patterns))),
                elements=len(patterns),
                flags=[
                    hyperscan.HS_FLAG_SINGLEMATCH | (hyperscan.HS_FLAG_CASELESS if c else 0)
                    for c in caseless
                ],
            )
            self._hs = db
            self._scratch = hyperscan.Scratch(db)  # only ever cloned, never scanned with
        else:  # pragma: no cover
            options = re2.Options()
            options.never_capture = True
            pattern_set = re2.Set.SearchSet(options)
            for p, c in zip(patterns, caseless, strict=True):
                pattern_set.Add(("(?i)" if c else "") + p)
            pattern_set.Compile()
            self._set = pattern_set

    def session(self) -> ScanSession:
        return ScanSession(self._scratch.clone() if self._hs is not None else None)

    def fired(self, text: str, session: ScanSession) -> set[int]:
        """Indexes of the detectors whose prefilter matched somewhere in ``text``."""
        pids: list[int] = []
        try:
            if self._hs is not None:
                self._hs.scan(
                    text.encode("utf-8"),
                    match_event_handler=_collect,
                    context=pids,
                    scratch=session.scratch,
                )
            else:  # pragma: no cover
                pids.extend(self._set.Match(text.encode("utf-8")) or ())
        except Exception as exc:
            raise RedactionFailed("prefilter_error", type(exc).__name__) from None
        owner = self._owner
        return {owner[pid] for pid in pids}

    def findings(
        self, text: str, session: ScanSession, *, use_prefilter: bool = True
    ) -> list[tuple[int, Finding]]:
        """(priority, finding) pairs, unresolved; a lower priority number wins ties.

        ``use_prefilter=False`` runs every extractor: the tests use it to show that the
        prefilter never hides a finding."""
        memoised = use_prefilter and len(text) <= MEMO_MAX_CHARS
        if memoised:
            hit = self._memo.get(text)
            if hit is not None:
                return list(hit)
        found = self._scan(text, session, use_prefilter)
        if memoised:
            self._memo.put(text, tuple(found))
        return found

    def _scan(
        self, text: str, session: ScanSession, use_prefilter: bool
    ) -> list[tuple[int, Finding]]:
        text = scannable(text)
        indexes = sorted(self.fired(text, session)) if use_prefilter else range(len(self.detectors))
        out: list[tuple[int, Finding]] = []
        for index in indexes:
            detector = self.detectors[index]
            try:
                found = list(detector.extract(text))
            except Exception as exc:
                # Fail closed, and say which detector without echoing any content.
                raise RedactionFailed(
                    "detector_error", f"{detector.name}: {type(exc).__name__}"
                ) from None
            for f in found:
                if not (0 <= f.start < f.end <= len(text)):
                    raise RedactionFailed("detector_error", f"{detector.name}: bad span")
                out.append((index, f))
        return out


def resolve(found: Iterable[tuple[int, Finding]]) -> list[tuple[int, Finding]]:
    """Non-overlapping (priority, finding) pairs in text order: the longest span wins an
    overlap (a PEM block over the base64 inside it, a card over the phone-like digits in it),
    then the lower priority number (the detector listed first).

    Findings are first grouped into clusters of mutually reachable overlaps (almost always
    one finding each), so a string with thousands of findings stays O(k log k)."""
    items = sorted(found, key=lambda pf: (pf[1].start, -pf[1].end))
    chosen: list[tuple[int, Finding]] = []
    cluster: list[tuple[int, Finding]] = []
    cluster_end = -1
    for item in items:
        if cluster and item[1].start >= cluster_end:
            chosen.extend(_pick(cluster))
            cluster = []
        cluster.append(item)
        cluster_end = max(cluster_end, item[1].end) if len(cluster) > 1 else item[1].end
    if cluster:
        chosen.extend(_pick(cluster))
    return chosen


def _pick(cluster: list[tuple[int, Finding]]) -> list[tuple[int, Finding]]:
    if len(cluster) == 1:
        return cluster
    ranked = sorted(cluster, key=lambda pf: (pf[1].start - pf[1].end, pf[0], pf[1].start))
    kept: list[tuple[int, Finding]] = []
    for item in ranked:
        f = item[1]
        if all(f.end <= k.start or k.end <= f.start for _, k in kept):
            kept.append(item)
    return sorted(kept, key=lambda pf: pf[1].start)
