"""What on-call and the platform team rely on in template.yaml (CONTRACT.md sections 2, 3 and 8).

cfn-lint (run by `make test`) checks that the template is valid CloudFormation; these tests
check that it wires what the product promises: the routes, the settings each function reads,
the queue's retry and parking, least-privilege permissions and the on-call alarms.
"""

from __future__ import annotations

import ast
import math
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from portal_sync.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


class CloudFormationLoader(yaml.SafeLoader):
    """Reads CloudFormation's short-form tags (!Ref, !Sub, !GetAtt, ...) as their long form."""


def _intrinsic(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> dict[str, Any]:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if suffix == "Ref":
        return {"Ref": value}
    if suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{suffix}": value}


CloudFormationLoader.add_multi_constructor("!", _intrinsic)


def load_template() -> dict[str, Any]:
    loader = CloudFormationLoader((ROOT / "template.yaml").read_text())
    try:
        template: dict[str, Any] = loader.get_single_data()
    finally:
        loader.dispose()
    return template


TEMPLATE = load_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
GLOBALS: dict[str, Any] = TEMPLATE["Globals"]["Function"]
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


def environment(function: str) -> dict[str, Any]:
    """The variables a function runs with: the Globals' plus its own."""
    own = FUNCTIONS[function].get("Environment", {}).get("Variables", {})
    return {**GLOBALS["Environment"]["Variables"], **own}


def statements(function: str) -> list[dict[str, Any]]:
    return [s for p in FUNCTIONS[function].get("Policies", []) for s in p.get("Statement", [])]


def as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def grants(function: str, action: str) -> list[Any]:
    """The resources a function's own statements grant an action on."""
    return [
        resource
        for s in statements(function)
        if action in as_list(s["Action"])
        for resource in as_list(s["Resource"])
    ]


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
    """The resources (functions, queues, the API) an alarm's dimensions point at."""
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


def find_alarm(metric: tuple[str, str], ref: str | None = None) -> dict[str, Any]:
    for props in ALARMS.values():
        if metric in alarm_metrics(props) and (ref is None or ref in alarm_dimension_refs(props)):
            return props
    raise AssertionError(f"no alarm on {metric} {ref or ''}")


# -- routes and code ---------------------------------------------------------------------------


def test_every_contract_route_reaches_its_function() -> None:
    """CONTRACT.md section 2: clients only change their base URL, so the paths must match."""
    assert http_routes() == {
        ("POST", "/functions/v1/portal-webhook/{sourceId}"): "WebhookIngest",
        ("ANY", "/functions/v1/admin-api/{proxy+}"): "AdminApi",
        ("ANY", "/api/v1/website-sync/{proxy+}"): "WebsiteSync",
        ("ANY", "/functions/v1/website-sync/{proxy+}"): "WebsiteSync",
    }


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_handler_the_template_names_exists(name: str) -> None:
    """A typo in Handler deploys fine and fails on every invocation."""
    props = FUNCTIONS[name]
    module, function = props["Handler"].split(".")
    tree = ast.parse((ROOT / props["CodeUri"] / f"{module}.py").read_text())
    defined = {node.name for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function in defined


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_gets_the_settings_it_cannot_do_without(name: str) -> None:
    """A setting without a usable default (queue URLs, database) must come from the template.

    Missing, it silently becomes "": e.g. the consumer would not back off failed events.
    """
    code = (ROOT / FUNCTIONS[name]["CodeUri"] / "app.py").read_text()
    read = set(re.findall(r"\bsettings\.(\w+)", code))
    required = {field for field in read if Settings.model_fields[field].default == ""}
    assert {field.upper() for field in required} <= set(environment(name))


def test_every_variable_the_template_sets_is_a_setting_the_code_reads() -> None:
    """A misspelt variable name is ignored by pydantic-settings; this catches it."""
    known = {field.upper() for field in Settings.model_fields}
    for name in FUNCTIONS:
        names = {key for key in environment(name) if not key.startswith("POWERTOOLS_")}
        assert names <= known, name


def test_the_layer_is_built_for_the_functions_runtime_and_architecture() -> None:
    """psycopg and pydantic-core ship compiled wheels: an x86 layer breaks arm64 functions."""
    layer = RESOURCES["SharedLayer"]
    assert GLOBALS["Layers"] == [{"Ref": "SharedLayer"}]
    assert layer["Properties"]["CompatibleRuntimes"] == [GLOBALS["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == GLOBALS["Architectures"]
    assert layer["Metadata"]["BuildMethod"] == GLOBALS["Runtime"]
    assert [layer["Metadata"]["BuildArchitecture"]] == GLOBALS["Architectures"]


def test_the_layer_installs_the_versions_the_tests_ran_with() -> None:
    """`sam build` reads requirements.txt; the tests run against pyproject.toml's pins."""
    content = ROOT / RESOURCES["SharedLayer"]["Properties"]["ContentUri"]
    pinned = set(tomllib.loads((content / "pyproject.toml").read_text())["project"]["dependencies"])
    lines = (content / "requirements.txt").read_text().splitlines()
    required = {line.strip() for line in lines if line.strip() and not line.startswith("#")}
    assert required <= pinned
    # boto3 alone is left to the Lambda runtime.
    assert {dep.split("==")[0] for dep in pinned - required} <= {"boto3"}


def test_the_api_is_throttled_and_answers_supabase_cors() -> None:
    api = RESOURCES["HttpApi"]["Properties"]
    assert api["DefaultRouteSettings"]["ThrottlingRateLimit"] > 0
    assert api["DefaultRouteSettings"]["ThrottlingBurstLimit"] > 0
    cors = api["CorsConfiguration"]
    assert {"authorization", "x-client-info", "apikey", "content-type"} <= set(cors["AllowHeaders"])
    assert {"GET", "POST", "PUT", "DELETE", "OPTIONS"} <= set(cors["AllowMethods"])
    assert api["AccessLogSettings"]["DestinationArn"] == {
        "Fn::GetAtt": ["HttpApiAccessLogs", "Arn"]
    }


# -- the queue ---------------------------------------------------------------------------------


def test_consumer_reports_partial_failures_with_bounded_concurrency() -> None:
    """One bad event must not send its whole batch back; concurrency bounds DB connections."""
    source = FUNCTIONS["ProcessEvent"]["Events"]["Queue"]["Properties"]
    assert source["Queue"] == {"Fn::GetAtt": ["EventQueue", "Arn"]}
    assert source["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert source["BatchSize"] >= 10
    if source["BatchSize"] > 10:  # SQS event sources require a batching window then
        assert source["MaximumBatchingWindowInSeconds"] >= 1
    assert 2 <= source["ScalingConfig"]["MaximumConcurrency"] <= 10


def test_failed_events_are_parked_after_the_receives_the_consumer_expects() -> None:
    """The consumer logs an event as parked on its last receive: that must be the redrive's."""
    queue = RESOURCES["EventQueue"]["Properties"]
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == {
        "Fn::GetAtt": ["EventDeadLetterQueue", "Arn"]
    }
    max_receives = environment("ProcessEvent")["MAX_RECEIVE_COUNT"]
    assert queue["RedrivePolicy"]["maxReceiveCount"] == int(max_receives)


def test_the_consumer_may_back_off_failed_events_on_its_queue() -> None:
    """Without it a database outage parks every event after maxReceiveCount x timeout."""
    assert environment("ProcessEvent")["EVENT_QUEUE_URL"] == {"Ref": "EventQueue"}
    assert grants("ProcessEvent", "sqs:ChangeMessageVisibility") == [
        {"Fn::GetAtt": ["EventQueue", "Arn"]}
    ]


def test_queue_visibility_covers_six_consumer_timeouts() -> None:
    queue = RESOURCES["EventQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * FUNCTIONS["ProcessEvent"]["Timeout"]


def test_the_largest_accepted_webhook_fits_in_a_queue_message() -> None:
    """The ingest accepts bodies up to max_body_bytes and queues them base64-encoded."""
    encoded = 4 * math.ceil(Settings.model_fields["max_body_bytes"].default / 3)
    for name in ("EventQueue", "EventDeadLetterQueue"):
        assert RESOURCES[name]["Properties"]["MaximumMessageSize"] >= encoded + 16 * 1024, name


def test_queues_keep_events_through_a_long_outage_and_are_encrypted() -> None:
    for name in ("EventQueue", "EventDeadLetterQueue"):
        queue = RESOURCES[name]["Properties"]
        assert queue["MessageRetentionPeriod"] == 14 * 24 * 3600
        assert queue["SqsManagedSseEnabled"] is True


# -- permissions -------------------------------------------------------------------------------


def test_no_policy_grants_a_wildcard_action_or_any_resource() -> None:
    for name in FUNCTIONS:
        for statement in statements(name):
            assert all("*" not in action for action in as_list(statement["Action"])), name
            assert "*" not in as_list(statement["Resource"]), name


def test_ingest_only_reads_source_secrets_and_sends_to_the_event_queue() -> None:
    """The public endpoint's role cannot read Dynamics credentials or touch other queues."""
    [secrets] = grants("WebhookIngest", "secretsmanager:GetSecretValue")
    assert secrets["Fn::Sub"].endswith(":secret:${SourceSecretPrefix}*")
    assert grants("WebhookIngest", "sqs:SendMessage") == [{"Fn::GetAtt": ["EventQueue", "Arn"]}]
    actions = {a for s in statements("WebhookIngest") for a in as_list(s["Action"])}
    assert actions == {"secretsmanager:GetSecretValue", "sqs:SendMessage"}


def test_the_http_facing_functions_cannot_read_dynamics_credentials_back() -> None:
    """CONTRACT.md section 5: credentials are write-only; the admin API only stores them."""
    for name in ("WebhookIngest", "AdminApi"):
        for resource in grants(name, "secretsmanager:GetSecretValue"):
            assert "${DynamicsSecretPrefix}" not in resource["Fn::Sub"], name
    writable = grants("AdminApi", "secretsmanager:PutSecretValue")
    assert any(r["Fn::Sub"].endswith(":secret:${DynamicsSecretPrefix}*") for r in writable)


# -- operations --------------------------------------------------------------------------------


def test_every_function_logs_json_to_a_group_with_retention() -> None:
    for name, props in FUNCTIONS.items():
        group = RESOURCES[props["LoggingConfig"]["LogGroup"]["Ref"]]["Properties"]
        assert group["RetentionInDays"], name
        assert group["LogGroupName"]["Fn::Sub"].startswith("/aws/lambda/"), name
        assert props["LoggingConfig"]["LogFormat"] == "JSON"


def test_every_alarm_notifies_on_call_and_says_what_to_do() -> None:
    for name, props in ALARMS.items():
        assert props["AlarmActions"] == [{"Ref": "OnCallTopic"}], name
        assert props["OKActions"] == [{"Ref": "OnCallTopic"}], name
        assert props["TreatMissingData"] == "notBreaching", name
        assert len(props.get("AlarmDescription", "")) > 40, f"{name} must tell on-call what to do"


def test_the_queue_alarms_of_the_contract_exist() -> None:
    """CONTRACT.md section 8: dead-letter queue not empty, oldest event older than 60 s."""
    dead_letters = find_alarm(
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), "EventDeadLetterQueue"
    )
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (
        0,
        "GreaterThanThreshold",
    )
    oldest = find_alarm(("AWS/SQS", "ApproximateAgeOfOldestMessage"), "EventQueue")
    assert (oldest["Threshold"], oldest["Period"]) == (60, 60)


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_alarms_on_errors_and_throttles(function: str) -> None:
    find_alarm(("AWS/Lambda", "Errors"), function)
    find_alarm(("AWS/Lambda", "Throttles"), function)


def test_the_api_alarms_on_server_errors() -> None:
    """A 503 from the webhook endpoint is handled, so no Lambda error counts it."""
    find_alarm(("AWS/ApiGateway", "5xx"), "HttpApi")


def test_rejection_rate_alarm_fires_above_ten_percent_in_an_hour() -> None:
    rejection = find_alarm(("PortalSync", "WebhookRejected"))
    assert ("PortalSync", "WebhookReceived") in alarm_metrics(rejection)
    expression = next(q for q in rejection["Metrics"] if q.get("ReturnData"))["Expression"]
    assert "100 * rejected / received" in expression and "received >= 20" in expression
    assert (rejection["Threshold"], rejection["ComparisonOperator"]) == (10, "GreaterThanThreshold")
    stats = [q["MetricStat"] for q in rejection["Metrics"] if "MetricStat" in q]
    assert {stat["Period"] for stat in stats} == {3600}
    for stat in stats:
        assert stat["Metric"]["Dimensions"] == [{"Name": "service", "Value": "portal-sync"}]


def test_rejection_metrics_are_the_ones_the_ingest_emits() -> None:
    """The alarm watches metric names and dimensions; a rename in code would silence it."""
    code = (ROOT / "functions" / "webhook_ingest" / "app.py").read_text()
    assert 'name="WebhookReceived"' in code and 'name="WebhookRejected"' in code
    observability = (ROOT / "layers/portal_sync/portal_sync/observability.py").read_text()
    assert 'SERVICE = "portal-sync"' in observability
    assert 'NAMESPACE = "PortalSync"' in observability
    variables = GLOBALS["Environment"]["Variables"]
    assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "PortalSync"
    assert variables["POWERTOOLS_SERVICE_NAME"] == "portal-sync"
