"""Migrations, migrate-test and the migration linter (server/schema)."""
