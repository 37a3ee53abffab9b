"""template.yaml as CloudFormation after SAM's transform, as `sam deploy` submits it, printed as
JSON: `python sam_transform.py '{"SnapStart": "PublishedVersions"}'`.

Run with the deploy-check tool environment's Python (`make deploy-check` installs it): the SAM
translator pins a pydantic other than the functions', so it cannot live in the project's venv.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))

from portal_sync_dev.build import read_template  # noqa: E402  (after the path above)
from samtranslator.translator.transform import transform  # noqa: E402


class NoManagedPolicies:
    """The template names no managed policy (each function has its own role)."""

    def load(self) -> dict[str, str]:
        return {}


def translated(parameters: dict[str, str]) -> dict[str, Any]:
    template = read_template(ROOT / "template.yaml")
    for name, resource in template["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri", "DefinitionUri"):
            if isinstance(props.get(key), str):  # `sam package` uploads them to S3
                props[key] = f"s3://artifacts/{name}"
    os.environ.setdefault("AWS_DEFAULT_REGION", "eu-north-1")
    values = {"DatabaseUrl": "postgresql://x", "SupabaseJwksUrl": "https://x/jwks", **parameters}
    result: dict[str, Any] = transform(template, values, NoManagedPolicies())
    return result


if __name__ == "__main__":
    print(json.dumps(translated(json.loads(sys.argv[1] if len(sys.argv) > 1 else "{}"))))
