"""What can go wrong in a call to Dynamics: the kinds of failure, the operations they happen on,
and which kinds are worth retrying (docs/dataverse-mapping.md, docs/website-visibility.md).

The Web API client only says which kind of failure it met; whether it is retried and how it is
put to an administrator (dataverse/failure_wording.py) are decided here, in the logic.
"""

from __future__ import annotations

from enum import StrEnum


class Operation(StrEnum):
    """The call that failed."""

    READ_ROW = "read_row"  # reading a row left out of an event over 256 KB
    UPDATE_CONTACT = "update_contact"  # writing a mentor's website visibility
    SIGN_IN = "sign_in"  # asking Microsoft Entra ID for an access token, before either
    WHO_AM_I = "who_am_i"  # learning the application user's systemuserid (the echo check)


class FailureKind(StrEnum):
    """What went wrong, as far as the caller needs to know."""

    UNREACHABLE = "unreachable"  # no connection, or it broke
    TIMEOUT = "timeout"
    UNRESOLVED = "unresolved"  # the host name could not be looked up
    THROTTLED = "throttled"  # 429: service protection limits
    CREDENTIALS = "credentials"  # the secret, API key or token was refused
    MISSING_CREDENTIALS = "missing_credentials"  # tenant, client id or secret not configured
    UNKNOWN_AUTH_TYPE = "unknown_auth_type"
    FORBIDDEN = "forbidden"  # 403: the application user lacks a privilege
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"  # 412
    UNAVAILABLE = "unavailable"  # 5xx
    REJECTED = "rejected"  # another 4xx: something in the request (so in the settings) is wrong
    UNEXPECTED = "unexpected"  # a status that is neither success nor error (1xx, 3xx)
    UNUSABLE_ANSWER = "unusable_answer"  # a success whose body is not what was asked for
    URL_NOT_ALLOWED = "url_not_allowed"  # the base URL breaks dataverse/base_url.py's rule
    HOST_NOT_PUBLIC = "host_not_public"  # its host name resolves to a non-public address
    URL_INVALID = "url_invalid"  # not a URL the HTTP client can call
    API_KEY_TO_DATAVERSE = "api_key_to_dataverse"  # an API key for Dataverse itself, not a gateway
    INVALID_ID = "invalid_id"  # a row id that is not a GUID
    INVALID_ENTITY_SET = "invalid_entity_set"  # an entity set name that is not a name


# Worth another attempt later: the cause is on Dynamics' (or the network's) side and passes.
# Everything else needs an administrator to change something first: Dataverse asks clients to
# retry 429s, 5xx and timeouts and never other 4xx; a 412 is another writer's change in between.
RETRYABLE_KINDS = frozenset(
    {
        FailureKind.UNREACHABLE,
        FailureKind.TIMEOUT,
        FailureKind.UNRESOLVED,
        FailureKind.THROTTLED,
        FailureKind.CONFLICT,
        FailureKind.UNAVAILABLE,
        FailureKind.UNUSABLE_ANSWER,
    }
)
