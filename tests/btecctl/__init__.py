"""btecctl as the operator runs it: commands, their exit codes and their documentation."""
