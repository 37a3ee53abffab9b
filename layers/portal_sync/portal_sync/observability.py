"""Powertools logger, metrics and tracer shared by every function (one instance each)."""

from __future__ import annotations

from aws_lambda_powertools import Logger, Metrics

SERVICE = "portal-sync"
NAMESPACE = "PortalSync"

logger = Logger(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
