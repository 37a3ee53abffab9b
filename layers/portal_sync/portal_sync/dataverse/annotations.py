"""The Web API annotations the sync asks for when it reads a row, and finds on a lookup's
`_<column>_value` (its display name and its table): one name for each, for the client that
asks and the mapping that reads them (docs/dataverse-mapping.md)."""

from __future__ import annotations

FORMATTED_VALUE = "OData.Community.Display.V1.FormattedValue"
LOOKUP_LOGICAL_NAME = "Microsoft.Dynamics.CRM.lookuplogicalname"
