"""SQS consumer: applies the queued webhook events to PostgreSQL (docs/inbound.md).

A batch is applied together, and one message at a time when that fails
(portal_sync/inbound/batch.py); the failed messages go back to SQS in the partial batch
response (portal_sync/entrypoints/sqs_batch.py). The wiring is portal_sync/bootstrap/process_event.py.
"""

from __future__ import annotations

import gc

# Cold start: the cyclic garbage collector is paused while the modules below are imported (it
# would walk the growing heap of module objects again and again, freeing nothing), and what
# the import built is frozen at the end of this module (see functions/webhook_ingest/app.py).
gc.disable()

from typing import Any

from aws_lambda_powertools.utilities.batch.types import PartialItemFailureResponse
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.bootstrap import process_event as consumer
from portal_sync.entrypoints.sqs_batch import EventBatchProcessor, queued_delivery
from portal_sync.observability import logger, metrics, tracer


@logger.inject_lambda_context
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> PartialItemFailureResponse:
    processor = EventBatchProcessor(
        consumer.batch_apply(),
        start_visibility_changes=consumer.start_visibility_changes,
        back_off=consumer.back_off,
    )
    # Not process_partial_response, which refuses an event without records (no failures, here).
    with processor(event.get("Records", []), queued_delivery):
        processor.process()
    return processor.response()


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
