"""Message keys that are a contract between stages.

traces.normalized is keyed by a coarse *pattern bucket* so that every trace that could
belong to one pattern lands on one partition, and so on one dedupe instance: N instances
then decide exactly what one would. The bucket must be coarser than any pattern identity
dedupe derives (dedupe refines within it, never across it).
"""

from __future__ import annotations

import hashlib

from shared.events import TraceFeatures


def pattern_partition_key(agent_name: str | None, features: TraceFeatures) -> str:
    # Agent and outcome: paths, errors and wording vary within a lesson,
    # but a lesson does not change agent or how the run ended.
    basis = "|".join([agent_name or "-", features.outcome])
    return hashlib.sha256(basis.encode()).hexdigest()[:16]
