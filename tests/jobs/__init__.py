"""The job queue and its worker (server/jobs)."""
