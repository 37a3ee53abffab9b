"""How our own writes to Dynamics are recognised when HLF's webhook step posts them back.

Every Web API request of ours carries `tag=<REQUEST_TAG>` in its query string; Dataverse hands a
request's `tag` to the plug-in pipeline as the shared variable `tag`, so the webhook our PATCH
triggers carries it in `SharedVariables` (docs/dataverse-mapping.md).
"""

from __future__ import annotations

REQUEST_TAG = "portal-sync"
SHARED_VARIABLE = "tag"
