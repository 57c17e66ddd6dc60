"""clamd killed mid-scan under `btecctl serve`: the upload stays acknowledged (201, stored),
its file is never marked clean without a verdict (`error` after the last attempt, and not
downloadable), and once clamd is back `btecctl files rescan` gives it its verdict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.support.clamd import answers, clamd_binary, clamd_server
from tests.support.env import free_port
from tests.support.http import call
from tests.support.processes import Served
from tests.support.uploads import MULTIPART, multipart, part
from tests.support.wait import eventually_sync

CONTENT = b"clean words of an essay " * 200_000  # ~4.6 MB: the scan takes a while


def _request(url: str, token: str, data: bytes | None = None,
             content_type: str | None = None) -> tuple[int, Any]:  # fmt: skip
    return call(url, token=token, body=data, content_type=content_type, timeout=60)


def test_clamd_killed_mid_scan_never_makes_a_file_clean(tmp_path: Path) -> None:
    with clamd_server() as clamd:
        served = Served(tmp_path / "var", free_port(), BTEC_CLAMD_URL=clamd.unix_url,
                        BTEC_SCAN_RETRIES="1", BTEC_MAIL_CATCHER_PORT="0")  # fmt: skip
        served.wait_ready()
        try:
            token = served.admin_token()
            clamd.pause()  # it takes the connection, then hangs mid-scan
            status, meta = _request(served.url + "/api/v1/files", token,
                                    multipart(part("essay.txt", CONTENT)), MULTIPART)  # fmt: skip
            assert status == 201, meta
            assert meta["scan_status"] == "pending"
            eventually_sync(clamd.connections, timeout=30, message="the scan reached clamd")
            clamd.kill()
            file_url = f"{served.url}/api/v1/files/{meta['id']}"
            found = eventually_sync(lambda: _request(file_url, token)[1],
                                    lambda doc: doc["scan_status"] != "pending", timeout=60,
                                    interval=0.5, message="a verdict")  # fmt: skip
            assert found["scan_status"] == "error"
            assert _request(file_url + "/content", token)[0] == 409

            again = subprocess.Popen(  # clamd back, on the same socket
                [clamd_binary(), "-c", str(clamd.socket_path.parent / "clamd.conf")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            try:
                eventually_sync(lambda: answers(clamd.socket_path), timeout=60,
                                message="clamd is back")  # fmt: skip
                rescan = subprocess.run(
                    [sys.executable, "-m", "btecctl", "files", "rescan", "--json"],
                    env={**os.environ, **served.environ}, capture_output=True, text=True,
                    timeout=120,
                )  # fmt: skip
                assert json.loads(rescan.stdout)["queued"] == 1, rescan.stdout + rescan.stderr
                found = eventually_sync(lambda: _request(file_url, token)[1],
                                        lambda doc: doc["scan_status"] == "clean", timeout=90,
                                        interval=0.5, message="clean after the rescan")  # fmt: skip
                status, body = _request(file_url + "/content", token)
                assert status == 200
                assert body == CONTENT
            finally:
                again.kill()
                again.wait(10)
        finally:
            served.stop()
