"""The producers' partitioner picks the partition aiokafka's (and Java's) default picks."""

from __future__ import annotations

import pytest
from aiokafka.partitioner import DefaultPartitioner

from shared.kafka import RememberingPartitioner, producer_options
from shared.settings import Settings

pytestmark = pytest.mark.logic


def test_a_key_goes_to_the_partition_the_default_partitioner_picks_seen_or_not() -> None:
    remembering, default = RememberingPartitioner(remembered=50), DefaultPartitioner()
    keys = [f"p3-{i:04x}-bucket".encode() for i in range(120)] + [b"", b"\xff" * 33]
    for partitions in (list(range(1)), list(range(6)), list(range(12))):
        for _ in range(2):  # the second round reads remembered hashes (and clears some)
            for key in keys:
                assert remembering(key, partitions, partitions) == default(
                    key, partitions, partitions
                ), (key, len(partitions))


def test_a_record_without_key_goes_to_an_available_partition() -> None:
    remembering = RememberingPartitioner()
    assert {remembering(None, [0, 1, 2, 3], [2]) for _ in range(20)} == {2}
    assert {remembering(None, [0, 1], []) for _ in range(50)} <= {0, 1}


def test_what_it_remembers_stays_bounded() -> None:
    remembering = RememberingPartitioner(remembered=10)
    for i in range(100):
        remembering(str(i).encode(), [0, 1, 2], [0, 1, 2])
    assert len(remembering._hashes) <= 10


def test_every_producer_configuration_uses_it() -> None:
    assert isinstance(producer_options(Settings())["partitioner"], RememberingPartitioner)
