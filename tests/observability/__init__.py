"""Logging, secrets kept out of logs, Sentry, metrics and monitoring (server/observability)."""
