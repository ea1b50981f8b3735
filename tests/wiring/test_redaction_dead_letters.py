"""A malformed event with personal values in it reaches the DLQ as a reference and a safe
message: the values are neither in the dead letter nor in the stage's log output."""

from __future__ import annotations

import json

import pytest
from faststream.kafka import TestKafkaBroker

from shared import topics
from shared.events import DeadLettered

pytestmark = pytest.mark.wiring

PLANTED = ("juniper.alvarez@example.net", "078-05-1120", "Juniper Alvarez", "07700 900461")


async def test_a_malformed_event_is_dead_lettered_without_the_values_it_carried(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from services.redaction import app as redaction

    body = json.dumps(
        {
            "trace_id": "poison-1",
            "trace": {
                "trace_id": "poison-1",
                "spans": [{"span_id": "1", "name": PLANTED[2], "start_time": PLANTED[0]}],
                PLANTED[3]: PLANTED[1],
            },
        }
    ).encode()
    async with TestKafkaBroker(redaction.broker) as broker:
        await broker.publish(body, topics.DEDUPED)

        dlq_mock = redaction.stage._dlq.mock
        assert dlq_mock is not None
        letter = DeadLettered.model_validate(dlq_mock.call_args.args[0])
    logs = capsys.readouterr()
    assert letter.error_class == "ValidationError"
    assert "trace.spans.0.start_time" in letter.message
    assert "dead_lettered" in logs.err
    seen = letter.model_dump_json() + logs.out + logs.err
    assert [value for value in PLANTED if value in seen] == []
