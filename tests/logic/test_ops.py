"""Operations (issue 16): metric helpers, the ops server's answers, the CLI's quiet output."""

from __future__ import annotations

import asyncio
import gc
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from aiokafka import TopicPartition
from rich.console import Console

from promoter import progress
from shared import ops

pytestmark = pytest.mark.logic


def test_the_carrying_criterion_is_the_largest_weighted_score() -> None:
    scores = {"risk_bearing": SimpleNamespace(score=0.5), "teachable": SimpleNamespace(score=0.9)}
    assert ops.carrying_criterion(scores, {"risk_bearing": 3.0, "teachable": 1.0}) == (
        "risk_bearing"
    )
    assert ops.carrying_criterion({}, {}) == "none"


def test_the_ops_server_answers_health_readiness_and_metrics(tmp_path: Path) -> None:
    async def failing() -> str | None:
        return "database: down"

    async def scenario() -> None:
        server = ops.OpsServer("probe", [failing])
        await server.start("127.0.0.1", 0, tmp_path)
        try:
            assert ops.endpoints(tmp_path) == {
                f"probe-{os.getpid()}": f"http://127.0.0.1:{server.port}"
            }
            assert (await server.respond("/healthz"))[0] == "200 OK"
            status, _, body = await server.respond("/readyz")
            assert status.startswith("503") and b"database: down" in body
            server.checks = []
            assert (await server.respond("/readyz"))[0] == "200 OK"
            ops.dead_lettered("probe", "ValidationError")
            _, _, metrics = await server.respond("/metrics")
            assert b'promoter_dead_letters_total{error_class="ValidationError",stage="probe"}' in (
                metrics
            )
        finally:
            await server.stop()
        assert ops.endpoints(tmp_path) == {}

    asyncio.run(scenario())


def test_lag_is_read_from_the_consumers_state() -> None:
    tp = TopicPartition("traces.raw", 2)
    state = SimpleNamespace(has_valid_position=True, position=7)
    assignment = SimpleNamespace(state_value=lambda _: state)
    consumer = SimpleNamespace(
        _subscription=SimpleNamespace(subscription=SimpleNamespace(assignment=assignment)),
        assignment=lambda: {tp},
        highwater=lambda _: 10,
    )
    assert ops.partition_lags(consumer) == {("traces.raw", 2): 3}


def test_top_and_lag_tables_render() -> None:
    console = Console(width=120, record=True)
    view = progress.StageView(consumed=10, lag=4, dead_letters=1, decisions={"promote": 2})
    console.print(progress.top_table({"scoring-1": view, "dedupe-2": None}, {}, 1.0))
    console.print(progress.lag_table({"trace-promoter.dedupe": {"traces.normalized": 5}}, {}))
    text = console.export_text()
    assert "promote 2" in text and "not answering" in text and "traces.normalized" in text


def test_no_command_prints_a_runtime_dir_warning_and_top_is_quiet_off_a_tty(
    tmp_path: Path,
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    env["PYTHONWARNINGS"] = "default"
    for args in (["--help"], ["top", "--json"], ["top"]):
        done = subprocess.run(
            [sys.executable, "-m", "promoter", *args, "--state-dir", str(tmp_path)]
            if args != ["--help"]
            else [sys.executable, "-m", "promoter", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        assert "Warning" not in done.stderr, done.stderr
    assert done.stdout.count("\n") < 10  # one table, no live refresh, off a terminal


def test_a_started_stage_sets_its_startup_heap_aside_and_collects_young_objects_less() -> None:
    threshold = gc.get_threshold()
    try:
        ops.settle_heap(12_345)
        assert gc.get_threshold() == (12_345, threshold[1], threshold[2])
        assert gc.get_freeze_count() > 0, "what the stage allocated at start is not scanned again"
        ops.settle_heap(0)
        assert gc.get_threshold()[0] == 12_345, "0 keeps the threshold as it is"
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
