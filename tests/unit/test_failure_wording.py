"""What an administrator reads when a call to Dynamics failed: a read and a write say different
things to check, a retried failure says it is retried, a permanent one what to fix."""

from __future__ import annotations

from typing import Any

import pytest
from portal_sync.dataverse.connection import DynamicsError
from portal_sync.dataverse.failure import RETRYABLE_KINDS, FailureKind, Operation
from portal_sync.dataverse.failure_wording import CREDENTIALS_MESSAGE

K = FailureKind
# Every fact the client can collect, so that any template can use what it needs.
FACTS: dict[str, Any] = {
    "status_code": 400,
    "retry_after": 7.0,
    "timeout_seconds": 10.0,
    "error_name": "ConnectError",
    "entity_set": "hlf_memberships",
    "reason": "must be an https:// URL",
    "auth_type": "oauth_client_credentials",
}


def read(kind: FailureKind, **facts: Any) -> DynamicsError:
    return DynamicsError(kind, Operation.READ_ROW, **{**FACTS, **facts})


def write(kind: FailureKind, **facts: Any) -> DynamicsError:
    return DynamicsError(kind, Operation.UPDATE_CONTACT, **{**FACTS, **facts})


@pytest.mark.parametrize("status", [400, 405, 409, 422])
def test_a_refused_read_points_at_the_field_mapping_not_the_visibility_column(
    status: int,
) -> None:
    message = read(K.REJECTED, status_code=status).message

    assert message == (
        f"Dynamics refused to read the row (HTTP {status}): check the table 'hlf_memberships' "
        "and its column names in the field mapping"
    )
    assert "visibility" not in message


def test_a_refused_write_points_at_the_visibility_column() -> None:
    assert write(K.REJECTED).message == (
        "Dynamics refused the change (HTTP 400): check the visibility column name in the "
        "integration settings"
    )


def test_a_forbidden_read_names_the_table_and_a_forbidden_write_the_contacts() -> None:
    assert read(K.FORBIDDEN, status_code=403).message.endswith(
        "a security role that allows reading the 'hlf_memberships' table"
    )
    assert write(K.FORBIDDEN, status_code=403).message.endswith(
        "a security role that allows updating contacts"
    )


def test_a_missing_contact_and_a_missing_row_are_told_apart() -> None:
    assert write(K.NOT_FOUND, status_code=404).message == (
        "The contact does not exist in Dynamics (it may have been deleted)"
    )
    assert "contact" not in read(K.NOT_FOUND, status_code=404).message
    assert "row id" in read(K.INVALID_ID).message
    assert "contact id" in write(K.INVALID_ID).message


def test_a_retried_read_says_the_read_is_retried_a_retried_write_the_change() -> None:
    for kind in (K.TIMEOUT, K.UNAVAILABLE, K.THROTTLED, K.UNREACHABLE, K.CONFLICT):
        assert "the read will be retried" in read(kind, status_code=503).message, kind
        assert "the change will be retried" in write(kind, status_code=503).message, kind
    assert write(K.UNAVAILABLE, status_code=503).message == (
        "Dynamics is unavailable right now (HTTP 503); the change will be retried"
    )
    assert write(K.THROTTLED, status_code=429).message.endswith(
        "the change will be retried after 7 seconds"
    )
    assert "within 10 seconds" in read(K.TIMEOUT).message


def test_refused_credentials_say_which_credential_to_check() -> None:
    sign_in = DynamicsError(K.CREDENTIALS, Operation.SIGN_IN, status_code=400)
    secret = DynamicsError(
        K.CREDENTIALS, Operation.SIGN_IN, status_code=401, oauth_error="invalid_client"
    )
    scope = DynamicsError(
        K.CREDENTIALS, Operation.SIGN_IN, status_code=400, oauth_error="invalid_scope"
    )
    oauth = write(K.CREDENTIALS, status_code=401)
    api_key = read(K.CREDENTIALS, status_code=401, auth_type="api_key")

    # Unknown why: tenant, client id, secret and the scope (the Dynamics URL) are all named.
    assert sign_in.message == CREDENTIALS_MESSAGE
    for setting in ("tenant id", "client id", "client secret", "Dynamics URL"):
        assert setting in sign_in.message, setting
    assert "client secret" in secret.message and "expired" in secret.message
    assert "Dynamics URL" in scope.message and "secret" not in scope.message
    assert "application user" in oauth.message
    assert api_key.message == (
        "The API gateway in front of Dynamics rejected the API key: check the API key and its "
        "header name in the integration settings"
    )


def test_an_api_key_for_dataverse_itself_says_it_is_for_a_gateway() -> None:
    error = write(K.API_KEY_TO_DATAVERSE, auth_type="api_key")

    assert not error.retryable
    assert "gateway" in error.message and "OAuth client credentials" in error.message


def test_a_base_url_that_is_not_allowed_says_why_in_the_rules_words() -> None:
    message = write(K.URL_NOT_ALLOWED, reason="must use the standard https port (443)").message

    assert message == (
        "The Dynamics URL in the integration settings is not allowed: it must use the standard "
        "https port (443)"
    )


@pytest.mark.parametrize("operation", list(Operation))
@pytest.mark.parametrize("kind", list(FailureKind))
def test_every_failure_is_worded_and_says_whether_it_is_retried(
    operation: Operation, kind: FailureKind
) -> None:
    error = DynamicsError(kind, operation, **FACTS)

    assert error.message and str(error) == error.message
    assert "{" not in error.message and "None" not in error.message
    assert error.retryable is (kind in RETRYABLE_KINDS)
    assert ("will be retried" in error.message) is error.retryable
