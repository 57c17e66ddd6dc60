"""An S3-compatible server on loopback for the tests: moto_server, in its own process.

One server per test session; each test gets a bucket of its own.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3

from tests.support.env import closed_port
from tests.support.wait import eventually_sync

KEY_ID, SECRET = "btec-test-key", "btec-test-secret"


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    port = closed_port()
    binary = Path(sys.executable).with_name("moto_server")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": KEY_ID, "AWS_SECRET_ACCESS_KEY": SECRET}
    proc = subprocess.Popen(
        [str(binary), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()  # noqa: S310 - loopback
        except OSError:
            return False
        return True

    try:
        eventually_sync(lambda: answers() or proc.poll() is not None, timeout=30,
                        message="moto_server answers or exits")  # fmt: skip
        if proc.poll() is not None:
            raise RuntimeError("moto_server did not start")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


def client(url: str) -> Any:
    return boto3.client("s3", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id=KEY_ID, aws_secret_access_key=SECRET)  # fmt: skip


def new_bucket(url: str) -> str:
    name = "btec-" + secrets.token_hex(6)
    client(url).create_bucket(Bucket=name)
    return name


def keys(url: str, bucket: str) -> list[str]:
    found = client(url).list_objects_v2(Bucket=bucket).get("Contents", [])
    return sorted(o["Key"] for o in found)


def settings_for(url: str, bucket: str) -> dict[str, Any]:
    from pydantic import SecretStr

    return {
        "storage_backend": "s3",
        "s3_bucket": bucket,
        "s3_endpoint_url": url,
        "s3_access_key_id": SecretStr(KEY_ID),
        "s3_secret_access_key": SecretStr(SECRET),
    }
