"""The admin API's logic: organisation settings, secrets, sync history, health, onboarding."""
