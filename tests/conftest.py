"""Shared fixtures. End-to-end fixtures start the real broker and database once per run
(or use KAFKA_BOOTSTRAP_SERVERS / PROMOTE_DATABASE_URL when given)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from promoter.supervisor import RECEIVER, STAGES, Endpoints, Stack
from shared.settings import Settings


@pytest.fixture(scope="session")
def state_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("promote-state")


@pytest.fixture(scope="session")
def stack(state_dir: Path) -> Iterator[Stack]:
    # A short maximum wait: the corpus has a trace whose root never ends.
    settings = Settings(state_dir=state_dir, assembly_max_wait_ms=5_000)
    stack = Stack(settings)
    yield stack
    stack.down()


@pytest.fixture(scope="session")
def infra(stack: Stack) -> Endpoints:
    return stack.start_infrastructure()


@pytest.fixture(scope="session")
def pipeline(stack: Stack, infra: Endpoints) -> Endpoints:
    """All five stages (and the OTLP/HTTP receiver) running as separate processes against
    the real broker and database."""
    for stage in (*STAGES, RECEIVER):
        stack.start_stage(stage, infra)
    return infra


@pytest.fixture(scope="session")
def cli_env(state_dir: Path) -> dict[str, str]:
    return {**os.environ, "PROMOTE_STATE_DIR": str(state_dir)}
