"""Logging: one JSON object per line on stderr, for structlog and stdlib loggers alike
(FastStream's and aiokafka's records go through the same renderer)."""

from __future__ import annotations

import logging
import sys

import structlog

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
    # FastStream puts the topic, group and message id in `extra`: keep them.
    structlog.stdlib.ExtraAdder(),
]


# Libraries that write message contents at debug level: aiokafka's producer logs every
# record it sends, key and value ("Sending (key=... value=...)"), which before redaction is
# a trace with its personal data. They stay at info whatever the service's level.
CONTENT_AT_DEBUG = ("aiokafka",)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg,unused-ignore]
    """Writes to whatever sys.stderr is at emit time: a test runner may swap and close the
    stream it had when logging was configured."""

    @property  # type: ignore[override,unused-ignore]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _: object) -> None:
        pass


def configure_logging(service: str, level: str = "INFO") -> logging.Logger:
    """Returns the stdlib logger FastStream should use for this service."""
    handler = _StderrHandler()
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED,
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in CONTENT_AT_DEBUG:
        logging.getLogger(name).setLevel(max(root.level, logging.INFO))
    structlog.configure(
        # Filtered first: a call below the level costs a level check, not the chain.
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    structlog.contextvars.bind_contextvars(service=service)
    return logging.getLogger(f"trace_promoter.{service}")
