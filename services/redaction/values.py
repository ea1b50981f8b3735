"""How redaction's walk reads and writes values: a model's fields, JSON inside strings
written back in its original layout, and the identity of a value that numbers placeholders.
"""

from __future__ import annotations

import functools
import json
import operator
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel

from services.redaction.phones import normalise_phone

# Model fields of these types are structure (times, counts, flags), never content.
PASSTHROUGH = frozenset({bool, int, float, datetime, date})
JSON_FIRST = "{[ \t\r\n"  # what a string holding a JSON object or array can start with


@functools.lru_cache(maxsize=256)
def fields_of(model: type[BaseModel]) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """A model class's field names in declaration order, and a getter of all their values
    at once: read once per class, as pydantic's model_fields accessor costs more than a
    step of the walk, and a trace has ~300 fields."""
    names = tuple(model.model_fields)
    if not names:
        return names, lambda _m: ()
    if len(names) == 1:
        one = operator.attrgetter(names[0])
        return names, lambda m: (one(m),)
    return names, operator.attrgetter(*names)


def normalise(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "EMAIL":
        return value.lower()
    if kind == "PHONE":
        return normalise_phone(value)
    if kind in ("CARD", "SSN"):
        return "".join(c for c in value if c.isdigit()) or value.casefold()
    if kind == "IBAN":
        return value.replace(" ", "").upper()
    return " ".join(value.split()).casefold()


def dump_like(value: Any, original: str) -> str:
    """Re-serialise in the original's layout (compact, spaced or indented, escaped or raw
    non-ASCII), so that only the redacted values differ from what the tool saw."""
    indent = 2 if "\n" in original.strip() else None
    compact = indent is None and ", " not in original and ": " not in original
    return json.dumps(
        value,
        ensure_ascii=original.isascii(),
        indent=indent,
        separators=(",", ":") if compact else None,
    )
