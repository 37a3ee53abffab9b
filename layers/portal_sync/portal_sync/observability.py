"""Powertools logger, metrics and tracer shared by every function (one instance each)."""

from __future__ import annotations

import traceback
from typing import Any

from aws_lambda_powertools import Logger, Metrics

SERVICE = "portal-sync"
NAMESPACE = "PortalSync"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def error_facts(exc: BaseException | None) -> dict[str, Any]:
    """What on-call needs of a failure, without its message: PostgreSQL's messages quote the
    failing row (names, e-mail addresses), which must not reach the logs. The frames say where
    it happened (file, line, function; no values)."""
    diag = getattr(exc, "diag", None)
    frames = traceback.extract_tb(exc.__traceback__) if exc is not None else []
    return {
        "error": type(exc).__name__,
        "sqlstate": getattr(exc, "sqlstate", None),
        "constraint": getattr(diag, "constraint_name", None),
        "table": getattr(diag, "table_name", None),
        "where": [f"{f.filename}:{f.lineno} {f.name}" for f in frames[-5:]],
    }
