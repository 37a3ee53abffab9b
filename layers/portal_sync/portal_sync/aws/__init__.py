"""AWS service adapters (boto3 lives only here)."""
