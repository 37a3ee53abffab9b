"""What on-call and the platform team rely on in template.yaml (docs/deploy.md, docs/runbook.md).

cfn-lint (run by `make test`) checks that the template is valid CloudFormation; these tests
check that it wires what the product promises: the routes, the settings each function reads,
the queue's retry and parking, least-privilege permissions and the on-call alarms.
"""

from __future__ import annotations

import ast
import itertools
import json
import math
import re
import subprocess
import tomllib
import typing
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from portal_sync.inbound.receipts import Receipt
from portal_sync.inbound.sync_log import LogStatus
from portal_sync.settings import FUNCTION_SETTINGS, FunctionSettings, IngestSettings
from portal_sync.visibility.delivery import REJECTED_ERROR, RETRYABLE_ERROR, THROTTLED_ERROR
from portal_sync_dev.build import read_template
from pydantic import ValidationError

ROOT = Path(__file__).resolve().parents[2]


TEMPLATE = read_template()
RESOURCES: dict[str, Any] = TEMPLATE["Resources"]
PARAMETERS: dict[str, Any] = TEMPLATE["Parameters"]
GLOBALS: dict[str, Any] = TEMPLATE["Globals"]["Function"]
FUNCTIONS = {
    name: resource["Properties"]
    for name, resource in RESOURCES.items()
    if resource["Type"] == "AWS::Serverless::Function"
}
# Secret names are the stage's own (a shared prefix let one stage read another's secrets).
SOURCE_SECRETS = "portal-sync/${Stage}/sources/"
DYNAMICS_SECRETS = "portal-sync/${Stage}/dynamics/"
ALARMS = {
    name: resource["Properties"]
    for name, resource in RESOURCES.items()
    if resource["Type"] == "AWS::CloudWatch::Alarm"
}


def environment(function: str) -> dict[str, Any]:
    """The variables a function runs with: the Globals' plus its own."""
    own = FUNCTIONS[function].get("Environment", {}).get("Variables", {})
    return {**GLOBALS["Environment"]["Variables"], **own}


def role(function: str) -> dict[str, Any]:
    """The function's own IAM role (no SAM-made role, no managed policy)."""
    name = FUNCTIONS[function]["Role"]["Fn::GetAtt"][0]
    found: dict[str, Any] = RESOURCES[name]
    return found


def statements(function: str) -> list[dict[str, Any]]:
    """The statements of the function's role; a conditional one (`Fn::If`) as when true."""
    found = []
    for policy in role(function)["Properties"]["Policies"]:
        for statement in policy["PolicyDocument"]["Statement"]:
            if "Fn::If" in statement:
                statement = statement["Fn::If"][1]
            found.append(statement)
    return found


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


def default(value: Any) -> Any:
    """A literal, or the default of the parameter a `Ref` names."""
    if isinstance(value, dict) and set(value) == {"Ref"}:
        return PARAMETERS[value["Ref"]]["Default"]
    return value


def find_alarm(metric: tuple[str, str], ref: str | None = None) -> dict[str, Any]:
    for props in ALARMS.values():
        if metric in alarm_metrics(props) and (ref is None or ref in alarm_dimension_refs(props)):
            return props
    raise AssertionError(f"no alarm on {metric} {ref or ''}")


# -- routes and code ---------------------------------------------------------------------------


def test_every_contract_route_reaches_its_function() -> None:
    """docs/deploy.md: clients only change their base URL, so the paths must match."""
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


def settings_model(function: str) -> type[FunctionSettings]:
    """The settings model a function of the template reads (by its folder under functions/)."""
    return FUNCTION_SETTINGS[Path(FUNCTIONS[function]["CodeUri"]).name]


def required_fields(model: type[FunctionSettings]) -> set[str]:
    return {name for name, field in model.model_fields.items() if field.is_required()}


def test_every_function_of_the_template_has_a_settings_model() -> None:
    assert {Path(props["CodeUri"]).name for props in FUNCTIONS.values()} == set(FUNCTION_SETTINGS)


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_function_gets_the_settings_it_cannot_do_without(name: str) -> None:
    """A required setting (no default) fails the function's cold start when its variable is
    missing (docs/deploy.md), so the template must set each one for the function that reads it."""
    required = required_fields(settings_model(name))
    assert required, f"{settings_model(name).__name__} has no required field to check"
    assert {field.upper() for field in required} <= set(environment(name))


@pytest.mark.parametrize("name", sorted(FUNCTIONS))
def test_every_variable_the_template_sets_is_a_setting_the_function_reads(name: str) -> None:
    """pydantic-settings ignores a variable no field reads: a misspelt name, or one set on a
    function whose model does not have it, would be dropped without a word."""
    known = {field.upper() for field in settings_model(name).model_fields}
    names = {key for key in environment(name) if not key.startswith("POWERTOOLS_")}
    assert names, name
    assert names <= known, name


@pytest.mark.parametrize("function", sorted(FUNCTION_SETTINGS))
def test_a_function_without_its_required_variables_fails_naming_them(
    function: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cold start fails with the names of what is missing (a queue URL or state machine ARN
    must not silently become "" and a feature a no-op)."""
    model = FUNCTION_SETTINGS[function]
    for field in model.model_fields:
        monkeypatch.delenv(field.upper(), raising=False)
    required = required_fields(model)
    with pytest.raises(ValidationError) as failure:
        model()
    missing = {str(e["loc"][0]) for e in failure.value.errors() if e["type"] == "missing"}
    assert missing == required
    assert all(field in str(failure.value) for field in required)
    # Given them, the model still needs the database (its secret, or a URL under `make run`),
    # and a function that verifies tokens one of its keys.
    for field in required:
        monkeypatch.setenv(field.upper(), "set")
    arn = "arn:aws:secretsmanager:eu-north-1:000000000000:secret:portal-sync/prod/database-url"
    if "supabase_jwt_secret" in model.model_fields:
        monkeypatch.setenv("DATABASE_URL_SECRET_ARN", arn)
        with pytest.raises(ValidationError, match="SUPABASE_JWKS_URL or SUPABASE_JWT_SECRET_ARN"):
            model()
        monkeypatch.delenv("DATABASE_URL_SECRET_ARN")
        monkeypatch.setenv("SUPABASE_JWKS_URL", "https://example.org/jwks")
    with pytest.raises(ValidationError, match="DATABASE_URL_SECRET_ARN"):
        model()
    monkeypatch.setenv("DATABASE_URL_SECRET_ARN", arn)
    assert all(getattr(model(), field) == "set" for field in required)


def test_no_deployed_function_may_call_dynamics_on_this_machine() -> None:
    """ALLOW_LOCAL_DYNAMICS lets a Dynamics base URL be plain http on loopback, for `make run`'s
    stand-in; deployed, it would let stored credentials reach the Lambda runtime API."""
    for name in FUNCTIONS:
        assert "ALLOW_LOCAL_DYNAMICS" not in environment(name), name
    globals_environment = read_template().get("Globals", {}).get("Function", {})
    assert "ALLOW_LOCAL_DYNAMICS" not in globals_environment.get("Environment", {}).get(
        "Variables", {}
    )


def test_the_layer_is_built_for_the_functions_runtime_and_architecture() -> None:
    """psycopg and pydantic-core ship compiled wheels: an x86 layer breaks arm64 functions."""
    layer = RESOURCES["SharedLayer"]
    assert GLOBALS["Layers"] == [{"Ref": "SharedLayer"}]
    assert layer["Properties"]["CompatibleRuntimes"] == [GLOBALS["Runtime"]]
    assert layer["Properties"]["CompatibleArchitectures"] == GLOBALS["Architectures"]
    assert [layer["Metadata"]["BuildArchitecture"]] == GLOBALS["Architectures"]
    assert all(
        "Runtime" not in props and "Architectures" not in props for props in FUNCTIONS.values()
    )


# When AWS deprecates each Python runtime (docs.aws.amazon.com/lambda/latest/dg/lambda-runtimes.html):
# after it, no security patches; soon after, no new functions or updates.
RUNTIME_DEPRECATION = {
    "python3.11": "2027-06-30",  # Amazon Linux 2
    "python3.12": "2028-10-31",  # Amazon Linux 2023
    "python3.13": "2029-06-30",  # Amazon Linux 2023
}


def test_the_functions_run_on_a_current_runtime_on_graviton() -> None:
    """python3.11 runs on Amazon Linux 2 and is deprecated on 2027-06-30; arm64 (Graviton)
    costs less per GB-second than x86_64 for the same work."""
    assert RUNTIME_DEPRECATION[GLOBALS["Runtime"]] >= "2029-01-01"
    assert GLOBALS["Architectures"] == ["arm64"]


HTTP_FUNCTIONS = ("WebhookIngest", "AdminApi", "WebsiteSync")


def test_snapstart_is_an_option_of_the_http_functions() -> None:
    """Off by default (it costs per cached snapshot and per restore); when on, it applies to
    published versions only, so each HTTP function publishes one on every change of code *or*
    settings, behind the alias its callers invoke."""
    parameter = PARAMETERS["SnapStart"]
    assert parameter["Default"] == "None"
    assert set(parameter["AllowedValues"]) == {"None", "PublishedVersions"}
    for name in HTTP_FUNCTIONS:
        props = FUNCTIONS[name]
        assert props["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}, name
        assert props["AutoPublishAlias"] == "live", name
        assert props["AutoPublishAliasAllProperties"] is True, name
        # What SnapStart does not support.
        assert "ProvisionedConcurrencyConfig" not in props, name
        assert props.get("EphemeralStorage", {}).get("Size", 512) <= 512, name
        assert "FileSystemConfigs" not in props, name
    # A restore must make connections and clients again: the hooks are registered by the
    # wiring module of each of these functions (portal_sync/bootstrap/snapstart.py).
    for module in ("webhook_ingest", "admin_api", "website_sync"):
        wiring = ROOT / "layers/portal_sync/portal_sync/bootstrap" / f"{module}.py"
        assert "prepare_for_snapshots(" in wiring.read_text(), module


DEPLOY_CHECK_PYTHON = ROOT / ".tools/deploy-check/bin/python"


def sam_translated(parameters: dict[str, str]) -> dict[str, Any]:
    """The template as CloudFormation after SAM's transform (what `sam deploy` submits), from the
    deploy-check tool environment, which `make test` makes before it runs pytest."""
    if not DEPLOY_CHECK_PYTHON.is_file():
        pytest.skip("needs the SAM translator of `make deploy-check`'s tool environment")
    result = subprocess.run(
        [
            str(DEPLOY_CHECK_PYTHON),
            str(ROOT / "tools/deploy_check/sam_transform.py"),
            json.dumps(parameters),
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    translated: dict[str, Any] = json.loads(result.stdout)
    return translated


def test_with_snapstart_on_every_caller_invokes_the_published_alias() -> None:
    """$LATEST is never restored from a snapshot: API Gateway, the schedules and the state
    machine must call the alias, or SnapStart would be paid for and never used."""
    resources = sam_translated({"SnapStart": "PublishedVersions"})["Resources"]
    aliases = {
        name: props["Properties"]
        for name, props in resources.items()
        if props["Type"] == "AWS::Lambda::Alias"
    }
    assert {alias["FunctionName"]["Ref"] for alias in aliases.values()} == set(HTTP_FUNCTIONS)
    for name in HTTP_FUNCTIONS:
        assert resources[name]["Properties"]["SnapStart"] == {"ApplyOn": {"Ref": "SnapStart"}}
    invoked = {
        name: props["Properties"]["FunctionName"]
        for name, props in resources.items()
        if props["Type"] == "AWS::Lambda::Permission"
    }
    for permission, function in invoked.items():
        if any(permission.startswith(name) for name in HTTP_FUNCTIONS):
            assert function["Ref"] in aliases, permission
    machine = resources["WebsiteVisibilityStateMachine"]["Properties"]
    assert machine["DefinitionSubstitutions"]["WebsiteSyncFunctionArn"]["Ref"] in aliases
    # The state machine's role covers the alias's (qualified) ARN.
    [invoke] = [
        statement
        for policy in resources["WebsiteVisibilityStateMachineRole"]["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]
        if "lambda:InvokeFunction" in as_list(statement["Action"])
    ]
    assert invoke["Resource"]["Fn::Sub"][0].endswith(":function:${functionName}*")


@pytest.mark.parametrize("name", [*sorted(FUNCTIONS), "SharedLayer"])
def test_sam_build_uses_our_builder(name: str) -> None:
    """SAM's own Python build ships no .pyc files, so every cold start compiles every module.

    `BuildMethod: makefile` makes `sam build` run the root Makefile's `build-<LogicalId>`, which
    runs tools/portal_sync_dev/build.py (unchecked-hash pycs; tests/infrastructure/test_build.py).
    """
    metadata = RESOURCES[name]["Metadata"]
    assert metadata["BuildMethod"] == "makefile"
    assert (ROOT / metadata["ContextPath"] / "Makefile").resolve() == ROOT / "Makefile"


def test_the_layer_installs_the_versions_the_tests_ran_with() -> None:
    """`sam build` reads requirements.txt; the tests run against pyproject.toml's pins."""
    content = ROOT / RESOURCES["SharedLayer"]["Properties"]["ContentUri"]
    pinned = set(tomllib.loads((content / "pyproject.toml").read_text())["project"]["dependencies"])
    required = _requirements(content / "requirements.txt")
    # The X-Ray SDK is installed without its botocore (requirements-no-deps.txt).
    without_dependencies = _requirements(content / "requirements-no-deps.txt")
    assert "aws-xray-sdk==2.15.0" in without_dependencies
    assert required | (without_dependencies & pinned) <= pinned
    # botocore alone is left to the Lambda runtime.
    assert {dep.split("==")[0] for dep in pinned - required - without_dependencies} == {"botocore"}


def _requirements(path: Path) -> set[str]:
    lines = path.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


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
    assert 2 <= default(source["ScalingConfig"]["MaximumConcurrency"]) <= 10


def test_the_consumers_reserved_concurrency_is_its_connection_budget() -> None:
    """One PostgreSQL connection per environment: reserved concurrency makes the bound hard.

    It must equal the mapping's MaximumConcurrency: lower, the mapping's invocations are
    throttled and each throttle costs a receive (10 park an event); higher holds capacity
    nobody uses.
    """
    consumer = FUNCTIONS["ProcessEvent"]
    mapping = consumer["Events"]["Queue"]["Properties"]["ScalingConfig"]["MaximumConcurrency"]
    assert consumer["ReservedConcurrentExecutions"] == mapping
    parameter = PARAMETERS[mapping["Ref"]]
    assert parameter["Type"] == "Number"
    assert parameter["MinValue"] >= 2  # the least an SQS mapping accepts
    # The other functions are not capped: a reservation there would turn bursts into 429s.
    assert [n for n, p in FUNCTIONS.items() if "ReservedConcurrentExecutions" in p] == [
        "ProcessEvent"
    ]


def test_x_ray_is_optional_for_the_functions_and_the_state_machine() -> None:
    assert GLOBALS["Tracing"] == {"Ref": "TracingMode"}
    assert all("Tracing" not in props for props in FUNCTIONS.values())
    assert set(PARAMETERS["TracingMode"]["AllowedValues"]) == {"Active", "PassThrough"}
    assert TEMPLATE["Conditions"]["TracingActive"] == {
        "Fn::Equals": [{"Ref": "TracingMode"}, "Active"]
    }
    machine = RESOURCES["WebsiteVisibilityStateMachine"]["Properties"]
    assert machine["Tracing"]["Enabled"] == {"Fn::If": ["TracingActive", True, False]}
    # SAM grants X-Ray to a state machine only for a literal `Enabled: true`.
    actions = {a for s in state_machine_statements() for a in as_list(s["Action"])}
    assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions


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
    encoded = 4 * math.ceil(IngestSettings.model_fields["max_body_bytes"].default / 3)
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
            if "*" in as_list(statement["Resource"]):  # X-Ray has no resource-level permissions
                assert {a.split(":")[0] for a in as_list(statement["Action"])} == {"xray"}, name


@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_every_function_has_a_role_of_its_own_with_no_managed_policy(function: str) -> None:
    """SAM's own role would carry AWSLambdaBasicExecutionRole (logs on every log group) and,
    for the consumer, AWSLambdaSQSQueueExecutionRole (every queue of the account)."""
    props = role(function)["Properties"]
    assert "ManagedPolicyArns" not in props
    assert "Policies" not in FUNCTIONS[function]
    [trust] = props["AssumeRolePolicyDocument"]["Statement"]
    assert trust["Principal"] == {"Service": "lambda.amazonaws.com"}
    logs = grants(function, "logs:PutLogEvents")
    assert logs == [
        {"Fn::GetAtt": [FUNCTIONS[function]["LoggingConfig"]["LogGroup"]["Ref"], "Arn"]}
    ]
    # X-Ray only when tracing is on.
    [traced] = [
        s for p in props["Policies"] for s in p["PolicyDocument"]["Statement"] if "Fn::If" in s
    ]
    assert traced["Fn::If"][0] == "TracingActive"


def test_the_consumer_polls_only_the_event_queue() -> None:
    for action in ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"):
        assert grants("ProcessEvent", action) == [{"Fn::GetAtt": ["EventQueue", "Arn"]}]


def state_machine_statements() -> list[dict[str, Any]]:
    policies = RESOURCES["WebsiteVisibilityStateMachine"]["Properties"]["Policies"]
    return [s for p in policies for s in p.get("Statement", [])]


def test_the_state_machine_grants_no_wildcard_action() -> None:
    """Log delivery and X-Ray have no resource-level permissions; their actions stay named."""
    for statement in state_machine_statements():
        assert all("*" not in action for action in as_list(statement["Action"]))
        if "*" in as_list(statement["Resource"]):
            prefixes = {action.split(":")[0] for action in as_list(statement["Action"])}
            assert prefixes <= {"logs", "xray"}


def test_ingest_only_reads_source_secrets_and_sends_to_the_event_queue() -> None:
    """The public endpoint's role cannot read Dynamics credentials or touch other queues."""
    readable = grants("WebhookIngest", "secretsmanager:GetSecretValue")
    assert {"Ref": "DatabaseUrlSecret"} in readable
    [sources] = [r for r in readable if "Fn::Sub" in r]
    assert sources["Fn::Sub"].endswith(f":secret:{SOURCE_SECRETS}*")
    assert len(readable) == 2
    assert grants("WebhookIngest", "sqs:SendMessage") == [{"Fn::GetAtt": ["EventQueue", "Arn"]}]
    actions = {a for s in statements("WebhookIngest") for a in as_list(s["Action"])}
    running = {"logs:CreateLogStream", "logs:PutLogEvents"}  # its log group; X-Ray when on
    tracing = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    assert actions - running - tracing == {"secretsmanager:GetSecretValue", "sqs:SendMessage"}


def test_the_http_facing_functions_cannot_read_dynamics_credentials_back() -> None:
    """docs/admin-api.md: credentials are write-only; the admin API only stores them."""
    for name in ("WebhookIngest", "AdminApi"):
        for resource in grants(name, "secretsmanager:GetSecretValue"):
            assert DYNAMICS_SECRETS not in resource.get("Fn::Sub", ""), name
    writable = grants("AdminApi", "secretsmanager:PutSecretValue")
    assert any(r["Fn::Sub"].endswith(f":secret:{DYNAMICS_SECRETS}*") for r in writable)


def test_no_secret_is_in_a_functions_environment() -> None:
    """Whoever may read a function's configuration reads its environment: the database URL
    (with its password) and the JWT secret (which mints administrator tokens) come as ARNs of
    secrets the function may read, never as values."""
    secret_parameters = {name for name, p in PARAMETERS.items() if p.get("NoEcho")}
    assert {"DatabaseUrl", "SupabaseJwtSecret"} <= secret_parameters
    for name in FUNCTIONS:
        variables = environment(name)
        assert "DATABASE_URL" not in variables and "SUPABASE_JWT_SECRET" not in variables, name
        for variable, value in variables.items():
            assert value not in [{"Ref": p} for p in secret_parameters], (name, variable)
        assert variables["DATABASE_URL_SECRET_ARN"] == {"Ref": "DatabaseUrlSecret"}, name
        readable = [r for s in statements(name) for r in as_list(s["Resource"])]
        assert {"Ref": "DatabaseUrlSecret"} in readable, name
    for name in ("AdminApi", "WebsiteSync"):
        assert environment(name)["SUPABASE_JWT_SECRET_ARN"] == {
            "Fn::If": ["HasJwtSecret", {"Ref": "SupabaseJwtSecretValue"}, ""]
        }
    assert RESOURCES["DatabaseUrlSecret"]["Properties"]["SecretString"] == {"Ref": "DatabaseUrl"}


def test_a_template_without_any_way_to_verify_tokens_is_refused() -> None:
    [assertion] = TEMPLATE["Rules"]["SupabaseTokensCanBeVerified"]["Assertions"]
    assert assertion["Assert"] == {
        "Fn::Not": [
            {
                "Fn::And": [
                    {"Fn::Equals": [{"Ref": "SupabaseJwksUrl"}, ""]},
                    {"Fn::Equals": [{"Ref": "SupabaseJwtSecret"}, ""]},
                ]
            }
        ]
    }


def test_each_stage_has_secrets_of_its_own() -> None:
    """A test stack in the account must not read or overwrite production's webhook secrets or
    Dynamics credentials: every secret name, in the functions' settings and in their policies,
    is under the stage's own prefix."""
    for name in FUNCTIONS:
        variables = environment(name)
        for variable, prefix in (
            ("SOURCE_SECRET_PREFIX", SOURCE_SECRETS),
            ("DYNAMICS_SECRET_PREFIX", DYNAMICS_SECRETS),
        ):
            if variable in variables:
                assert variables[variable] == {"Fn::Sub": prefix}, (name, variable)
        for statement in statements(name):
            for resource in as_list(statement["Resource"]):
                text = resource.get("Fn::Sub", "") if isinstance(resource, dict) else resource
                if ":secret:" in text:
                    assert text.split(":secret:")[1] in (
                        f"{SOURCE_SECRETS}*",
                        f"{DYNAMICS_SECRETS}*",
                    ), (name, text)
    assert not {"SourceSecretPrefix", "DynamicsSecretPrefix"} & set(TEMPLATE["Parameters"])


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


def test_the_webhook_route_has_a_throttle_of_its_own() -> None:
    [event] = FUNCTIONS["WebhookIngest"]["Events"].values()
    settings = event["Properties"]["RouteSettings"]
    assert settings == {
        "ThrottlingRateLimit": {"Ref": "WebhookRateLimit"},
        "ThrottlingBurstLimit": {"Ref": "WebhookBurstLimit"},
    }
    api = RESOURCES["HttpApi"]["Properties"]["DefaultRouteSettings"]
    assert PARAMETERS["WebhookRateLimit"]["Default"] < api["ThrottlingRateLimit"]


@pytest.mark.parametrize("kind", ["AWS::SQS::Queue", "AWS::Logs::LogGroup", "AWS::KMS::Key"])
def test_queues_logs_and_keys_outlive_the_stack(kind: str) -> None:
    """A `sam delete` (or a replacement) must not throw away parked events or the logs."""
    found = {name: r for name, r in RESOURCES.items() if r["Type"] == kind}
    assert found
    for name, resource in found.items():
        assert resource.get("DeletionPolicy") == "Retain", name
        assert resource.get("UpdateReplacePolicy") == "Retain", name


def test_the_alarms_may_use_the_on_call_topics_key() -> None:
    """An alarm publishing to a topic encrypted with the AWS-managed alias/aws/sns key is refused
    by KMS (that key's policy cannot name CloudWatch): nobody would ever be paged."""
    topic = RESOURCES["OnCallTopic"]["Properties"]
    assert topic["KmsMasterKeyId"] == {"Ref": "OnCallTopicKey"}
    key = RESOURCES["OnCallTopicKey"]["Properties"]
    assert key["EnableKeyRotation"] is True
    [alarms] = [
        s
        for s in key["KeyPolicy"]["Statement"]
        if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"
    ]
    assert set(alarms["Action"]) == {"kms:Decrypt", "kms:GenerateDataKey"}
    # Only this stack's alarms, of this account (the confused deputy).
    pattern = alarms["Condition"]["ArnLike"]["aws:SourceArn"]["Fn::Sub"]
    assert pattern.endswith(":alarm:portal-sync-${Stage}-*")
    assert alarms["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    for name, props in ALARMS.items():
        assert props["AlarmName"]["Fn::Sub"].startswith("portal-sync-${Stage}-"), name


def test_the_functions_that_publish_to_on_call_may_use_its_key() -> None:
    publishers = [name for name in FUNCTIONS if grants(name, "sns:Publish")]
    assert publishers == ["WebsiteSync"]
    assert grants("WebsiteSync", "sns:Publish") == [{"Ref": "OnCallTopic"}]
    for action in ("kms:Decrypt", "kms:GenerateDataKey"):
        assert grants("WebsiteSync", action) == [{"Fn::GetAtt": ["OnCallTopicKey", "Arn"]}]


def test_the_queue_alarms_of_the_contract_exist() -> None:
    """docs/runbook.md: dead-letter queue not empty, oldest event older than 60 s."""
    dead_letters = find_alarm(
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible"), "EventDeadLetterQueue"
    )
    assert (dead_letters["Threshold"], dead_letters["ComparisonOperator"]) == (
        0,
        "GreaterThanThreshold",
    )
    oldest = find_alarm(("AWS/SQS", "ApproximateAgeOfOldestMessage"), "EventQueue")
    assert oldest["Threshold"] == 60
    [age] = [q["MetricStat"] for q in oldest["Metrics"] if q["Id"] == "age"]
    assert age["Period"] == 60 and age["Stat"] == "Maximum"


def test_one_event_waiting_for_its_retry_is_no_backlog() -> None:
    """A failing event is retried with back-off for hours: its age alone must not page. The
    age counts while 5 or more events wait, in 3 of 5 minutes."""
    oldest = find_alarm(("AWS/SQS", "ApproximateAgeOfOldestMessage"), "EventQueue")
    [backlog] = [q for q in oldest["Metrics"] if q.get("ReturnData")]
    assert backlog["Expression"] == "IF(waiting >= 5, age, 0)"
    [waiting] = [q["MetricStat"] for q in oldest["Metrics"] if q["Id"] == "waiting"]
    assert waiting["Metric"]["MetricName"] == "ApproximateNumberOfMessagesVisible"
    assert (oldest["EvaluationPeriods"], oldest["DatapointsToAlarm"]) == (5, 3)


def test_one_5xx_pages_nobody() -> None:
    server_errors = find_alarm(("AWS/ApiGateway", "5xx"), "HttpApi")
    assert server_errors["Threshold"] >= 5
    assert (server_errors["EvaluationPeriods"], server_errors["DatapointsToAlarm"]) == (3, 2)


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
    # Scanners' requests (no such source, no signature) are left out of both sides.
    assert "100 * (rejected - scanners) / (received - scanners)" in expression
    assert "received - scanners >= 20" in expression
    [scanners] = [q for q in rejection["Metrics"] if q["Id"] == "scanners"]
    left_out = {
        q["MetricStat"]["Metric"]["MetricName"]
        for q in rejection["Metrics"]
        if q["Id"] in scanners["Expression"] and "MetricStat" in q
    }
    assert left_out == {"WebhookRejected_UNKNOWN_SOURCE", "WebhookRejected_MISSING_SIGNATURE"}
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


def test_failed_website_sync_executions_alert_on_call() -> None:
    """docs/runbook.md: website-sync executions failed."""
    alarm = find_alarm(("AWS/States", "ExecutionsFailed"), "WebsiteVisibilityStateMachine")
    assert alarm["Dimensions"] == [
        {"Name": "StateMachineArn", "Value": {"Ref": "WebsiteVisibilityStateMachine"}}
    ]
    assert (alarm["Threshold"], alarm["ComparisonOperator"]) == (0, "GreaterThanThreshold")
    assert alarm["AlarmActions"] == [{"Ref": "OnCallTopic"}]


# -- the website visibility state machine ------------------------------------------------------

STATE_MACHINE = RESOURCES["WebsiteVisibilityStateMachine"]["Properties"]
PLACEHOLDER = re.compile(r"\$\{(\w+)\}")


def substitution_samples() -> dict[str, Any]:
    """A value per DefinitionSubstitutions key: a Number parameter's default, else a marker."""
    samples = {}
    for key, value in STATE_MACHINE["DefinitionSubstitutions"].items():
        ref = value.get("Ref") if isinstance(value, dict) else None
        if ref in PARAMETERS and PARAMETERS[ref]["Type"] == "Number":
            samples[key] = PARAMETERS[ref]["Default"]
        else:
            samples[key] = f"<{key}>"
    return samples


def state_machine_definition() -> dict[str, Any]:
    """The definition as deployed: SAM substitutes the template's values, then it is JSON."""
    text = (ROOT / STATE_MACHINE["DefinitionUri"]).read_text()
    samples = substitution_samples()
    substituted = PLACEHOLDER.sub(lambda m: str(samples[m.group(1)]), text)
    definition: dict[str, Any] = json.loads(substituted)
    return definition


def test_every_placeholder_of_the_definition_has_a_value_in_the_template() -> None:
    """A placeholder without a value is deployed as literal text (and breaks the JSON)."""
    used = set(PLACEHOLDER.findall((ROOT / STATE_MACHINE["DefinitionUri"]).read_text()))
    assert used == set(STATE_MACHINE["DefinitionSubstitutions"])
    # The published alias, not $LATEST: with SnapStart on, only versions are restored.
    assert STATE_MACHINE["DefinitionSubstitutions"]["WebsiteSyncFunctionArn"] == {
        "Ref": "WebsiteSync.Alias"
    }


def test_routine_retries_are_statuses_the_state_machine_waits_on_not_lambda_errors() -> None:
    """A Dynamics 429 or 503 must not count in AWS/Lambda Errors (website-sync-errors pages):
    the task answers `retry` with the wait, a Choice branches on it and a Wait state waits."""
    samples = substitution_samples()
    states = state_machine_definition()["States"]
    apply = states["ApplyVisibility"]
    assert apply["Parameters"]["FunctionName"] == "<WebsiteSyncFunctionArn>"
    assert apply["ResultSelector"]["status.$"] == "$.Payload.status"
    assert apply["ResultSelector"]["wait_seconds.$"] == "$.Payload.wait_seconds"
    # Only Lambda's own service errors are retried by Step Functions, never an error of ours.
    retried = {e for r in apply["Retry"] for e in r["ErrorEquals"]}
    assert all(e.startswith("Lambda.") for e in retried)
    assert {RETRYABLE_ERROR, THROTTLED_ERROR, REJECTED_ERROR}.isdisjoint(retried)
    # Numbers after substitution, not strings: Step Functions refuses "5".
    assert all(isinstance(r["IntervalSeconds"], int) for r in apply["Retry"])
    assert all(r["IntervalSeconds"] == samples["RetryIntervalSeconds"] for r in apply["Retry"])
    outcome = states[apply["Next"]]
    assert outcome["Type"] == "Choice"
    branches = {c["StringEquals"]: c["Next"] for c in outcome["Choices"]}
    assert branches["failed"] == apply["Catch"][0]["Next"] == "RecordFailure"
    back_off = states[branches["retry"]]
    assert back_off == {
        "Type": "Wait",
        "SecondsPath": "$.result.wait_seconds",
        "Next": "ApplyVisibility",
    }
    assert states[outcome["Default"]]["Type"] == "Succeed"


def test_the_function_gets_the_retry_policy_of_the_parameters() -> None:
    variables = environment("WebsiteSync")
    assert variables["VISIBILITY_MAX_RETRIES"] == {"Ref": "VisibilityMaxRetries"}
    assert variables["VISIBILITY_RETRY_INTERVAL_SECONDS"] == {
        "Ref": "VisibilityRetryIntervalSeconds"
    }


def test_a_final_failure_is_recorded_and_the_execution_pages_nobody_itself() -> None:
    states = state_machine_definition()["States"]
    [catch] = states["ApplyVisibility"]["Catch"]
    assert catch["ErrorEquals"] == ["States.ALL"]
    record = states[catch["Next"]]
    assert record["Parameters"]["Payload"]["task"] == "record_visibility_failure"
    assert record["Parameters"]["FunctionName"] == "<WebsiteSyncFunctionArn>"
    # Recorded, the execution ends: the change is redelivered by the schedule, and on-call
    # hears of the organisation's outage from the schedule, once (not per mentor, and not
    # through the website-visibility-failed alarm, which counts failed executions).
    assert record.get("End") is True and "Next" not in record
    assert all(state.get("Type") != "Fail" for state in states.values())
    assert all("sns" not in str(state.get("Resource", "")) for state in states.values())
    # The execution's role may do exactly that: invoke the function.
    assert STATE_MACHINE["Policies"][0] == {
        "LambdaInvokePolicy": {"FunctionName": {"Ref": "WebsiteSync"}}
    }
    assert all("SNSPublishMessagePolicy" not in p for p in STATE_MACHINE["Policies"])


def test_the_website_sync_schedule_may_publish_outage_notices_to_the_on_call_topic() -> None:
    website_sync = RESOURCES["WebsiteSync"]["Properties"]
    assert website_sync["Environment"]["Variables"]["ON_CALL_TOPIC_ARN"] == {"Ref": "OnCallTopic"}
    assert grants("WebsiteSync", "sns:Publish") == [{"Ref": "OnCallTopic"}]


# -- the dashboard -----------------------------------------------------------------------------

DASHBOARD = RESOURCES["Dashboard"]["Properties"]
SUB_VARIABLE = re.compile(r"\$\{([^}]+)\}")


def dashboard() -> dict[str, Any]:
    """The body CloudFormation deploys: Fn::Sub resolved with markers, then JSON."""
    body = DASHBOARD["DashboardBody"]["Fn::Sub"]

    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name.startswith("AWS::"):
            return f"<{name}>"
        resource = name.split(".")[0]
        assert resource in RESOURCES or name in PARAMETERS, f"${{{name}}} names nothing"
        if name in PARAMETERS and PARAMETERS[name]["Type"] == "Number":
            return str(PARAMETERS[name]["Default"])
        return f"<{name}>"

    loaded: dict[str, Any] = json.loads(SUB_VARIABLE.sub(value, body))
    return loaded


def dashboard_metrics() -> list[tuple[str, str, dict[str, str]]]:
    """(namespace, name, dimensions) of every metric line, with "." shorthand expanded."""
    found = []
    for widget in dashboard()["widgets"]:
        previous: list[Any] = []
        for line in widget["properties"].get("metrics", []):
            fields = [f for f in line if not isinstance(f, dict)]
            fields = [previous[i] if f == "." else f for i, f in enumerate(fields)]
            previous = fields
            if len(fields) >= 2:
                dims = dict(zip(fields[2::2], fields[3::2], strict=True))
                found.append((fields[0], fields[1], dims))
    return found


def emitted_metric_names() -> set[str]:
    """Every EMF metric name the code can emit, read from its `add_metric(name=...)` calls.

    Names built at run time are expanded over the values their variable can take; a new kind
    of dynamic name fails here until this test learns its values.
    """
    domains: dict[str, list[Any]] = {
        "reason": [
            value
            for arg in typing.get_args(Receipt.model_fields["reason"].annotation)
            for value in (
                list(arg)
                if isinstance(arg, type) and issubclass(arg, Enum)
                else typing.get_args(arg)
            )
        ],
        "status": list(LogStatus),
    }
    names: set[str] = set()
    sources = [*(ROOT / "functions").rglob("*.py"), *(ROOT / "layers/portal_sync").rglob("*.py")]
    for path in sources:
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef | ast.Module):
                continue
            for call in ast.walk(function):
                if not (
                    isinstance(call, ast.Call) and getattr(call.func, "attr", "") == "add_metric"
                ):
                    continue
                [expr] = [k.value for k in call.keywords if k.arg == "name"]
                if isinstance(expr, ast.Name):  # name = ...; add_metric(name=name)
                    [expr] = [
                        a.value
                        for a in ast.walk(function)
                        if isinstance(a, ast.Assign)
                        and any(getattr(t, "id", None) == expr.id for t in a.targets)
                    ]
                free = {n.id for n in ast.walk(expr) if isinstance(n, ast.Name)} - {"LogStatus"}
                assert free <= set(domains), f"{path}: teach this test the values of {free}"
                code = compile(ast.Expression(expr), str(path), "eval")
                for values in itertools.product(*(domains[v] for v in sorted(free))):
                    scope = {"LogStatus": LogStatus, **dict(zip(sorted(free), values, strict=True))}
                    names.add(eval(code, scope))  # noqa: S307 - the repository's own code
    return names


def test_the_dashboard_body_is_json_naming_only_real_resources() -> None:
    widgets = dashboard()["widgets"]
    assert all(w["type"] in {"metric", "text", "alarm"} for w in widgets)
    for widget in widgets:
        assert widget["x"] + widget["width"] <= 24


def test_the_dashboard_shows_every_metric_the_code_emits_and_no_other() -> None:
    """A renamed metric would leave a dashboard line empty; a typo, a line that never fills."""
    emitted = emitted_metric_names()
    assert {"WebhookReceived", "WebhookRejected", "WebhookRejected_SIGNATURE_MISMATCH"} <= emitted
    assert {"EventSuccess", "EventSkipped", "EventFailed", "EventRetried"} <= emitted
    ours = [(name, dims) for ns, name, dims in dashboard_metrics() if ns == "PortalSync"]
    assert {name for name, _ in ours} == emitted
    # EMF metrics carry exactly the Powertools service dimension.
    assert all(dims == {"service": "portal-sync"} for _, dims in ours)


def test_the_dashboard_shows_the_queue_the_website_sync_and_every_function() -> None:
    metrics = {(ns, name, tuple(sorted(dims.items()))) for ns, name, dims in dashboard_metrics()}
    queue = (("QueueName", "<EventQueue.QueueName>"),)
    dead_letters = (("QueueName", "<EventDeadLetterQueue.QueueName>"),)
    machine = (("StateMachineArn", "<WebsiteVisibilityStateMachine>"),)
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", queue) in metrics
    assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue) in metrics
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible", dead_letters) in metrics
    assert ("AWS/States", "ExecutionsSucceeded", machine) in metrics
    assert ("AWS/States", "ExecutionsFailed", machine) in metrics
    for function in FUNCTIONS:
        for name in ("Errors", "Throttles", "Duration"):
            assert ("AWS/Lambda", name, (("FunctionName", f"<{function}>"),)) in metrics


def test_the_dashboard_shows_the_state_of_every_alarm() -> None:
    [widget] = [w for w in dashboard()["widgets"] if w["type"] == "alarm"]
    assert sorted(widget["properties"]["alarms"]) == sorted(f"<{name}.Arn>" for name in ALARMS)


# -- the deployment guide and the runbook ------------------------------------------------------


def test_the_deployment_guide_explains_every_parameter() -> None:
    guide = (ROOT / "docs" / "deploy.md").read_text()
    rows = re.findall(r"^\| (`.+?`) \|", guide, re.MULTILINE)
    explained = {name for row in rows for name in re.findall(r"`(\w+)`", row)}
    assert set(PARAMETERS) <= explained


def test_the_runbook_says_what_to_do_for_every_alarm() -> None:
    guide = (ROOT / "docs" / "runbook.md").read_text()
    for name, props in ALARMS.items():
        suffix = props["AlarmName"]["Fn::Sub"].removeprefix("portal-sync-${Stage}-")
        assert f"`{suffix}`" in guide, name


def test_every_accepted_checkov_finding_says_why() -> None:
    """`make deploy-check` fails on any checkov finding not in .checkov.yaml; each one there is
    preceded by the reason it is accepted."""
    lines = (ROOT / ".checkov.yaml").read_text().splitlines()
    skipped = [i for i, line in enumerate(lines) if line.strip().startswith("- CKV_")]
    assert skipped
    for index in skipped:
        assert lines[index - 1].strip().startswith("#"), lines[index]


# -- the admin console (docs/deploy.md, "Console") ----------------------------------------------

CONSOLE_RESOURCES = {
    "ConsoleSiteBucket": "AWS::S3::Bucket",
    "ConsoleSiteBucketPolicy": "AWS::S3::BucketPolicy",
    "ConsoleOriginAccessControl": "AWS::CloudFront::OriginAccessControl",
    "ConsoleHeaders": "AWS::CloudFront::ResponseHeadersPolicy",
    "ConsoleDistribution": "AWS::CloudFront::Distribution",
}
API_ORIGIN = "https://${HttpApi}.execute-api.${AWS::Region}.${AWS::URLSuffix}"


def test_the_console_is_a_part_the_stack_may_leave_out() -> None:
    assert set(PARAMETERS["Console"]["AllowedValues"]) == {"Deployed", "None"}
    assert TEMPLATE["Conditions"]["HasConsole"] == {"Fn::Equals": [{"Ref": "Console"}, "Deployed"]}
    found = {name: r["Type"] for name, r in RESOURCES.items() if name.startswith("Console")}
    assert found == CONSOLE_RESOURCES
    assert all(RESOURCES[name]["Condition"] == "HasConsole" for name in found)
    outputs = TEMPLATE["Outputs"]
    assert outputs["ConsoleUrl"]["Value"] == {
        "Fn::Sub": "https://${ConsoleDistribution.DomainName}/"
    }
    assert outputs["ConsoleBucket"]["Value"] == {"Ref": "ConsoleSiteBucket"}
    for name in ("ConsoleUrl", "ConsoleBucket", "ConsoleDistributionId", "ConsoleSupabaseUrl"):
        assert outputs[name]["Condition"] == "HasConsole", name
    # A console that cannot sign anybody in is refused at deploy time.
    rule = TEMPLATE["Rules"]["ConsoleKnowsItsSupabaseProject"]
    assert rule["RuleCondition"] == {"Fn::Equals": [{"Ref": "Console"}, "Deployed"]}
    [assertion] = rule["Assertions"]
    assert {"Fn::Equals": [{"Ref": "SupabaseUrl"}, ""]} in assertion["Assert"]["Fn::Not"][0][
        "Fn::Or"
    ]


def test_the_console_bucket_is_private_and_read_by_its_distribution_only() -> None:
    props = RESOURCES["ConsoleSiteBucket"]["Properties"]
    assert props["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert props["OwnershipControls"] == {"Rules": [{"ObjectOwnership": "BucketOwnerEnforced"}]}
    assert "WebsiteConfiguration" not in props and "AccessControl" not in props
    [rule] = props["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"

    policy = RESOURCES["ConsoleSiteBucketPolicy"]["Properties"]
    assert policy["Bucket"] == {"Ref": "ConsoleSiteBucket"}
    allows = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert allows == [
        {
            "Sid": "ReadByTheConsoleDistributionOnly",
            "Effect": "Allow",
            "Principal": {"Service": "cloudfront.amazonaws.com"},
            "Action": "s3:GetObject",
            "Resource": {"Fn::Sub": "${ConsoleSiteBucket.Arn}/*"},
            "Condition": {
                "StringEquals": {
                    "AWS:SourceArn": {
                        "Fn::Sub": "arn:${AWS::Partition}:cloudfront::${AWS::AccountId}"
                        ":distribution/${ConsoleDistribution}"
                    }
                }
            },
        }
    ]
    [deny] = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_cloudfront_reads_the_bucket_through_origin_access_control() -> None:
    oac = RESOURCES["ConsoleOriginAccessControl"]["Properties"]["OriginAccessControlConfig"]
    assert oac["OriginAccessControlOriginType"] == "s3"
    assert (oac["SigningBehavior"], oac["SigningProtocol"]) == ("always", "sigv4")
    config = RESOURCES["ConsoleDistribution"]["Properties"]["DistributionConfig"]
    [origin] = config["Origins"]
    assert origin["DomainName"] == {"Fn::GetAtt": ["ConsoleSiteBucket", "RegionalDomainName"]}
    assert origin["OriginAccessControlId"] == {"Fn::GetAtt": ["ConsoleOriginAccessControl", "Id"]}
    # No legacy origin access identity.
    assert origin["S3OriginConfig"] == {"OriginAccessIdentity": ""}
    assert config["DefaultRootObject"] == "index.html"
    behaviour = config["DefaultCacheBehavior"]
    assert behaviour["TargetOriginId"] == origin["Id"]
    assert behaviour["ViewerProtocolPolicy"] == "redirect-to-https"
    assert behaviour["AllowedMethods"] == ["GET", "HEAD"]
    assert behaviour["ResponseHeadersPolicyId"] == {"Ref": "ConsoleHeaders"}


def test_cloudfront_sends_the_local_servers_csp_with_the_api_and_supabase_origins() -> None:
    from portal_sync_dev.local.system import CONSOLE_CSP, console_csp

    headers = RESOURCES["ConsoleHeaders"]["Properties"]["ResponseHeadersPolicyConfig"][
        "SecurityHeadersConfig"
    ]
    assert headers["ContentSecurityPolicy"] == {
        "ContentSecurityPolicy": {"Fn::Sub": console_csp(API_ORIGIN, "${SupabaseUrl}")},
        "Override": True,
    }
    # The API's origin is the one the console's config.json names (the ApiBaseUrl output).
    assert TEMPLATE["Outputs"]["ApiBaseUrl"]["Value"] == {"Fn::Sub": API_ORIGIN}
    assert console_csp() == CONSOLE_CSP
    assert "frame-ancestors 'none'" in CONSOLE_CSP and "script-src 'self';" in CONSOLE_CSP
    hsts = headers["StrictTransportSecurity"]
    assert hsts["AccessControlMaxAgeSec"] >= 365 * 24 * 3600
    assert hsts["IncludeSubdomains"] is True and hsts["Override"] is True
    assert headers["ContentTypeOptions"] == {"Override": True}
    assert headers["FrameOptions"] == {"FrameOption": "DENY", "Override": True}
    # No path: a URL with one would not be an origin in connect-src.
    assert re.fullmatch(PARAMETERS["SupabaseUrl"]["AllowedPattern"], "https://abc.supabase.co")
    assert not re.fullmatch(PARAMETERS["SupabaseUrl"]["AllowedPattern"], "https://a.co/auth/v1")


def test_the_console_deploy_step_reads_outputs_the_template_has() -> None:
    from portal_sync_dev.console_deploy import ConsoleStack

    stack = ConsoleStack.from_outputs({name: f"<{name}>" for name in TEMPLATE["Outputs"]})
    assert (stack.bucket, stack.distribution_id) == ("<ConsoleBucket>", "<ConsoleDistributionId>")
    assert stack.config() == {
        "mode": "supabase",
        "api_base_url": "<ApiBaseUrl>",
        "supabase_url": "<ConsoleSupabaseUrl>",
        "supabase_anon_key": "<ConsoleSupabaseAnonKey>",
    }
    assert not PARAMETERS["SupabaseAnonKey"].get("NoEcho")  # public: every browser has it
