"""POST /functions/v1/portal-webhook/{sourceId}: verify, record, queue (docs/inbound.md)."""

from __future__ import annotations

import gc

# Cold start: while the modules below are imported, the cyclic garbage collector walks the growing
# heap of module objects again and again and frees nothing (~10 % of the import). It is paused
# until the end of this module, which freezes what the import built (gc.freeze: never scanned
# again, so later collections are cheaper too) and turns it back on.
gc.disable()

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.bootstrap.webhook_ingest import ingest
from portal_sync.entrypoints.http.responses import (
    install_error_handlers,
    json_response,
    lower_headers,
    raw_body,
    supabase_cors,
)
from portal_sync.inbound.ingest import WebhookRequest
from portal_sync.inbound.receipts import Outcome
from portal_sync.observability import logger, metrics, tracer

app = APIGatewayHttpResolver(cors=supabase_cors())
# Dataverse retries a 503 once and never a 500: a failure of ours (outside WebhookIngest, which
# answers its own with 503) must not lose the event.
install_error_handlers(app, unexpected=(503, "The webhook could not be accepted now; please retry"))


@app.post("/functions/v1/portal-webhook/<source_id>")
def receive(source_id: str) -> Response[str]:
    event = app.current_event
    # API Gateway's id of the request, to find it in the access log.
    logger.append_keys(api_request_id=event.request_context.request_id)
    result = ingest().handle(WebhookRequest(source_id, lower_headers(event), raw_body(event)))
    if result.receipt is not None:
        _count(result.receipt.outcome, result.receipt.reason)
    return json_response(result.status_code, result.body)


def _count(outcome: Outcome, reason: str | None) -> None:
    metrics.add_metric(name="WebhookReceived", unit=MetricUnit.Count, value=1)
    if outcome is Outcome.REJECTED:
        metrics.add_metric(name="WebhookRejected", unit=MetricUnit.Count, value=1)
        metrics.add_metric(name=f"WebhookRejected_{reason}", unit=MetricUnit.Count, value=1)
    elif outcome is Outcome.DUPLICATE:
        metrics.add_metric(name="WebhookDuplicate", unit=MetricUnit.Count, value=1)
    else:
        metrics.add_metric(name="WebhookAccepted", unit=MetricUnit.Count, value=1)


@logger.inject_lambda_context(clear_state=True)
@metrics.log_metrics
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
