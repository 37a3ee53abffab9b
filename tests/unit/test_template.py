"""What on-call and the platform team rely on in template.yaml (CONTRACT.md sections 2 and 8).

cfn-lint (run by `make test`) checks that the template is valid; these tests check that it
wires what the product promises: the routes, the queue's retry and parking, and the alarms.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE: dict[str, Any] = cfn_yaml.load(str(ROOT / "template.yaml"))
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
FUNCTIONS = {
    name: resource["Properties"]
    for name, resource in RESOURCES.items()
    if resource["Type"] == "AWS::Serverless::Function"
}
ALARMS = {
    name: resource["Properties"]
    for name, resource in RESOURCES.items()
    if resource["Type"] == "AWS::CloudWatch::Alarm"
}


def http_routes() -> dict[tuple[str, str], str]:
    routes = {}
    for name, props in FUNCTIONS.items():
        for event in props.get("Events", {}).values():
            if event["Type"] == "HttpApi":
                routes[(event["Properties"]["Method"], event["Properties"]["Path"])] = name
    return routes


def alarm_metrics(props: dict[str, Any]) -> set[tuple[str, str]]:
    """(namespace, metric name) pairs an alarm watches, plain or through metric math."""
    if "MetricName" in props:
        return {(props["Namespace"], props["MetricName"])}
    return {
        (query["MetricStat"]["Metric"]["Namespace"], query["MetricStat"]["Metric"]["MetricName"])
        for query in props["Metrics"]
        if "MetricStat" in query
    }


def alarm_dimension_refs(props: dict[str, Any]) -> set[str]:
    """The functions or queues an alarm's dimensions point at."""
    dimension_lists = [props.get("Dimensions", [])] + [
        query["MetricStat"]["Metric"].get("Dimensions", [])
        for query in props.get("Metrics", [])
        if "MetricStat" in query
    ]
    refs = set()
    for dimensions in dimension_lists:
        for dimension in dimensions:
            value = dimension["Value"]
            if isinstance(value, dict):
                refs.add(value.get("Ref") or value["Fn::GetAtt"][0])
    return refs


def test_every_contract_route_reaches_its_function() -> None:
    assert http_routes() == {
        ("POST", "/functions/v1/portal-webhook/{sourceId}"): "WebhookIngest",
        ("ANY", "/functions/v1/admin-api/{proxy+}"): "AdminApi",
        ("ANY", "/api/v1/website-sync/{proxy+}"): "WebsiteSync",
        ("ANY", "/functions/v1/website-sync/{proxy+}"): "WebsiteSync",
    }


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_handler_the_template_names_exists(name: str) -> None:
    props = FUNCTIONS[name]
    module, function = props["Handler"].split(".")
    source = ROOT / props["CodeUri"] / f"{module}.py"
    tree = ast.parse(source.read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function in defined


def test_the_api_is_throttled_and_answers_supabase_cors() -> None:
    api = RESOURCES["HttpApi"]["Properties"]
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    assert {"authorization", "x-client-info", "apikey", "content-type"} <= set(
        api["CorsConfiguration"]["AllowHeaders"]
    )


def test_consumer_reports_partial_failures_with_bounded_concurrency() -> None:
    source = FUNCTIONS["ProcessEvent"]["Events"]["Queue"]["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["EventQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BatchSize"] >= 10
    # Each consumer environment holds one PostgreSQL connection: concurrency bounds them.
    assert 2 <= source["ScalingConfig"]["MaximumConcurrency"] <= 10


def test_failed_events_are_parked_after_the_receives_the_consumer_expects() -> None:
    """The consumer logs an event as parked on its last receive: that must be the redrive's."""
    queue = RESOURCES["EventQueue"]["Properties"]
    consumer_env = FUNCTIONS["ProcessEvent"]["Environment"]["Variables"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]
    }
    assert queue["RedrivePolicy"]["maxReceiveCount"] == int(consumer_env["MAX_RECEIVE_COUNT"])


def test_queue_visibility_covers_six_consumer_timeouts() -> None:
    queue = RESOURCES["EventQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * FUNCTIONS["ProcessEvent"]["Timeout"]


def test_queues_keep_events_through_a_long_outage_and_are_encrypted() -> None:
    for name in ("EventQueue", "EventDeadLetterQueue"):
        queue = RESOURCES[name]["Properties"]
        assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert queue["SqsManagedSseEnabled"] is True


def test_every_alarm_notifies_on_call() -> None:
    for name, props in ALARMS.items():
        assert props["AlarmActions"] == [{"Ref": "OnCallTopic"}], name
        assert props.get("AlarmDescription"), f"{name} must tell on-call what to do"


def test_the_contract_alarms_exist() -> None:
    watched = {
        name: (alarm_metrics(props), alarm_dimension_refs(props), props)
        for name, props in ALARMS.items()
    }

    def find(metric: tuple[str, str], ref: str | None = None) -> dict[str, Any]:
        for metrics, refs, props in watched.values():
            if metric in metrics and (ref is None or ref in refs):
                return props
        raise AssertionError(f"no alarm on {metric} {ref or ''}")

    dead_letters = find(("AWS/SQS", "ApproximateNumberOfMessagesVisible"), "EventDeadLetterQueue")
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (
        0,
        "GreaterThanThreshold",
    )
    oldest = find(("AWS/SQS", "ApproximateAgeOfOldestMessage"), "EventQueue")
    assert oldest["Threshold"] == 60
    for function in FUNCTIONS:
        find(("AWS/Lambda", "Errors"), function)
        find(("AWS/Lambda", "Throttles"), function)

    rejection = find(("PortalSync", "WebhookRejected"))
    assert ("PortalSync", "WebhookReceived") in alarm_metrics(rejection)
    expression = next(q for q in rejection["Metrics"] if q.get("ReturnData"))["Expression"]
    assert "100 * rejected / received" in expression and "received >= 20" in expression
    assert rejection["Threshold"] == 10
    assert {q["MetricStat"]["Period"] for q in rejection["Metrics"] if "MetricStat" in q} == {3600}


def test_rejection_metrics_are_the_ones_the_ingest_emits() -> None:
    """The alarm watches metric names; a rename in code would silence it."""
    code = (ROOT / "functions" / "webhook_ingest" / "app.py").read_text()
    assert 'name="WebhookReceived"' in code and 'name="WebhookRejected"' in code
    namespace = TEMPLATE["Globals"]["Function"]["Environment"]["Variables"]
    assert namespace["POWERTOOLS_METRICS_NAMESPACE"] == "PortalSync"
    assert namespace["POWERTOOLS_SERVICE_NAME"] == "portal-sync"


def test_every_function_logs_to_a_group_with_retention() -> None:
    for name, props in FUNCTIONS.items():
        group = RESOURCES[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["RetentionInDays"], name
        assert props["LoggingConfig"]["LogFormat"] == "JSON"


def test_no_policy_grants_a_wildcard_action_or_resource() -> None:
    for name, props in FUNCTIONS.items():
        for policy in props.get("Policies", []):
            for statement in policy.get("Statement", []) if isinstance(policy, dict) else []:
                actions = statement["Action"]
                actions = actions if isinstance(actions, list) else [actions]
                assert all("*" not in action for action in actions), name
                assert statement["Resource"] != "*", name


def test_ingest_reads_only_the_webhook_source_secrets() -> None:
    policies = FUNCTIONS["WebhookIngest"]["Policies"]
    statements = [s for p in policies for s in p.get("Statement", [])]
    [secrets] = [s for s in statements if s["Action"] == "secretsmanager:GetSecretValue"]
    assert secrets["Resource"]["Fn::Sub"].endswith(":secret:${SourceSecretPrefix}*")
