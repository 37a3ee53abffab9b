"""Mentor website visibility (docs/website-visibility.md): one function, three kinds of event,
each to its entry point in portal_sync/entrypoints/website_sync/:

- API Gateway HTTP API (v2) requests under /api/v1/website-sync and /functions/v1/website-sync
  (routes.py, behind the Supabase JWT check; `/reconsiderations`, the database's own call,
  behind the project's service_role key);
- the state machine's tasks, `{"task": "apply_visibility" | "record_visibility_failure", ...}`
  (tasks.py);
- the EventBridge schedule: certificate sweep, changes not started yet (schedule.py).
"""

from __future__ import annotations

import gc

# Cold start: while the modules below are imported, the cyclic garbage collector walks the growing
# heap of module objects again and again and frees nothing (~10 % of the import). It is paused
# until the end of this module, which freezes what the import built (gc.freeze: never scanned
# again, so later collections are cheaper too) and turns it back on.
gc.disable()

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.bootstrap.website_sync import verifier
from portal_sync.entrypoints.http.authentication import authenticated_api
from portal_sync.entrypoints.http.responses import (
    install_api_error_handlers,
    install_error_handlers,
    parse_json_body,
    supabase_cors,
)
from portal_sync.entrypoints.scheduled_event import is_schedule
from portal_sync.entrypoints.website_sync import routes, schedule, tasks
from portal_sync.observability import logger, tracer

# Validation is registered after authentication (`authenticated_api`), not with
# `enable_validation`, which would run it before the token is checked.
PREFIXES = ["/api/v1/website-sync", "/functions/v1/website-sync"]
app = APIGatewayHttpResolver(
    cors=supabase_cors(), strip_prefixes=PREFIXES, json_body_deserializer=parse_json_body
)
install_error_handlers(app)
app.use(
    middlewares=authenticated_api(
        verifier,
        service_role_paths=[prefix + routes.RECONSIDERATIONS_PATH for prefix in PREFIXES],
    )
)
app.include_router(routes.router)
install_api_error_handlers(app, routes.ERROR_STATUSES)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@tracer.capture_lambda_handler
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if "task" in event:
        # The change's id, which also names its execution: every attempt's lines carry it.
        logger.set_correlation_id(str(event.get("change_id")))
        return tasks.run(event)
    if is_schedule(event):
        logger.set_correlation_id(event.get("id") or context.aws_request_id)
        return schedule.run()
    return app.resolve(event, context)


# The end of the cold import (see the top of the module).
gc.freeze()
gc.enable()
