"""Deep links into HLF's portal for the features it owns.

A link is an https URL template. `{org_id}`, `{contact_id}` and `{feature}` are filled in,
URL-encoded; `org_id` and `feature` are appended as query parameters when the template does not
place them itself, so the portal always knows where the member came from. The contact id is
only sent where a template asks for it.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

_PLACEHOLDER = re.compile(r"\{(org_id|contact_id|feature)\}")
_APPENDED = ("org_id", "feature")


def render(template: str, *, org_id: str, feature: str, contact_id: str | None) -> str:
    values = {"org_id": org_id, "feature": feature, "contact_id": contact_id or ""}
    placed = set(_PLACEHOLDER.findall(template))
    url = _PLACEHOLDER.sub(lambda match: quote(values[match.group(1)], safe=""), template)
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    present = {name for name, _ in query}
    query += [(name, values[name]) for name in _APPENDED if name not in placed | present]
    return urlunsplit(parts._replace(query=urlencode(query)))
