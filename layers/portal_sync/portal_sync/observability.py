"""Powertools logger, metrics and tracer shared by every function (one instance each)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from aws_lambda_powertools import Logger, Metrics

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

F = TypeVar("F", bound=Callable[..., Any])

SERVICE = "portal-sync"
NAMESPACE = "PortalSync"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)


def tracing_enabled() -> bool:
    """Powertools' own rule (on in Lambda unless POWERTOOLS_TRACE_DISABLED), decided once per
    execution environment; template.yaml sets the variable from its TracingMode."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ and not disabled


@cache
def _tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    return Tracer(service=SERVICE)


class _LazyTracer:
    """Powertools Tracer, created only where tracing is on.

    Powertools' Tracer imports the X-Ray SDK when it is created, even disabled (~140 ms of a
    cold start here, with botocore): with tracing off these decorators return the function
    itself, so a function that is not traced pays nothing, not even a wrapper call.
    """

    def capture_lambda_handler(self, handler: F) -> F:
        if not tracing_enabled():
            return handler
        return _tracer().capture_lambda_handler(handler)  # type: ignore[return-value]

    def capture_method(self, method: F) -> F:
        if not tracing_enabled():
            return method
        return _tracer().capture_method(method)

    def put_annotation(self, key: str, value: str | bool) -> None:
        if tracing_enabled():
            _tracer().put_annotation(key=key, value=value)


tracer = _LazyTracer()


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
