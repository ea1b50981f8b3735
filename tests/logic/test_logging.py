"""What a service's log may hold, whatever level it is run at."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog

from shared.log import configure_logging

pytestmark = pytest.mark.logic


@pytest.fixture
def restored_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    kafka_level = logging.getLogger("aiokafka").level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("aiokafka").setLevel(kafka_level)
    structlog.reset_defaults()


def test_at_debug_level_the_service_logs_its_own_lines_but_not_the_records_kafka_sends(
    restored_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    logger = configure_logging("dedupe", "DEBUG")

    logger.debug("batch handled")
    logging.getLogger("aiokafka.producer.producer").debug(
        "Sending (key=%r value=%r)", b"p1", b'{"input": "my SSN is 078-05-1120"}'
    )
    logging.getLogger("aiokafka.consumer").info("joined the group")

    written = capsys.readouterr().err
    assert "batch handled" in written
    assert "joined the group" in written
    assert "078-05-1120" not in written
