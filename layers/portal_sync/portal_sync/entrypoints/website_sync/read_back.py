"""The read-back of the website column, a step of functions/website_sync's schedule: a bounded
share of every organisation's pass (visibility/read_back.py), and the metric
`VisibilityHandEditsRepaired` (hand edits found in Dynamics and put right by this run)."""

from __future__ import annotations

from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

from portal_sync.bootstrap import website_read_back as wiring
from portal_sync.observability import NAMESPACE, SERVICE


def run() -> dict[str, int]:
    result = wiring.read_back().run()
    # Emitted at once: the function's handler buffers no metrics (it has no log_metrics).
    if not is_metrics_disabled():
        with single_metric(
            name="VisibilityHandEditsRepaired",
            unit=MetricUnit.Count,
            value=result.hand_edits_repaired,
            namespace=NAMESPACE,
            default_dimensions={"service": SERVICE},
        ):
            pass
    return {
        "read_back_mentors": result.mentors_read,
        "hand_edits_repaired": result.hand_edits_repaired,
        "read_back_organizations": result.organizations,
    }
