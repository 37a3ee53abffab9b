"""Mentor website visibility (`/api/v1/website-sync/...`), CONTRACT.md section 6.

Only the shell so far: the routes come with the website visibility issue. Until then every path answers
the contract's JSON 404 and CORS preflight works, so clients see the final error format.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from portal_sync.http import install_error_handlers, supabase_cors
from portal_sync.observability import logger

app = APIGatewayHttpResolver(cors=supabase_cors())
install_error_handlers(app)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
