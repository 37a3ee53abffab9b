"""The admin API's HTTP side (functions/admin_api; docs/admin-api.md): one Powertools Router per
concern (integration, sync, health, organizations, openapi), each route one service call in one
transaction. The resolver, its authentication and its error answers are the handler's."""
