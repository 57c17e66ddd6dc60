"""Clients and servers the app depends on: PostgreSQL, Redis, embedded servers, observability."""
