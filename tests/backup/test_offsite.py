"""Off-site backup copies in the uploads' S3 bucket (moto_server on loopback): copied with
`db backup --offsite`, listed, fetched back checked against the manifest, and drilled."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.support import s3
from tests.support.backups import ok


def s3_env(url: str, bucket: str) -> dict[str, str]:
    return {
        "BTEC_STORAGE_BACKEND": "s3",
        "BTEC_S3_BUCKET": bucket,
        "BTEC_S3_ENDPOINT_URL": url,
        "BTEC_S3_ACCESS_KEY_ID": s3.KEY_ID,
        "BTEC_S3_SECRET_ACCESS_KEY": s3.SECRET,
    }


def test_offsite_copy_fetch_and_drill(
    cli: Callable[..., Any],
    source: str,
    tmp_path: Path,
    s3_url: str,
) -> None:
    bucket = s3.new_bucket(s3_url)
    env = {"BTEC_DATABASE_URL": source, "BTEC_BACKUP_DIR": str(tmp_path / "here"),
           "BTEC_DATA_DIR": str(tmp_path / "var"), "BTEC_ENV_FILE": "",
           **s3_env(s3_url, bucket)}  # fmt: skip
    made = ok(cli, "db", "backup", "--offsite", env=env)
    name = made["name"]
    assert made["offsite"] == f"s3://{bucket}/backups/{name}/"
    stored = s3.keys(s3_url, bucket)
    manifest = json.loads((tmp_path / "here" / name / "manifest.json").read_text())
    assert stored == sorted(f"backups/{name}/{f}" for f in [*manifest["files"], "manifest.json"])
    assert ok(cli, "db", "backups", "--offsite", env=env)["offsite"] == [name]

    elsewhere = {**env, "BTEC_BACKUP_DIR": str(tmp_path / "elsewhere")}
    fetched = ok(cli, "db", "offsite-fetch", name, env=elsewhere)
    assert fetched["name"] == name
    drill = ok(cli, "db", "verify", name, env=elsewhere)
    assert drill["rows"] == sum(manifest["tables"].values())

    # A damaged copy is refused, and nothing of it is left in the backup directory.
    victim = next(k for k in stored if not k.endswith("manifest.json"))
    s3.client(s3_url).put_object(Bucket=bucket, Key=victim, Body=b"not what was backed up")
    broken = {**env, "BTEC_BACKUP_DIR": str(tmp_path / "broken")}
    refused = cli("db", "offsite-fetch", name, "--json", env=broken)
    assert refused.exit_code == 1
    assert "checksum mismatch" in json.loads(refused.stdout)["error"] or "size" in refused.stdout
    assert list((tmp_path / "broken").iterdir()) == []
    missing = cli("db", "offsite-fetch", "btec-19700101T000000Z-000000", "--json", env=broken)
    assert missing.exit_code == 1
    assert "no complete off-site copy" in missing.stdout


def test_offsite_needs_the_s3_backend(
    cli: Callable[..., Any],
    source: str,
    tmp_path: Path,
) -> None:
    env = {"BTEC_DATABASE_URL": source, "BTEC_BACKUP_DIR": str(tmp_path / "b"),
           "BTEC_DATA_DIR": str(tmp_path / "var"), "BTEC_ENV_FILE": ""}  # fmt: skip
    refused = cli("db", "backup", "--offsite", "--json", env=env)
    assert refused.exit_code == 2
    assert "BTEC_STORAGE_BACKEND=s3" in refused.stdout
    assert not (tmp_path / "b").exists() or list((tmp_path / "b").iterdir()) == []
