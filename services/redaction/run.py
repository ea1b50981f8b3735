"""One redaction of one trace: the state of its two passes (README "Redaction", and the
functional core's contract in logic.py). Pass 1 harvests seeds from structured data; pass 2
rewrites every string, seeds and detectors together, numbering placeholders in walk order.
Pure: state lives in the object for one trace, and the only shared state is the scanner's
bounded memos of pure functions of strings."""

from __future__ import annotations

import json
import operator
import re
from enum import Enum
from typing import Any

import re2
from pydantic import BaseModel

from services.redaction.detectors import (
    Finding,
    is_placeholder,
    secret_like_value,
)
from services.redaction.keys import (
    FAMILY_NAME_KEYS,
    GIVEN_NAME_KEYS,
    PERSON_PARENTS,
    KeyRule,
    classify_key,
    key_words,
    name_parts,
    person_shaped,
)
from services.redaction.prose import seeds_other_mentions
from services.redaction.scanner import RedactionFailed, Scanner, resolve, scannable
from services.redaction.values import JSON_FIRST, PASSTHROUGH, dump_like, fields_of, normalise

# Shorter seeds ("Li", "NY") would replace fragments of ordinary words.
MIN_SEED_CHARS = 3
MIN_SECRET_SEED_CHARS = 6
# Beyond this many seeds the substring pre-check costs more than the RE2 pass it saves.
_SEED_NEEDLE_LIMIT = 64

_NOT_JSON: Any = object()
_SMALLEST_DETECTABLE_INT = 10**8
_ADDRESS_PARTS = re.compile(r"[,;\n]")  # one class: linear


def _ascii_word(ch: str) -> bool:
    return ch.isascii() and (ch.isalnum() or ch == "_")


class Redaction:
    def __init__(self, scanner: Scanner, max_string_chars: int) -> None:
        self.scanner = scanner
        self.session = scanner.session()
        self.max_chars = max_string_chars
        self.strings_scanned = 0
        self.counters: dict[str, int] = {}
        self._assigned: dict[tuple[str, str], str] = {}
        self._seeds: dict[str, tuple[str, str]] = {}  # casefolded literal -> (kind, canonical)
        self._seed_literals: list[tuple[str, bool]] = []  # (literal, case-sensitive)
        self._seed_regex: Any = None
        self._seed_groups: list[tuple[str, str]] = []
        self._seed_needles: list[str] = []
        self._json_cache: dict[str, Any] = {}
        self._found_cache: dict[str, list[tuple[int, Finding]]] = {}
        # Plain (not JSON) text -> its rewrite in this walk: the first rewrite assigned every
        # placeholder it needed, so a repeat rewrites the same way.
        self._rewritten: dict[str, str] = {}
        self._prose_people: dict[str, str] = {}  # casefolded -> as written

    # -- shared -------------------------------------------------------------------------

    def _check_size(self, text: str) -> None:
        if len(text) > self.max_chars:
            raise RedactionFailed("oversize", f"{len(text)} > {self.max_chars} characters")

    def _json(self, text: str) -> Any:
        if not text or text[0] not in JSON_FIRST:
            return _NOT_JSON
        cached = self._json_cache.get(text, None)
        if cached is not None:
            return cached
        stripped = text.strip()
        parsed: Any = _NOT_JSON
        if stripped[:1] in ("{", "[") and stripped[-1:] in ("}", "]"):
            try:
                parsed = json.loads(stripped)
            except (ValueError, RecursionError):
                parsed = _NOT_JSON
            if not isinstance(parsed, dict | list):
                parsed = _NOT_JSON
        self._json_cache[text] = parsed
        return parsed

    def _describes_person(self, parent: dict[Any, Any] | None, key: str, parent_key: Any) -> bool:
        if isinstance(parent_key, str):
            words = key_words(parent_key)
            # "customers": [{"name": ...}] describes customers just as well.
            if any(w in PERSON_PARENTS or w.removesuffix("s") in PERSON_PARENTS for w in words):
                return True
        if parent is None:
            return False
        for other in parent:
            if isinstance(other, str) and other != key:
                rule = classify_key(other)
                if rule is not None and rule.action == "pii":
                    return True
        return False

    def _value_rule(
        self, key: Any, parent: dict[Any, Any] | None, parent_key: Any, value: Any
    ) -> KeyRule | None:
        """The rule that replaces this whole structured value, if its key calls for one."""
        if not isinstance(key, str):
            return None
        rule = classify_key(key)
        if rule is None:
            return None
        if rule.action == "name":
            if not isinstance(value, str) or not person_shaped(value.strip()):
                return None
            return rule if self._describes_person(parent, key, parent_key) else None
        if rule.action == "bare_address":
            is_address = (
                isinstance(value, str)
                and len(value.split()) >= 2
                and "@" not in value
                and "://" not in value
            )
            return rule if is_address else None
        if rule.action == "keylike":
            return rule if isinstance(value, str) and secret_like_value(value.strip()) else None
        return rule

    # -- pass 1: harvest seeds ----------------------------------------------------------

    def harvest_model(self, model: BaseModel) -> None:
        max_chars = self.max_chars
        for value in fields_of(type(model))[1](model):
            # Inlined for the common cases (None, plain strings, numbers).
            kind = type(value)
            if value is None or kind in PASSTHROUGH:
                continue
            if kind is str:
                if len(value) > max_chars:
                    self._check_size(value)
                if value and value[0] in JSON_FIRST:
                    parsed = self._json(value)
                    if parsed is not _NOT_JSON:
                        self._harvest(parsed, None, None, None)
            else:
                self._harvest_field(value)

    def _harvest_field(self, value: Any) -> None:
        kind = type(value)
        if kind is tuple:  # the exact types first: neither can be an Enum or a model
            for item in value:
                self._harvest_field(item)
            return
        if kind is dict:
            self._harvest(value, None, None, None)
            return
        if value is None or kind in PASSTHROUGH or isinstance(value, Enum):
            return
        if isinstance(value, BaseModel):
            self.harvest_model(value)
        elif isinstance(value, tuple):
            for item in value:
                self._harvest_field(item)
        elif isinstance(value, str | dict):
            self._harvest(value, None, None, None)

    def _harvest(
        self, value: Any, key: Any, parent: dict[Any, Any] | None, parent_key: Any
    ) -> None:
        if isinstance(value, str):
            self._check_size(value)
            rule = self._value_rule(key, parent, parent_key, value)
            if rule is not None:
                self._plant(rule, value)
                return
            parsed = self._json(value)
            if parsed is not _NOT_JSON:
                # JSON inside a string sits under the string's key, as if nested directly.
                self._harvest(parsed, key, parent, parent_key)
        elif isinstance(value, int) and not isinstance(value, bool):
            rule = self._value_rule(key, parent, parent_key, value)
            if rule is not None:
                self._plant(rule, str(value))
        elif isinstance(value, dict):
            self._harvest_full_name(value)
            for k, v in value.items():
                self._harvest(v, k, value, key)
        elif isinstance(value, list | tuple):
            for item in value:
                self._harvest(item, key, parent, parent_key)

    def _harvest_full_name(self, obj: dict[Any, Any]) -> None:
        given = family = None
        for k, v in obj.items():
            if isinstance(k, str) and isinstance(v, str) and v.strip():
                compact = "".join(key_words(k))
                if compact in GIVEN_NAME_KEYS:
                    given = v.strip()
                elif compact in FAMILY_NAME_KEYS:
                    family = v.strip()
        if given and family:
            self._seed_person(f"{given} {family}")

    def _plant(self, rule: KeyRule, raw: str) -> None:
        literal = raw.strip()
        if not literal or is_placeholder(literal):
            return
        if rule.action == "secret":
            if len(literal) >= MIN_SECRET_SEED_CHARS:
                self._seed(literal, rule.kind, literal, case_sensitive=True)
        elif rule.kind == "PERSON":
            self._seed_person(literal)
        elif rule.kind == "ADDRESS":
            canonical = normalise("ADDRESS", literal)
            self._seed(literal, "ADDRESS", canonical)
            # The street line or the city alone in prose is the same address.
            for part in _ADDRESS_PARTS.split(literal):
                if len(part.strip()) > MIN_SEED_CHARS:
                    self._seed(part, "ADDRESS", canonical)
        else:
            self._seed(literal, rule.kind, normalise(rule.kind, literal))

    def _seed_person(self, full: str) -> None:
        canonical = normalise("PERSON", full)
        self._seed(full, "PERSON", canonical)
        for part in name_parts(full):
            # "Jane" and "Jane Doe" are one person: one placeholder.
            self._seed(part, "PERSON", canonical, case_sensitive=True)

    def _seed(
        self, literal: str, kind: str, canonical: str, case_sensitive: bool | None = None
    ) -> None:
        literal = literal.strip()
        if len(literal) < MIN_SEED_CHARS or is_placeholder(literal):
            return
        folded = literal.casefold()
        if folded in self._seeds:
            return
        if case_sensitive is None:
            # A single word ("Mark", "Reading") is matched only as written, capitalised or in
            # capitals, so the verb "mark" and the noun "reading" stay.
            case_sensitive = literal.isalpha()
        self._seeds[folded] = (kind, canonical)
        self._seed_literals.append((literal, case_sensitive))

    def compile_seeds(self) -> None:
        if not self._seed_literals:
            return
        alternatives: list[str] = []
        for literal, case_sensitive in sorted(self._seed_literals, key=lambda s: -len(s[0])):
            target = self._seeds[literal.casefold()]
            variants = (
                dict.fromkeys((literal, literal[:1].upper() + literal[1:], literal.upper()))
                if case_sensitive
                else {literal: None}
            )
            for variant in variants:
                body = re2.escape(variant)
                if not case_sensitive:
                    body = "(?i:" + body + ")"
                before = r"\b" if _ascii_word(variant[0]) else ""
                after = r"\b" if _ascii_word(variant[-1]) else ""
                alternatives.append("(" + before + body + after + ")")
                self._seed_groups.append(target)
        options = re2.Options()
        options.max_mem = 256 << 20  # a trace can carry thousands of seeds
        self._seed_regex = re2.compile("|".join(alternatives), options)
        self._seed_needles = [literal.casefold() for literal, _ in self._seed_literals]

    def _seed_findings(self, text: str) -> list[tuple[int, Finding]]:
        if self._seed_regex is None:
            return []
        needles = self._seed_needles
        # Mapped, not a generator: this runs on every string of the trace.
        if len(needles) <= _SEED_NEEDLE_LIMIT and not any(
            map(text.casefold().__contains__, needles)
        ):
            return []
        priority = len(self.scanner.detectors)  # detectors win ties: they saw the context
        out = []
        for m in self._seed_regex.finditer(text):
            kind, canonical = self._seed_groups[m.lastindex - 1]
            out.append((priority, Finding(m.start(), m.end(), kind, canonical)))
        return out

    def seed_prose_people(self) -> bool:
        """Seeds the names the detectors read in prose that are not seeds yet; True if any."""
        added = False
        for folded, written in self._prose_people.items():
            if folded not in self._seeds:
                self._seed_person(written)
                added = True
        if added:
            self._seed_regex = None
            self._seed_groups = []
            self._seed_needles = []
            self.compile_seeds()
        return added

    def restart(self) -> None:
        """Numbering starts again for the second walk, so it follows the walk order."""
        self.counters = {}
        self._assigned = {}
        self._rewritten = {}
        self.strings_scanned = 0

    def _detected(self, text: str) -> list[tuple[int, Finding]]:
        found = self._found_cache.get(text)
        if found is None:
            found = self.scanner.findings(text, self.session)
            self._found_cache[text] = found
            for _, f in found:
                if f.kind == "PERSON" and seeds_other_mentions(text, f.start):
                    written = " ".join(text[f.start : f.end].split())
                    self._prose_people.setdefault(written.casefold(), written)
        return list(found)

    # -- pass 2: rewrite ----------------------------------------------------------------

    def placeholder(self, kind: str, canonical: str) -> str:
        found = self._assigned.get((kind, canonical))
        if found is None:
            n = self.counters.get(kind, 0) + 1
            self.counters[kind] = n
            found = self._assigned[(kind, canonical)] = f"<{kind}_{n}>"
        return found

    def redact_model(self, model: BaseModel) -> BaseModel:
        updates = {}
        names, values = fields_of(type(model))
        for name, value in zip(names, values(model), strict=True):
            # Inlined for the common cases, as in harvest_model.
            kind = type(value)
            if value is None or kind in PASSTHROUGH:
                continue
            new = self._text(value) if kind is str else self._redact_field(value)
            if new is not value:
                updates[name] = new
        # model_copy skips validation: only strings were swapped for strings.
        return model.model_copy(update=updates) if updates else model

    def _redact_field(self, value: Any) -> Any:
        kind = type(value)
        if kind is str:
            return self._text(value)
        if kind is dict:  # the exact types first: neither can be an Enum or a model
            return self._walk(value, None, None, None)
        if kind is tuple and not value:
            return value
        if value is None or kind in PASSTHROUGH or isinstance(value, Enum):
            return value
        if isinstance(value, BaseModel):
            return self.redact_model(value)
        if isinstance(value, tuple):
            items = [self._redact_field(v) for v in value]
            if all(map(operator.is_, items, value)):
                return value
            return tuple(items)
        if isinstance(value, dict):
            return self._walk(value, None, None, None)
        raise RedactionFailed("unsupported_value", type(value).__name__)

    def _walk(self, value: Any, key: Any, parent: dict[Any, Any] | None, parent_key: Any) -> Any:
        if isinstance(value, str):
            rule = self._value_rule(key, parent, parent_key, value)
            if rule is not None:
                self._check_size(value)
                self.strings_scanned += 1
                return self._apply(rule, value)
            return self._text(value, key, parent, parent_key)
        if value is None or isinstance(value, bool | float):
            return value
        if isinstance(value, int):
            rule = self._value_rule(key, parent, parent_key, value)
            if rule is not None:
                replaced = self._apply(rule, str(value))
                return value if replaced == str(value) else replaced
            # Fewer than nine digits match no detector (an SSN is the shortest), so token-id
            # arrays and counters skip the scan unless a seed could be a number.
            if abs(value) < _SMALLEST_DETECTABLE_INT and self._seed_regex is None:
                return value
            digits = str(value)
            # A card or phone number stored as a JSON number is still one.
            redacted = self._text(digits, structured=False)
            return value if redacted == digits else redacted
        if isinstance(value, dict):
            out: dict[Any, Any] = {}
            changed = False
            for k, v in value.items():
                new_k = self._key(k) if isinstance(k, str) else k
                new_v = self._walk(v, k, value, key)
                changed = changed or new_k is not k or new_v is not v
                out[new_k] = new_v
            return out if changed else value
        if isinstance(value, list | tuple):
            items = [self._walk(v, key, parent, parent_key) for v in value]
            if all(a is b for a, b in zip(items, value, strict=True)):
                return value
            return items if isinstance(value, list) else tuple(items)
        raise RedactionFailed("unsupported_value", type(value).__name__)

    def _apply(self, rule: KeyRule, raw: str) -> str:
        literal = raw.strip()
        if not literal or is_placeholder(literal):
            return raw
        seeded = self._seeds.get(literal.casefold())
        if seeded is not None and seeded[0] == rule.kind:
            return self.placeholder(*seeded)
        canonical = literal if rule.action == "secret" else normalise(rule.kind, literal)
        return self.placeholder(rule.kind, canonical)

    def _key(self, key: str) -> str:
        """Keys are schema, so seeds are not applied to them; detectors are (a key can be an
        email address or a token)."""
        self._check_size(key)
        self.strings_scanned += 1
        found = self._detected(key)
        return self._substitute(key, found) if found else key

    def rewrite(self, text: str) -> str:
        """One free-standing text through pass 2 (no key above it): itself when untouched."""
        return self._text(text)

    def _text(
        self,
        text: str,
        key: Any = None,
        parent: dict[Any, Any] | None = None,
        parent_key: Any = None,
        *,
        structured: bool = True,
    ) -> str:
        if len(text) > self.max_chars:
            self._check_size(text)
        self.strings_scanned += 1
        if structured and text and text[0] in JSON_FIRST:
            parsed = self._json(text)
            if parsed is not _NOT_JSON:
                # JSON inside a string sits under the string's key, as if nested directly.
                new = self._walk(parsed, key, parent, parent_key)
                return text if new is parsed else dump_like(new, text)
        done = self._rewritten.get(text)
        if done is not None:
            # The text itself when unchanged, not the first copy of it: an untouched model
            # then stays the same object (see redact_model), which callers rely on.
            return text if done == text else done
        found = self._detected(text)
        if self._seed_regex is not None:
            found.extend(self._seed_findings(scannable(text)))
        done = self._substitute(text, found) if found else text
        self._rewritten[text] = done
        return done

    def _substitute(self, text: str, found: list[tuple[int, Finding]]) -> str:
        pieces: list[str] = []
        pos = 0
        for _, f in resolve(found):
            pieces.append(text[pos : f.start])
            pieces.append(self.placeholder(f.kind, f.value))
            pos = f.end
        pieces.append(text[pos:])
        return "".join(pieces)
