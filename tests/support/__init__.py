"""Code the test modules share, one module per kind of thing: the suite's machine and the
CLI's environment (env), waiting on a condition (wait), accounts, problems, mail, jobs,
uploads, units, metrics, backups, the processes tests start (btecctl serve and worker), and the
real peers run on loopback (clamd, s3, sentry_sink). Fixtures live in the conftest.py files;
test modules import from here, never from each other."""
