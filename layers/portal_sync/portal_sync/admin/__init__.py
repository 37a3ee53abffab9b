"""The admin API's logic, one module per concern (docs/admin-api.md): access (the one check
every service makes), integrations (reading an integration), integration_settings,
webhook_secrets, sync_log, health, onboarding, members, audit_log; their ports and models."""
