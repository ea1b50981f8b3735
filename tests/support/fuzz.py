"""Hypothesis settings and strategies shared by the fuzz tests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st


def fuzz_settings(max_examples: int) -> settings:
    """Bodies are large and slow to build: no deadline, no size or speed health checks."""
    return settings(
        max_examples=max_examples,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def json_values(
    hostile: Sequence[Any], *, text_size: int, key_size: int, width: int, leaves: int
) -> st.SearchStrategy[Any]:
    """Any JSON value, nested ``width`` wide, with the ``hostile`` values mixed in."""
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats()
        | st.text(max_size=text_size)
        | st.sampled_from(list(hostile)),
        lambda inner: (
            st.lists(inner, max_size=width)
            | st.dictionaries(st.text(max_size=key_size), inner, max_size=width)
        ),
        max_leaves=leaves,
    )
