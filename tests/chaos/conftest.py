"""The short slice: `make test` (pytest's default collection) runs the chaos scenarios at
the short scale and deselects those marked ``chaos_full`` (too slow for it, see
RELIABILITY.md); `make chaos` sets CHAOS_SCALE=full and runs every scenario. Deselected,
never skipped: a deselected scenario is not counted as a pass."""

from __future__ import annotations

import os

import pytest


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "chaos_full: a chaos scenario run only at full scale (make chaos)"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # CHAOS_ALL=1 runs every scenario at the short scale (to try them quickly).
    if os.environ.get("CHAOS_SCALE") == "full" or os.environ.get("CHAOS_ALL") == "1":
        return
    deselected = [item for item in items if item.get_closest_marker("chaos_full")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("chaos_full")]
