"""Settings (server/config)."""
