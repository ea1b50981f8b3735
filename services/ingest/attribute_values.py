"""Raw attribute values read as the types canonical fields need.

Each converter returns None for a value it cannot use, so the caller tries the next key in
precedence rather than failing the trace.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")

_INT_STR_RE = re.compile(r"\s*[+-]?\d{1,19}\s*")
_APPROVAL_VALUES = frozenset({"requested", "granted", "denied"})


def pick(
    attributes: Mapping[str, Any], keys: Iterable[str], convert: Callable[[Any], T | None]
) -> T | None:
    for key in keys:
        if key in attributes:
            value = convert(attributes[key])
            if value is not None:
                return value
    return None


def as_id(value: Any) -> str | None:
    """An identifier-like string; empty means absent."""
    if isinstance(value, str):
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_text(value: Any) -> str | None:
    """Content: strings as they are (empty included), structured values as compact JSON."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        return None


def as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str) and _INT_STR_RE.fullmatch(value):
        return int(value)
    return None


def as_float(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if not isinstance(value, int | float | str) or (isinstance(value, str) and len(value) > 64):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        # OverflowError: an integer beyond float range, e.g. from JSON inside an attribute.
        return None
    return number if math.isfinite(number) else None


def as_bool(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def as_approval(value: Any) -> str | None:
    if isinstance(value, str) and value.strip().lower() in _APPROVAL_VALUES:
        return value.strip().lower()
    return None
