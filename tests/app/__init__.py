"""The composition root (server/app): btecctl serve as a real process."""
