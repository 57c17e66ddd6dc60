"""The shipped PgBouncer configuration (deploy/pgbouncer/pgbouncer.ini), in transaction mode,
started in front of the suite's PostgreSQL: a real `btecctl serve` with the pool settings the
configuration names (BTEC_DB_STATEMENT_CACHE_SIZE=0) signs in, writes and reads through it,
concurrently, with every answer right; the database was migrated directly, as the
configuration says."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

from server.schema.migrate_test import scratch_database
from tests.support.cluster import pgbouncer_config, pooled_url
from tests.support.env import free_port, required_tool
from tests.support.http import call
from tests.support.processes import Served
from tests.support.wait import eventually_sync


def _get(url: str, token: str) -> int:
    return call(url, token=token)[0]


def test_btec_serves_through_pgbouncer_in_transaction_mode(
    tmp_path: Path, pg_server_url: str
) -> None:
    binary = required_tool("pgbouncer", "pgbouncer", "BTEC_TEST_REQUIRE_PROXIES")
    with scratch_database(pg_server_url, prefix="btec_bouncer") as direct:
        migrated = subprocess.run(
            [sys.executable, "-m", "btecctl", "db", "migrate", "--json"],
            env={**os.environ, "BTEC_DATABASE_URL": direct, "BTEC_ENV_FILE": ""},
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert migrated.returncode == 0, migrated.stderr
        port = free_port()
        config = pgbouncer_config(tmp_path, direct, port)
        bouncer = subprocess.Popen(
            [binary, "-u", "nobody", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        pooled = pooled_url(direct, port)
        served = Served(tmp_path / "var", free_port(), "--no-migrate",
                        BTEC_DATABASE_URL=pooled, BTEC_DB_STATEMENT_CACHE_SIZE="0",
                        BTEC_MAIL_CATCHER_PORT="0",
                        BTEC_RATELIMIT_DEFAULT="1000000/1")  # fmt: skip
        try:
            served.wait_ready()
            served.environ["BTEC_DATABASE_URL"] = direct  # the admin is made directly
            token = served.admin_token()
            assert bouncer.poll() is None
            me = served.url + "/api/v1/users/me"
            units = served.url + "/api/v1/units"
            answers: list[int] = []

            def client() -> None:
                for _ in range(25):
                    answers.append(_get(me, token))
                    answers.append(_get(units, token))

            threads = [threading.Thread(target=client) for _ in range(4)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert answers == [200] * 200
            health = eventually_sync(lambda: _get(served.url + "/api/v1/health/ready", token),
                                     lambda s: s == 200, timeout=30)  # fmt: skip
            assert health == 200
        finally:
            served.stop()
            bouncer.terminate()
            _, errors = bouncer.communicate(timeout=30)
        print(json.dumps({"answers": len(answers)}))
        assert "FATAL" not in errors, errors
