"""`make deploy-console`: the admin console's files into the stack's console bucket, behind its
CloudFront distribution (docs/deploy.md, "Console").

The files are what the local server serves (tools/portal_sync_dev/local/lambda_http.py,
StaticSite): console/ without its npm tooling, hidden files or unknown types, plus supabase-js's
browser bundle from the lockfile's install as `vendor/supabase.js`, each with its content type
and `Cache-Control: no-cache` (the files' names carry no version: browsers revalidate, and
CloudFront answers 304). `config.json` is written from the stack's outputs, public values only:
the API's URL, the Supabase project's URL and its anon key. Objects of an earlier deploy that
are no longer served are deleted (the bucket keeps their versions for 30 days), and the
distribution's cache is invalidated.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from portal_sync_dev import ROOT
from portal_sync_dev.local.lambda_http import STATIC_TYPES

CONSOLE = ROOT / "console"
# The console's npm tooling (axe-core, prettier, supabase-js's package): not the site.
TOOLING = ("node_modules", "package.json", "package-lock.json")
# supabase-js's browser bundle (UMD), served beside the console under this name.
SUPABASE_JS = "vendor/supabase.js"
SUPABASE_JS_SOURCE = "node_modules/@supabase/supabase-js/dist/umd/supabase.js"
CACHE_CONTROL = "no-cache"


class ConsoleDeployError(Exception):
    """Something the person deploying must fix first; the message says what."""


@dataclass(frozen=True)
class ConsoleStack:
    """What the deploy needs from the stack's outputs (template.yaml, Outputs)."""

    bucket: str
    api_base_url: str
    supabase_url: str
    supabase_anon_key: str
    distribution_id: str | None = None

    @classmethod
    def from_outputs(cls, outputs: dict[str, str]) -> ConsoleStack:
        if "ConsoleBucket" not in outputs:
            raise ConsoleDeployError(
                "the stack has no console (its Console parameter is None): deploy it with "
                "Console=Deployed, SupabaseUrl and SupabaseAnonKey first"
            )
        missing = [
            name
            for name in ("ApiBaseUrl", "ConsoleSupabaseUrl", "ConsoleSupabaseAnonKey")
            if not outputs.get(name)
        ]
        if missing:
            raise ConsoleDeployError(f"the stack's outputs lack {', '.join(missing)}")
        return cls(
            bucket=outputs["ConsoleBucket"],
            api_base_url=outputs["ApiBaseUrl"].rstrip("/"),
            supabase_url=outputs["ConsoleSupabaseUrl"].rstrip("/"),
            supabase_anon_key=outputs["ConsoleSupabaseAnonKey"],
            distribution_id=outputs.get("ConsoleDistributionId") or None,
        )

    def config(self) -> dict[str, str]:
        """The console's config.json (docs/console.md, "Signing in")."""
        return {
            "mode": "supabase",
            "api_base_url": self.api_base_url,
            "supabase_url": self.supabase_url,
            "supabase_anon_key": self.supabase_anon_key,
        }


def served_files(console: Path = CONSOLE, *, bundle_required: bool = True) -> dict[str, Path]:
    """The console's files by the name they are served under (`bundle_required` False: without
    supabase-js's bundle when `npm ci` has not installed it)."""
    files: dict[str, Path] = {}
    for path in sorted(console.rglob("*")):
        name = path.relative_to(console)
        if (
            not path.is_file()
            or name.parts[0] in TOOLING
            or any(part.startswith(".") for part in name.parts)
            or path.suffix not in STATIC_TYPES
            or path.is_symlink()
        ):
            continue
        files[name.as_posix()] = path
    # Written from the stack's outputs instead (a local one would name `make run`'s identities).
    files.pop("config.json", None)
    bundle = console / SUPABASE_JS_SOURCE
    if not bundle.is_file():
        if not bundle_required:
            return files
        raise ConsoleDeployError(
            f"{bundle.relative_to(console.parent)} is missing: run `npm ci` in console/ "
            "(tools/browser/install-axe.sh) first"
        )
    files[SUPABASE_JS] = bundle
    return files


def stack_outputs(cloudformation: Any, stack_name: str) -> dict[str, str]:
    [stack] = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    return {output["OutputKey"]: output["OutputValue"] for output in stack.get("Outputs", [])}


def deploy(
    stack: ConsoleStack, s3: Any, cloudfront: Any | None, console: Path = CONSOLE
) -> list[str]:
    """Uploads the console; answers the keys written, index.html last (a page loaded meanwhile
    finds every file it names)."""
    uploads: list[tuple[str, bytes]] = [
        (name, path.read_bytes()) for name, path in served_files(console).items()
    ]
    uploads.append(("config.json", json.dumps(stack.config(), indent=2).encode()))
    uploads.sort(key=lambda upload: upload[0] == "index.html")
    for key, body in uploads:
        s3.put_object(
            Bucket=stack.bucket,
            Key=key,
            Body=body,
            ContentType=STATIC_TYPES[Path(key).suffix],
            CacheControl=CACHE_CONTROL,
        )
    written = {key for key, _ in uploads}
    stale = [
        item["Key"]
        for page in s3.get_paginator("list_objects_v2").paginate(Bucket=stack.bucket)
        for item in page.get("Contents", [])
        if item["Key"] not in written
    ]
    for start in range(0, len(stale), 1000):
        s3.delete_objects(
            Bucket=stack.bucket,
            Delete={"Objects": [{"Key": key} for key in stale[start : start + 1000]]},
        )
    if cloudfront is not None and stack.distribution_id:
        cloudfront.create_invalidation(
            DistributionId=stack.distribution_id,
            InvalidationBatch={
                "Paths": {"Quantity": 1, "Items": ["/*"]},
                "CallerReference": f"console-deploy-{time.time_ns()}",
            },
        )
    return [key for key, _ in uploads]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="deploy-console",
        description="Uploads the admin console to the console bucket of a deployed stack.",
    )
    parser.add_argument("--stack", required=True, help="the stack's name, e.g. portal-sync-prod")
    parser.add_argument("--region", help="its region (default: the AWS configuration's)")
    parser.add_argument(
        "--console", type=Path, default=CONSOLE, help="the console's folder (default: console/)"
    )
    args = parser.parse_args(argv)

    import boto3

    session = boto3.session.Session(region_name=args.region)
    try:
        stack = ConsoleStack.from_outputs(
            stack_outputs(session.client("cloudformation"), args.stack)
        )
        keys = deploy(stack, session.client("s3"), session.client("cloudfront"), args.console)
    except ConsoleDeployError as error:
        print(f"deploy-console: {error}", file=sys.stderr)
        return 2
    print(
        f"uploaded {len(keys)} files to s3://{stack.bucket}/ (config.json for {stack.api_base_url})"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
