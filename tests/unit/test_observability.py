"""The Tracer costs nothing where tracing is off, and little where it is on (a cold start)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from portal_sync.observability import tracer

def work():
    return 1

traced = tracer.capture_method(work)
handler = tracer.capture_lambda_handler(lambda event, context: event)
print(json.dumps({
    "unchanged": traced is work,
    "result": traced(),
    "xray": "aws_xray_sdk.core" in sys.modules,
    "httpx": "httpx" in sys.modules,
    "psycopg": "psycopg" in sys.modules,
}))
"""


def probe(tmp_path: Path, **environment: str) -> dict[str, object]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("AWS_LAMBDA_FUNCTION_NAME", "POWERTOOLS_TRACE_DISABLED", "LAMBDA_TASK_ROOT")
    }
    env.update(environment)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_with_tracing_off_the_decorators_return_the_function_and_the_sdk_is_never_imported(
    tmp_path: Path,
) -> None:
    for environment in (
        {},  # not in Lambda: Powertools' own rule
        {"AWS_LAMBDA_FUNCTION_NAME": "f", "POWERTOOLS_TRACE_DISABLED": "true"},  # PassThrough
    ):
        assert probe(tmp_path, **environment) == {
            "unchanged": True,
            "result": 1,
            "xray": False,
            "httpx": False,
            "psycopg": False,
        }


@pytest.mark.filterwarnings("ignore")
def test_with_tracing_on_spans_are_recorded_without_importing_what_the_function_defers(
    tmp_path: Path,
) -> None:
    """Powertools' auto-patching would import httpx (and every library the X-Ray SDK patches)
    when the Tracer is created; the functions defer those to the calls that need them."""
    traced = probe(
        tmp_path,
        AWS_LAMBDA_FUNCTION_NAME="f",
        LAMBDA_TASK_ROOT=str(tmp_path),
        POWERTOOLS_TRACE_DISABLED="false",
    )
    assert traced["unchanged"] is False and traced["xray"] is True
    assert traced["httpx"] is False and traced["psycopg"] is False
