"""Adapters (server/platform): the database pool, the virus scanner, passwords."""
