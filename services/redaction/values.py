"""How redaction's walk reads and writes values: a model's fields, JSON inside strings
written back in its original layout, and the identity of a value that numbers placeholders.
"""

from __future__ import annotations

import functools
import json
import operator
import types
import typing
from collections.abc import Callable
from datetime import date, datetime
from enum import Enum
from typing import Any

from pydantic import BaseModel

from services.redaction.phones import normalise_phone

# Model fields of these types are structure (times, counts, flags), never content.
PASSTHROUGH = frozenset({bool, int, float, datetime, date})
JSON_FIRST = "{[ \t\r\n"  # what a string holding a JSON object or array can start with


def holds_no_content(annotation: Any) -> bool:
    """A field declared as only times, numbers, flags, enumerations or None (or a model of
    such fields, e.g. token usage): a validated model holds nothing a detector could read
    there, so the walk need not visit it."""
    if annotation is type(None) or annotation in PASSTHROUGH:
        return True
    if isinstance(annotation, type):
        if issubclass(annotation, Enum):
            return True
        if issubclass(annotation, BaseModel):
            fields = annotation.model_fields.values()
            return all(holds_no_content(f.annotation) for f in fields)
        return False
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return all(holds_no_content(arm) for arm in typing.get_args(annotation))
    return False


@functools.lru_cache(maxsize=256)
def fields_of(model: type[BaseModel]) -> tuple[tuple[str, ...], Callable[[Any], tuple[Any, ...]]]:
    """A model class's fields that can hold content, in declaration order, and a getter of
    all their values at once: read once per class, as pydantic's model_fields accessor
    costs more than a step of the walk, and a trace has ~300 fields."""
    names = tuple(
        name for name, field in model.model_fields.items() if not holds_no_content(field.annotation)
    )
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
