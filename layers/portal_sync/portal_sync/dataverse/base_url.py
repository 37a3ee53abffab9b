"""Which Dynamics base URLs the integration may call (docs/security.md, "Dynamics base URL").

The functions send the organisation's Dynamics credentials to this URL, from inside AWS: an
administrator who could point it anywhere could make them send a stored secret to a host of
their choosing, reach the Lambda runtime API on loopback or cloud metadata services, or scan
ports through the error messages. So the base URL is an https origin on a public host name:
no IP address, no loopback, private, link-local or internal names, no other port, no user,
path, query or fragment (`https://<org>.crm4.dynamics.com`). Under `make run` plain http to
this machine is allowed as well, for the local Dataverse stand-in.

Names are checked here, on their text; the Web API client also checks what a name resolves to
before it connects (adapters/dynamics/addresses.py), for public names that point at private
addresses.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import urlsplit

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
# Top-level domains are letters (or IDNA); a numeric last label means an IP address written
# some other way (`2130706433`, `127.1`), which resolvers accept.
_TOP_LEVEL = re.compile(r"^([a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_INTERNAL_SUFFIXES = (
    "localhost",
    "local",
    "localdomain",
    "internal",
    "intranet",
    "lan",
    "home",
    "corp",
    "home.arpa",
    "arpa",
    "invalid",
    "test",
    "example",
)
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")


class BaseUrlNotAllowed(ValueError):
    """`str(error)` says what is wrong, for the administrator who entered it."""


def checked_base_url(value: str, *, allow_local: bool = False) -> str:
    """The base URL in its canonical form (`https://host`), or BaseUrlNotAllowed."""
    text = value.strip()
    if not text or len(text) > 2000:
        raise BaseUrlNotAllowed("must be an https:// URL of the Dynamics environment")
    if any(character in text for character in "?#@\\") or any(c.isspace() for c in text):
        raise BaseUrlNotAllowed(
            "must be the environment's address alone, e.g. https://hlf.crm4.dynamics.com "
            "(no user, query or fragment)"
        )
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError:
        raise BaseUrlNotAllowed("is not a valid URL") from None
    host = (parts.hostname or "").rstrip(".")
    if parts.path not in ("", "/"):
        raise BaseUrlNotAllowed(
            "must not have a path: the Web API path (/api/data/v9.2) is added by the integration"
        )
    if allow_local and parts.scheme == "http" and host in LOCAL_HOSTS:
        return f"http://{parts.netloc}"
    if parts.scheme != "https":
        raise BaseUrlNotAllowed("must be an https:// URL")
    if port not in (None, 443):
        raise BaseUrlNotAllowed("must use the standard https port (443)")
    if _is_ip_address(host):
        raise BaseUrlNotAllowed(
            "must name the environment's host (e.g. hlf.crm4.dynamics.com), not an IP address"
        )
    problem = host_name_problem(host)
    if problem:
        raise BaseUrlNotAllowed(problem)
    return f"https://{host}"


def host_name_problem(host: str) -> str | None:
    """Why a host name is not a public DNS name, or None."""
    labels = host.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return "must be a public host name such as hlf.crm4.dynamics.com"
    if not _TOP_LEVEL.match(labels[-1]):
        return "must be a public host name such as hlf.crm4.dynamics.com"
    if any(host == suffix or host.endswith("." + suffix) for suffix in _INTERNAL_SUFFIXES):
        return "must be a public host name, not a local or internal one"
    return None


def is_public_address(address: str) -> bool:
    """True for an address on the public internet (what a public name may resolve to)."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return True
