"""A real clamd for the tests, started with a signature database the test writes.

The database holds one signature: the EICAR test string's MD5 (`Test.EICAR`), so clamd starts
in about a second and finds EICAR as `Test.EICAR.UNOFFICIAL`. Where clamd is not installed the
tests that need it are skipped with the reason, unless BTEC_TEST_REQUIRE_CLAMD is set (CI
installs clamav-daemon and sets it).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.env import closed_port, required_tool
from tests.support.wait import eventually_sync

EICAR = rb"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*"
SIGNATURE = "Test.EICAR.UNOFFICIAL"


def clamd_binary() -> str:
    return required_tool("clamd", "clamav-daemon", "BTEC_TEST_REQUIRE_CLAMD")


@dataclass
class ClamdServer:
    proc: subprocess.Popen[bytes]
    socket_path: Path
    port: int

    @property
    def unix_url(self) -> str:
        return f"unix://{self.socket_path}"

    @property
    def tcp_url(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def connections(self) -> int:
        """Connections to the unix socket, accepted or waiting to be (Linux's /proc/net/unix
        lists each with the socket's path): a paused clamd shows the scans that reached it."""
        path = str(self.socket_path)
        with open("/proc/net/unix") as table:
            return sum(1 for line in table if line.rstrip().endswith(path)) - 1  # the listener


def answers(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(1)
            s.connect(str(path))
            s.sendall(b"zPING\0")
            return s.recv(16).startswith(b"PONG")
    except OSError:
        return False


@contextlib.contextmanager
def clamd_server(stream_max: str = "25M") -> Iterator[ClamdServer]:
    binary = clamd_binary()
    root = Path(tempfile.mkdtemp(prefix="btec-clamd-"))  # short: unix socket paths are short
    try:
        digest = hashlib.md5(EICAR, usedforsecurity=False).hexdigest()  # clamd's .hdb format
        (root / "test.hdb").write_text(f"{digest}:{len(EICAR)}:Test.EICAR\n")
        port = closed_port()
        sock = root / "clamd.sock"
        (root / "clamd.conf").write_text(
            f"Foreground yes\nDatabaseDirectory {root}\nLocalSocket {sock}\n"
            f"TCPSocket {port}\nTCPAddr 127.0.0.1\nStreamMaxLength {stream_max}\n"
            f"LogFile {root / 'clamd.log'}\n"
        )
        proc = subprocess.Popen(
            [binary, "-c", str(root / "clamd.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            with contextlib.suppress(AssertionError):  # not up in time: its log says why
                eventually_sync(lambda: proc.poll() is not None or answers(sock), timeout=30)
            if proc.poll() is not None or not answers(sock):
                log = (root / "clamd.log").read_text() if (root / "clamd.log").exists() else ""
                raise RuntimeError(f"clamd did not start:\n{log[-2000:]}")
            yield ClamdServer(proc, sock, port)
        finally:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGCONT)
                proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
    finally:
        shutil.rmtree(root, ignore_errors=True)
