"""Review stage shell: traces.scored → the held cases people judge (review_cases).

The web app (services/review/web.py) and `promote review` read the cases from the store
and give verdicts on traces.reviewed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from faststream import ContextRepo, FastStream

from services.review import logic
from services.review.store import PostgresReviewStore, ReviewStore
from shared import __version__, topics
from shared.db import open_store_pool
from shared.events import TraceScored
from shared.kafka import make_broker
from shared.kernel import Item, Outbox, headers_of, process
from shared.log import configure_logging
from shared.ops import instrument
from shared.settings import get_settings
from shared.stage import KafkaMessage, Resolved, Stage

settings = get_settings()
logger = configure_logging("review", settings.log_level)
broker = make_broker(settings, "review", logger)
stage = Stage(broker, "review", __version__)


@asynccontextmanager
async def lifespan(context: ContextRepo) -> AsyncIterator[None]:
    pool = await open_store_pool(settings.dsn(), stage.name)
    context.set_global("store", PostgresReviewStore(pool))
    yield
    await pool.close()


app = FastStream(broker, logger=logger, lifespan=lifespan)
instrument(app, broker, stage.name, database=True)


@stage.batch_subscriber(topics.SCORED)
async def on_scored(msg: KafkaMessage, store: ReviewStore = Resolved()) -> None:
    async def hold(items: Sequence[Item[TraceScored]], out: Outbox) -> None:
        for item in items:
            event = item.event
            if logic.held(event) and await store.add_case(logic.case_from(event)):
                stage.log.info(
                    "case_held", trace_id=event.trace_id, pattern_id=event.pattern.pattern_id
                )

    # A replay's what-if is not parsed: people review what the live policy held.
    await process(
        stage,
        msg,
        TraceScored,
        hold,
        wanted=lambda record: not topics.replayed(headers_of(record)),
    )
