"""Settings that are secrets (the database URL, Supabase's HS256 secret), read from Secrets
Manager once per execution environment and kept: template.yaml gives the functions only their
ARNs, since an environment variable is readable by anyone who may read a function's
configuration.

By hand rather than Powertools' parameters utility: that one needs boto3, whose import the
functions avoid on every cold start (adapters/aws/clients.py); the cache is the same idea.
"""

from __future__ import annotations

from functools import cache

from portal_sync.adapters.aws.clients import client


@cache
def secret_string(arn: str) -> str:
    value = client("secretsmanager").get_secret_value(SecretId=arn).get("SecretString")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"the secret {arn} holds no text")
    return value.strip()
