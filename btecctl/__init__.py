"""btecctl: the one command that runs and operates btec."""
