"""AWS service adapters (botocore lives only here)."""
