"""Where the integration may send an organisation's Dynamics credentials, and who binds an
organisation to a Dynamics environment (docs/security.md).

Through the admin API over loopback HTTP, then through the Web API client as the functions use
it: stored credentials only ever go where they were entered for, and only to an https origin
on a public host.
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from conftest import Database
from integration.test_admin_api import Api
from portal_sync.adapters.dynamics.web_api import DataverseWebApi
from portal_sync.dataverse.base_url import BaseUrlNotAllowed, checked_base_url
from portal_sync.dataverse.connection import DynamicsConnection, DynamicsError

TENANT = "5f3c7a2e-1111-4222-8333-444455556666"


@pytest.fixture
def api(system: Any) -> Api:
    return Api(system.base_url, system.seed.org_id)


def put_integration(system: Any, api: Api, body: dict[str, Any]) -> httpx.Response:
    """PUT /orgs/{orgId}/integration as the organisation administrator."""
    return api.call(
        "PUT", f"/orgs/{api.org_id}/integration", system.seed.org_admin_token, json=body
    )


def put_dynamics(system: Any, api: Api, **dynamics: Any) -> httpx.Response:
    return put_integration(system, api, {"dynamics": dynamics})


def stored_connection(db: Database, org: uuid.UUID) -> dict[str, Any] | None:
    return db.one(
        "select dynamics_base_url, dynamics_auth_type, dynamics_tenant_id, dynamics_client_id,"
        " dynamics_credentials_fingerprint from integration_configs where organization_id = %s",
        org,
    )


def test_a_changed_base_url_needs_the_key_again(system: Any, db: Database, api: Api) -> None:
    first = put_dynamics(
        system, api, base_url="https://gateway.hlf.no", auth_type="api_key", api_key="k-" + "1" * 20
    )
    assert first.status_code == 200, first.text
    before = stored_connection(db, api.org_id)

    moved = put_dynamics(
        system, api, base_url="https://collector.attacker.example.com", auth_type="api_key"
    )

    assert moved.status_code == 422
    assert moved.json()["errors"] == [
        {
            "path": "dynamics.api_key",
            "message": "is required again: the base URL changed, and the stored credentials "
            "are only sent where they were entered for",
        }
    ]
    assert stored_connection(db, api.org_id) == before


def stored_secret(org: uuid.UUID) -> str:
    import boto3

    name = f"portal-sync/dynamics/{org}"
    return str(boto3.client("secretsmanager").get_secret_value(SecretId=name)["SecretString"])


@pytest.mark.parametrize(
    ("refused_with", "status"),
    [
        # A portal-owned feature without its deep link: refused after the connection's checks.
        ({"feature_ownership": {"courses": "portal"}, "deep_links": {}}, 422),
        # Another organisation's source id.
        ({"source_id": "other-org-source"}, 409),
    ],
)
def test_a_refused_change_keeps_the_stored_credentials(
    system: Any, db: Database, api: Api, refused_with: dict[str, Any], status: int
) -> None:
    """The credentials are written only once the whole change is taken: a refused PUT with a
    new address and a new secret must not leave the new secret stored for the old address."""
    if status == 409:
        other = uuid.uuid4()
        with db.connect() as conn:
            conn.execute("insert into organizations (id, name) values (%s, 'Other')", (other,))
            conn.execute(
                "insert into integration_configs (organization_id, source_id) values (%s, %s)",
                (other, "other-org-source"),
            )
    first = "first-secret-" + uuid.uuid4().hex
    connection = {
        "base_url": "https://hlf.crm4.dynamics.com",
        "auth_type": "oauth_client_credentials",
        "tenant_id": TENANT,
        "client_id": "portal-sync",
    }
    assert put_dynamics(system, api, **connection, client_secret=first).status_code == 200
    before = stored_connection(db, api.org_id)

    refused = put_integration(
        system,
        api,
        {
            "dynamics": {
                **connection,
                "base_url": "https://hlf-test.crm4.dynamics.com",
                "client_secret": "second-secret-" + uuid.uuid4().hex,
            },
            **refused_with,
        },
    )

    assert refused.status_code == status, refused.text
    assert stored_connection(db, api.org_id) == before
    assert first in stored_secret(api.org_id)


def test_a_null_reconcile_interval_is_refused_at_its_field(
    system: Any, db: Database, api: Api
) -> None:
    response = put_integration(system, api, {"reconcile_interval_minutes": None})

    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {
            "path": "reconcile_interval_minutes",
            "message": "cannot be null; leave it out to keep the current value",
        }
    ]
    row = db.one(
        "select reconcile_interval_minutes from integration_configs where organization_id = %s",
        api.org_id,
    )
    assert row == {"reconcile_interval_minutes": 15}


@pytest.mark.parametrize(
    ("changed", "named"),
    [
        ({"tenant_id": "00000000-2222-4333-8444-555566667777"}, "tenant"),
        ({"client_id": "another-app"}, "client id"),
        ({"base_url": "https://hlf-test.crm4.dynamics.com"}, "base URL"),
    ],
)
def test_a_changed_tenant_client_or_url_needs_the_secret_again(
    system: Any, api: Api, changed: dict[str, str], named: str
) -> None:
    connection = {
        "base_url": "https://hlf.crm4.dynamics.com",
        "auth_type": "oauth_client_credentials",
        "tenant_id": TENANT,
        "client_id": "portal-sync",
    }
    assert put_dynamics(system, api, **connection, client_secret="s" * 24).status_code == 200

    response = put_dynamics(system, api, **{**connection, **changed})

    assert response.status_code == 422
    [error] = response.json()["errors"]
    assert error["path"] == "dynamics.client_secret"
    assert f"the {named} changed" in error["message"]
    # With the secret entered again, the change is taken.
    again = put_dynamics(system, api, **{**connection, **changed}, client_secret="t" * 24)
    assert again.status_code == 200


@pytest.mark.parametrize(
    "base_url",
    [
        "https://169.254.169.254",
        "https://10.0.0.5",
        "https://192.168.1.10",
        "https://[fd00::1]",
        "https://[::ffff:127.0.0.1]",
        "https://metadata.google.internal",
        "https://localhost",
        "https://2130706433",
        "https://127.1",
        "https://intranet",
        "http://127.0.0.1:9001",  # allowed only under make run, and only plain loopback http
        "http://hlf.crm4.dynamics.com",
        "https://hlf.crm4.dynamics.com:9001",
        "https://user:pass@hlf.crm4.dynamics.com",
        "https://hlf.crm4.dynamics.com/api/data/v9.2",
        "https://hlf.crm4.dynamics.com?",
        "https://hlf.crm4.dynamics.com#",
        "https://127.0.0.1:9001/2018-06-01/runtime/invocation/next#",
    ],
)
def test_base_urls_that_are_not_a_public_https_origin_are_refused(base_url: str) -> None:
    with pytest.raises(BaseUrlNotAllowed):
        checked_base_url(base_url)


def test_the_admin_api_refuses_them_with_the_field_named(system: Any, api: Api) -> None:
    for base_url in ("https://169.254.169.254", "https://hlf.crm4.dynamics.com#"):
        response = put_dynamics(
            system, api, base_url=base_url, auth_type="api_key", api_key="k" * 20
        )
        assert response.status_code == 422, base_url
        assert [e["path"] for e in response.json()["errors"]] == ["dynamics.base_url"]


def test_a_public_origin_is_stored_in_its_canonical_form() -> None:
    assert checked_base_url(" https://HLF.crm4.Dynamics.com/ ") == "https://hlf.crm4.dynamics.com"
    assert checked_base_url("https://hlf.crm4.dynamics.com:443") == "https://hlf.crm4.dynamics.com"
    assert checked_base_url("http://127.0.0.1:8123", allow_local=True) == "http://127.0.0.1:8123"


def call_dynamics(base_url: str, resolves_to: str) -> tuple[list[httpx.Request], Any]:
    """Updates a contact through the Web API client as the functions use it, with `base_url`
    stored and its host resolving to `resolves_to`: the requests that left, and the
    DynamicsError raised (None when the update went through)."""
    requests: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        requests.append(request)
        return httpx.Response(204)

    api = DataverseWebApi(
        httpx.Client(transport=httpx.MockTransport(answer)), resolve=lambda host: [resolves_to]
    )
    connection = DynamicsConnection(base_url=base_url, auth_type="api_key", secret="stored-key")
    try:
        api.update_contact(connection, str(uuid.uuid4()), {"hlf_showonwebsite": False})
    except DynamicsError as refused:
        return requests, refused
    return requests, None


def test_a_public_name_that_resolves_to_a_private_address_is_never_called() -> None:
    requests, refused = call_dynamics("https://rebinding.attacker.example.com", "169.254.169.254")
    assert requests == []
    assert refused is not None and not refused.retryable
    assert "does not resolve to public addresses" in refused.message


def test_a_stored_url_from_before_the_rule_is_not_called() -> None:
    runtime_api = "http://127.0.0.1:9001/2018-06-01/runtime/invocation/next#"
    requests, refused = call_dynamics(runtime_api, "203.0.113.7")
    assert requests == []
    assert refused is not None and not refused.retryable


def test_a_public_origin_resolving_to_public_addresses_is_called() -> None:
    requests, refused = call_dynamics("https://hlf-api.azure-api.net", "20.50.2.1")
    assert refused is None
    assert [r.url.host for r in requests] == ["hlf-api.azure-api.net"]
    # The gateway's key in the gateway's header, never as a bearer token.
    assert requests[0].headers["ocp-apim-subscription-key"] == "stored-key"


def test_an_api_key_stored_for_dynamics_itself_is_never_sent() -> None:
    # Dynamics accepts only Entra bearer tokens; a key stored for it before the rule stays here.
    requests, refused = call_dynamics("https://hlf.crm4.dynamics.com", "20.50.2.1")
    assert requests == []
    assert refused is not None and not refused.retryable and "gateway" in refused.message


def test_the_admin_api_refuses_an_api_key_for_dynamics_itself(system: Any, api: Api) -> None:
    response = put_dynamics(
        system, api, base_url="https://hlf.crm4.dynamics.com", auth_type="api_key", api_key="k" * 20
    )
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["path"] == "dynamics.auth_type" and "gateway" in error["message"]


def test_only_platform_administrators_bind_an_organisation_to_an_environment(
    system: Any, db: Database, api: Api
) -> None:
    environment = str(uuid.uuid4())
    refused = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.org_admin_token,
        json={"dataverse_organization_id": environment},
    )
    assert refused.status_code == 403
    assert "platform administrators" in refused.json()["message"]

    accepted = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.admin_token,
        json={"dataverse_organization_id": environment},
    )
    assert accepted.status_code == 200, accepted.text
    assert accepted.json()["dataverse_organization_id"] == environment
    # Sending the value it already has is no change: an organisation administrator may.
    same = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.org_admin_token,
        json={"dataverse_organization_id": environment, "enabled": True},
    )
    assert same.status_code == 200


def test_binding_an_organisation_moves_its_members_to_the_environment(
    system: Any, db: Database, api: Api
) -> None:
    with db.connect() as conn:
        profile = conn.execute(
            "insert into profiles (dynamics_contact_id, dynamics_environment) values (%s, %s)"
            " returning id",
            (str(uuid.uuid4()), f"organization:{api.org_id}"),
        ).fetchone()
    environment = str(uuid.uuid4())
    response = api.call(
        "PUT",
        f"/orgs/{api.org_id}/integration",
        system.seed.admin_token,
        json={"dataverse_organization_id": environment},
    )
    assert response.status_code == 200
    assert db.one("select dynamics_environment from profiles where id = %s", profile["id"]) == {
        "dynamics_environment": environment
    }
    audit = db.one("select details from audit_logs where action = 'integration.updated'")
    assert audit["details"]["members_moved"] == 1
