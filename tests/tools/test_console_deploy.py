"""`make deploy-console` (tools/portal_sync_dev/console_deploy.py) against moto's S3 and
CloudFront: the console's served files and nothing else, their content types and cache headers,
a config.json of the stack's public outputs, supabase-js's bundle beside them
(docs/deploy.md, "Console")."""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from portal_sync_dev.console_deploy import (
    CONSOLE,
    SUPABASE_JS_SOURCE,
    ConsoleDeployError,
    ConsoleStack,
    deploy,
    main,
)
from portal_sync_dev.local.postgres import free_port

BUNDLE = b"var supabase=function(){return{createClient:function(){}}}();"
OUTPUTS = {
    "ApiBaseUrl": "https://abc123.execute-api.eu-north-1.amazonaws.com",
    "ConsoleBucket": "portal-sync-console",
    "ConsoleSupabaseUrl": "https://ref.supabase.co",
    "ConsoleSupabaseAnonKey": "sb_publishable_anon",
    "ConsoleUrl": "https://d111.cloudfront.net/",
}


@pytest.fixture
def console(tmp_path: Path) -> Path:
    """The real console/ as a checkout has it after `npm ci`, with what must not be served."""
    copy = tmp_path / "console"
    shutil.copytree(CONSOLE, copy, ignore=shutil.ignore_patterns("node_modules"))
    bundle = copy / SUPABASE_JS_SOURCE
    bundle.parent.mkdir(parents=True)
    bundle.write_bytes(BUNDLE)
    (copy / "node_modules" / "axe-core").mkdir()
    (copy / "node_modules" / "axe-core" / "axe.min.js").write_text("axe")
    (copy / ".env.js").write_text("secret")
    (copy / "components" / ".draft.js").write_text("draft")
    (copy / "NOTES.md").write_text("notes")
    (copy / "config.json").write_text('{"mode": "local", "identities": []}')
    return copy


@pytest.fixture
def aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """moto's server on a port of its own (moto's in-process mock would reset the emulated
    services under a local system another test may be running), every boto3 client pointed
    at it as `make run` points them."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        if name not in os.environ:
            monkeypatch.setenv(name, "testing")
    # The emulated services outlive the server (they are the process's): names of their own.
    bucket = f"portal-sync-console-{uuid.uuid4().hex[:12]}"
    s3 = boto3.client(
        "s3", region_name="eu-north-1", config=Config(s3={"addressing_style": "path"})
    )
    s3.create_bucket(Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": "eu-north-1"})
    cloudfront = boto3.client("cloudfront", region_name="us-east-1")
    distribution = cloudfront.create_distribution(
        DistributionConfig={
            "CallerReference": f"console-{uuid.uuid4()}",
            "Comment": "console",
            "Enabled": True,
            "DefaultRootObject": "index.html",
            "Origins": {
                "Quantity": 1,
                "Items": [
                    {
                        "Id": "console",
                        "DomainName": f"{bucket}.s3.eu-north-1.amazonaws.com",
                        "S3OriginConfig": {"OriginAccessIdentity": ""},
                    }
                ],
            },
            "DefaultCacheBehavior": {
                "TargetOriginId": "console",
                "ViewerProtocolPolicy": "redirect-to-https",
                "MinTTL": 0,
                "ForwardedValues": {"QueryString": False, "Cookies": {"Forward": "none"}},
            },
        }
    )["Distribution"]
    yield {
        "s3": s3,
        "cloudfront": cloudfront,
        "bucket": bucket,
        "outputs": {**OUTPUTS, "ConsoleBucket": bucket},
        "distribution_id": distribution["Id"],
    }
    server.stop()


def objects(aws: dict[str, Any]) -> dict[str, dict[str, Any]]:
    s3, bucket = aws["s3"], aws["bucket"]
    listed = s3.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {item["Key"]: s3.get_object(Bucket=bucket, Key=item["Key"]) for item in listed}


def test_the_served_files_and_a_config_of_the_stacks_outputs_are_uploaded_and_nothing_else(
    console: Path, aws: dict[str, Any]
) -> None:
    s3 = aws["s3"]
    s3.put_object(Bucket=aws["bucket"], Key="components/removed-screen.js", Body=b"old")
    stack = ConsoleStack.from_outputs(
        {**aws["outputs"], "ConsoleDistributionId": aws["distribution_id"]}
    )

    written = deploy(stack, s3, aws["cloudfront"], console)

    uploaded = objects(aws)
    scripts = {
        p.relative_to(console).as_posix()
        for folder in ("components", "lib", "strings")
        for p in (console / folder).glob("*.js")
        if not p.name.startswith(".")
    }
    assert len(scripts) > 10
    assert set(uploaded) == {
        "index.html",
        "app.js",
        "styles.css",
        "icon.svg",
        "config.json",
        "vendor/supabase.js",
        *scripts,
    }
    assert written[-1] == "index.html" and set(written) == set(uploaded)
    types = {key: item["ContentType"] for key, item in uploaded.items()}
    assert types["index.html"] == "text/html; charset=utf-8"
    assert types["styles.css"] == "text/css; charset=utf-8"
    assert types["icon.svg"] == "image/svg+xml"
    assert types["config.json"] == "application/json"
    assert {types[key] for key in scripts | {"app.js", "vendor/supabase.js"}} == {
        "text/javascript; charset=utf-8"
    }
    assert {item["CacheControl"] for item in uploaded.values()} == {"no-cache"}

    assert json.loads(uploaded["config.json"]["Body"].read()) == {
        "mode": "supabase",
        "api_base_url": OUTPUTS["ApiBaseUrl"],
        "supabase_url": OUTPUTS["ConsoleSupabaseUrl"],
        "supabase_anon_key": OUTPUTS["ConsoleSupabaseAnonKey"],
    }
    assert uploaded["vendor/supabase.js"]["Body"].read() == BUNDLE
    assert uploaded["app.js"]["Body"].read() == (console / "app.js").read_bytes()

    invalidations = aws["cloudfront"].list_invalidations(DistributionId=aws["distribution_id"])
    [invalidation] = invalidations["InvalidationList"]["Items"]
    details = aws["cloudfront"].get_invalidation(
        DistributionId=aws["distribution_id"], Id=invalidation["Id"]
    )
    assert details["Invalidation"]["InvalidationBatch"]["Paths"]["Items"] == ["/*"]


def test_without_supabase_js_installed_nothing_is_uploaded(
    console: Path, aws: dict[str, Any]
) -> None:
    (console / SUPABASE_JS_SOURCE).unlink()
    with pytest.raises(ConsoleDeployError, match="npm ci"):
        deploy(ConsoleStack.from_outputs(aws["outputs"]), aws["s3"], None, console)
    assert objects(aws) == {}


def test_a_stack_without_the_console_is_refused_in_words() -> None:
    outputs = {key: value for key, value in OUTPUTS.items() if not key.startswith("Console")}
    with pytest.raises(ConsoleDeployError, match="Console=Deployed"):
        ConsoleStack.from_outputs(outputs)
    with pytest.raises(ConsoleDeployError, match="ConsoleSupabaseAnonKey"):
        ConsoleStack.from_outputs({**OUTPUTS, "ConsoleSupabaseAnonKey": ""})


def test_the_command_reads_the_stacks_outputs(
    console: Path, aws: dict[str, Any], capsys: Any
) -> None:
    """The whole command against moto's CloudFormation: a stack whose outputs name the
    bucket, as the template's do."""
    stack = f"portal-sync-{uuid.uuid4().hex[:8]}"
    template = {
        "Resources": {"Placeholder": {"Type": "AWS::SNS::Topic"}},
        "Outputs": {name: {"Value": value} for name, value in aws["outputs"].items()},
    }
    boto3.client("cloudformation", region_name="eu-north-1").create_stack(
        StackName=stack, TemplateBody=json.dumps(template)
    )
    arguments = ["--stack", stack, "--region", "eu-north-1", "--console", str(console)]
    assert main(arguments) == 0

    assert "config.json" in objects(aws)
    assert f"s3://{aws['bucket']}/" in capsys.readouterr().out
