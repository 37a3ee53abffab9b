"""How a failed call to Dynamics is put to an administrator: one sentence per kind of failure
and operation (the website sync shows it as the mentor's last error, the sync log as why an
event over 256 KB could not be applied; docs/website-visibility.md, docs/inbound.md).

A write and a read fail for different reasons, so they say different things to check: a
refused write points at the visibility column, a refused read at the field mapping's table
and columns. Messages never carry Dynamics' own error text (it can echo row data) or a secret:
only the facts the client collected (status, Retry-After, the entity set named in the mapping).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from portal_sync.dataverse.failure import FailureKind, Operation

if TYPE_CHECKING:
    from portal_sync.dataverse.connection import DynamicsError

# A refused sign-in: Entra ID's 400 may mean a wrong tenant or scope as well as a wrong secret,
# so the message names what its OAuth `error` code points at, and all three when it is unknown.
CREDENTIALS_MESSAGE = (
    "Microsoft Entra ID refused the sign-in for Dynamics: check the tenant id, the client id "
    "and the client secret in the integration settings, and the Dynamics URL (the token's "
    "scope)"
)
CLIENT_REFUSED_MESSAGE = (
    "Microsoft Entra ID refused the credentials, the client id or client secret (the secret "
    "may have expired): check them in the integration settings"
)
CLIENT_UNKNOWN_MESSAGE = (
    "Microsoft Entra ID does not know the client id in this tenant: check the client id and "
    "the tenant id in the integration settings"
)
SCOPE_REFUSED_MESSAGE = (
    "Microsoft Entra ID refused the token's scope, the Dynamics URL: check that the Dynamics "
    "URL in the integration settings is the environment's own, in the tenant given"
)
# By Entra's OAuth `error` (RFC 6749 section 5.2 and Entra's own); others get the general one.
SIGN_IN_MESSAGES = {
    "invalid_client": CLIENT_REFUSED_MESSAGE,
    "unauthorized_client": CLIENT_UNKNOWN_MESSAGE,
    "invalid_scope": SCOPE_REFUSED_MESSAGE,
    "invalid_resource": SCOPE_REFUSED_MESSAGE,
}
API_KEY_MESSAGE = (
    "The API gateway in front of Dynamics rejected the API key: check the API key and its "
    "header name in the integration settings"
)
APPLICATION_USER_MESSAGE = (
    "Dynamics refused the access token Microsoft Entra ID issued: check that the app "
    "registration (the client id) is an application user of the Dynamics environment, and "
    "that the tenant id is the environment's tenant"
)
API_KEY_TO_DATAVERSE_MESSAGE = (
    "Dynamics itself accepts only OAuth client credentials: API key authentication is for an "
    "API gateway in front of it; enter the gateway's URL, or switch to OAuth client "
    "credentials in the integration settings"
)

_K = FailureKind

# The same for a read and a write; `{retried}` says what is tried again.
_WEB_API = {
    _K.UNREACHABLE: "Dynamics could not be reached ({error_name}); {retried}",
    _K.TIMEOUT: "Dynamics did not answer within {timeout_seconds:g} seconds; {retried}",
    _K.UNRESOLVED: "The Dynamics host name could not be resolved; {retried}",
    _K.THROTTLED: (
        "Dynamics is limiting our requests (HTTP 429, service protection limits); "
        "{retried} after {retry_after:g} seconds"
    ),
    _K.UNAVAILABLE: "Dynamics is unavailable right now (HTTP {status_code}); {retried}",
    _K.UNEXPECTED: (
        "Dynamics answered unexpectedly (HTTP {status_code}): check the Dynamics URL in the "
        "integration settings"
    ),
    _K.URL_NOT_ALLOWED: "The Dynamics URL in the integration settings is not allowed: it {reason}",
    _K.HOST_NOT_PUBLIC: (
        "The Dynamics URL in the integration settings is not allowed: its host name does not "
        "resolve to public addresses"
    ),
    _K.URL_INVALID: "The Dynamics URL in the integration settings is not valid",
    _K.UNKNOWN_AUTH_TYPE: "The integration settings name an unknown Dynamics authentication type",
    _K.API_KEY_TO_DATAVERSE: API_KEY_TO_DATAVERSE_MESSAGE,
}

_WRITE = {
    **_WEB_API,
    _K.FORBIDDEN: (
        "Dynamics refused access (HTTP 403): check that the application user has a security "
        "role that allows updating contacts"
    ),
    _K.NOT_FOUND: "The contact does not exist in Dynamics (it may have been deleted)",
    _K.CONFLICT: "Dynamics reported a conflicting change (HTTP 412); {retried}",
    _K.REJECTED: (
        "Dynamics refused the change (HTTP {status_code}): check the visibility column name in "
        "the integration settings"
    ),
    _K.UNUSABLE_ANSWER: "Dynamics answered the change with something unexpected; {retried}",
    _K.INVALID_ID: "The contact id is not a valid Dynamics id (a GUID)",
}

_READ = {
    **_WEB_API,
    _K.FORBIDDEN: (
        "Dynamics refused access (HTTP 403): check that the application user has a security "
        "role that allows reading the '{entity_set}' table"
    ),
    _K.NOT_FOUND: "The row does not exist in Dynamics (it may have been deleted)",
    _K.CONFLICT: "Dynamics reported a conflict (HTTP 412); {retried}",
    _K.REJECTED: (
        "Dynamics refused to read the row (HTTP {status_code}): check the table "
        "'{entity_set}' and its column names in the field mapping"
    ),
    _K.UNUSABLE_ANSWER: "Dynamics answered the read with something other than a row; {retried}",
    _K.INVALID_ID: "The row id is not a valid Dynamics id (a GUID)",
    _K.INVALID_ENTITY_SET: (
        "'{entity_set}' is not a Dynamics table's entity set name: check the field mapping in "
        "the integration settings"
    ),
}

_WHO_AM_I = {
    **_WEB_API,
    _K.FORBIDDEN: (
        "Dynamics refused access (HTTP 403): check that the application user has a security "
        "role in the Dynamics environment"
    ),
    _K.NOT_FOUND: "The Dynamics URL does not answer WhoAmI: check the Dynamics URL",
    _K.REJECTED: "Dynamics refused WhoAmI (HTTP {status_code}): check the Dynamics URL",
    _K.UNUSABLE_ANSWER: "Dynamics answered WhoAmI without a user id; {retried}",
}

_SIGN_IN = {
    _K.UNREACHABLE: "Microsoft Entra ID could not be reached ({error_name}); {retried}",
    _K.TIMEOUT: (
        "Microsoft Entra ID did not issue a token within {timeout_seconds:g} seconds; {retried}"
    ),
    _K.THROTTLED: (
        "Microsoft Entra ID is limiting token requests (HTTP 429); {retried} after "
        "{retry_after:g} seconds"
    ),
    _K.CREDENTIALS: CREDENTIALS_MESSAGE,
    _K.MISSING_CREDENTIALS: (
        "The integration settings lack the tenant id, client id or client secret for Dynamics"
    ),
    _K.UNAVAILABLE: "Microsoft Entra ID is unavailable right now (HTTP {status_code}); {retried}",
    _K.REJECTED: (
        "Microsoft Entra ID refused the token request (HTTP {status_code}): check the tenant id "
        "and the sign-in authority URL in the integration settings"
    ),
    _K.UNUSABLE_ANSWER: (
        "Microsoft Entra ID answered the token request without a usable token; {retried}"
    ),
    _K.URL_INVALID: "The sign-in authority URL in the integration settings is not valid",
}

_TEMPLATES = {
    Operation.UPDATE_CONTACT: _WRITE,
    Operation.READ_ROW: _READ,
    Operation.SIGN_IN: _SIGN_IN,
    Operation.WHO_AM_I: _WHO_AM_I,
}

# What is tried again: a read with its event (the queue redelivers it), a write with its website
# change (the state machine retries it); a sign-in with whichever change needed the token.
# WhoAmI is asked as part of a website change (visibility/delivery.py).
_RETRIED = {Operation.READ_ROW: "the read will be retried"}
_CHANGE_RETRIED = "the change will be retried"


def worded(error: DynamicsError) -> str:
    """The administrator's message for `error`."""
    if error.kind is FailureKind.CREDENTIALS:
        if error.operation is Operation.SIGN_IN:
            return SIGN_IN_MESSAGES.get(error.oauth_error or "", CREDENTIALS_MESSAGE)
        # The Web API refused what the token endpoint issued (or the API gateway its key).
        return API_KEY_MESSAGE if error.auth_type == "api_key" else APPLICATION_USER_MESSAGE
    template = _TEMPLATES[error.operation].get(error.kind)
    retried = _RETRIED.get(error.operation, _CHANGE_RETRIED)
    if template is None:  # a kind this operation cannot meet: still say something true
        tail = f"; {retried}" if error.retryable else ""
        return f"The call to Dynamics failed ({error.kind}){tail}"
    return template.format(
        retried=retried,
        status_code=error.status_code,
        retry_after=error.retry_after or 0.0,
        timeout_seconds=error.timeout_seconds or 0.0,
        error_name=error.error_name or "connection error",
        entity_set=error.entity_set or "",
        reason=error.reason or "is not an https:// URL of a Dynamics environment",
    )
