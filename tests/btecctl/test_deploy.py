"""`btecctl deploy files`: it lists every file btec ships for deployment, copies them into a
folder, leaves the ones already there alone when they are the same, and refuses to overwrite
one an operator changed (exit 1, naming it, nothing copied) unless --force. The release
install's copy (from the wheel) is tested in tests/deploy/test_wheel.py."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from server.config.assets import PROJECT_ROOT

ENV = {"BTEC_ENV_FILE": ""}


def _shipped() -> set[str]:
    found = {str(p.relative_to(PROJECT_ROOT / "deploy"))
             for p in (PROJECT_ROOT / "deploy").rglob("*") if p.is_file()}  # fmt: skip
    monitoring = (PROJECT_ROOT / "runbooks" / "monitoring").iterdir()
    return found | {f"monitoring/{p.name}" for p in monitoring}


def test_it_lists_every_shipped_file(cli: Callable[..., Any]) -> None:
    done = cli("deploy", "files", "--json", env=ENV)
    assert done.exit_code == 0, done.stderr
    listed = json.loads(done.stdout)
    assert listed["from"] == "checkout"
    assert {f["name"] for f in listed["files"]} == _shipped()
    assert "systemd/btec-api@.service" in {f["name"] for f in listed["files"]}


def test_it_copies_then_keeps_what_is_the_same(cli: Callable[..., Any], tmp_path: Path) -> None:
    out = tmp_path / "shipped"
    first = json.loads(cli("deploy", "files", "--out", str(out), "--json", env=ENV).stdout)
    assert {f["state"] for f in first["files"]} == {"new"}
    assert (out / "btec.env").read_bytes() == (PROJECT_ROOT / "deploy/btec.env").read_bytes()
    again = json.loads(cli("deploy", "files", "--out", str(out), "--json", env=ENV).stdout)
    assert {f["state"] for f in again["files"]} == {"same"}


def test_a_changed_file_is_not_overwritten_without_force(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    out = tmp_path / "shipped"
    assert cli("deploy", "files", "--out", str(out), env=ENV).exit_code == 0
    changed = out / "systemd" / "btec-worker.service"
    changed.write_text(changed.read_text() + "# a local change\n")
    (out / "haproxy" / "haproxy.cfg").unlink()  # gone: copied again either way

    refused = cli("deploy", "files", "--out", str(out), "--json", env=ENV)
    assert refused.exit_code == 1
    assert json.loads(refused.stdout)["differs"] == ["systemd/btec-worker.service"]
    assert "# a local change" in changed.read_text()
    assert not (out / "haproxy" / "haproxy.cfg").exists()  # nothing was copied

    forced = cli("deploy", "files", "--out", str(out), "--force", "--json", env=ENV)
    assert forced.exit_code == 0, forced.stderr
    assert "# a local change" not in changed.read_text()
    assert (out / "haproxy" / "haproxy.cfg").is_file()


def test_a_folder_that_is_a_file_is_bad_usage(cli: Callable[..., Any], tmp_path: Path) -> None:
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    done = cli("deploy", "files", "--out", str(a_file), "--json", env=ENV)
    assert done.exit_code == 2
    assert "is not a folder" in json.loads(done.stdout)["error"]


def test_a_folder_it_cannot_write_fails_cleanly(cli: Callable[..., Any], tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "systemd").write_text("a file where a folder must go")
    done = cli("deploy", "files", "--out", str(blocked), "--json", env=ENV)
    assert done.exit_code == 1
    assert "cannot write" in json.loads(done.stdout)["error"]
    assert "Traceback" not in done.stdout + done.stderr
