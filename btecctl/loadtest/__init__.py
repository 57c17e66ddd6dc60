"""The engine behind `btecctl perf`: the scenario catalogue and its profiles and thresholds,
the server a run loads (its own or one at a URL), k6 as a child process whose JSON stream is
read as it comes, and the summary a run leaves. k6 makes the load; what it measured is
reported by btecctl (btecctl/perf.py is the command line over this package)."""
