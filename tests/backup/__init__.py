"""Backups, restores and off-site copies (server/backup)."""
