"""Powertools logger, metrics and tracer shared by every function (one instance each)."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
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


@contextmanager
def log_keys(keys: dict[str, Any], hide: Sequence[str] = ()) -> Iterator[None]:
    """`keys` on the lines logged in the block, without `hide`; what they replaced comes back
    after it (the logger's keys outlive the invocation: none may leak into the next one).

    The thread's own keys: locally (`make run`, the tests) several functions log at once in one
    process, and one's event must not label another's lines."""
    current = logger.thread_safe_get_current_keys()
    replaced = {key: current[key] for key in (*keys, *hide) if key in current}
    logger.thread_safe_remove_keys(hide)
    logger.thread_safe_append_keys(**keys)
    try:
        yield
    finally:
        logger.thread_safe_remove_keys([*keys, *hide])
        logger.thread_safe_append_keys(**replaced)


def tracing_enabled() -> bool:
    """Powertools' own rule (on in Lambda unless POWERTOOLS_TRACE_DISABLED), decided once per
    execution environment; template.yaml sets the variable from its TracingMode."""
    disabled = os.environ.get("POWERTOOLS_TRACE_DISABLED", "").lower() in ("1", "true")
    return "AWS_LAMBDA_FUNCTION_NAME" in os.environ and not disabled


@cache
def _tracer() -> Tracer:
    from aws_lambda_powertools import Tracer

    # Not auto-patched: patching imports every library the X-Ray SDK knows (httpx alone ~100 ms)
    # at creation, undoing the deferred imports; the adapters' own spans time their calls.
    return Tracer(service=SERVICE, auto_patch=False)


class _LazyTracer:
    """Powertools Tracer, created only where tracing is on.

    Powertools' Tracer imports the X-Ray SDK when it is created, even disabled (~140 ms of a
    cold start here, with botocore): with tracing off these decorators return the function
    itself, so a function that is not traced pays nothing, not even a wrapper call.

    Powertools adds neither return values (members' details, Dynamics credentials) nor
    exceptions as span metadata, for the same reason they stay out of the logs. The X-Ray SDK
    itself still records a failed span's exception (type and message) on the trace, which only
    the account's X-Ray readers see (docs/security.md).
    """

    def capture_lambda_handler(self, handler: F) -> F:
        if not tracing_enabled():
            return handler
        return _tracer().capture_lambda_handler(  # type: ignore[return-value]
            handler, capture_response=False, capture_error=False
        )

    def capture_method(self, method: F) -> F:
        if not tracing_enabled():
            return method
        decorate = _tracer().capture_method(capture_response=False, capture_error=False)
        return decorate(method)

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
