"""`btecctl security deps` through the real CLI, on the environment the suite runs in.

fixtures/osv/ holds two real advisories exactly as github/advisory-database publishes them
(advisories/github-reviewed/2024/05/GHSA-h75v-3vvj-5mfj and 2024/06/GHSA-34jh-p97f-mpxf): old
Jinja2 and urllib3 releases, fixed in the versions installed here, so they must pass. The
tests that must find something write a copy of one of them into tmp_path, widened to the
installed version, and say so where they do. The default audit runs pip-audit against a real
service when one answers from this machine (skipped otherwise, with the reason), and against
a stand-in OSV API on loopback (`osv_api`) through `--osv-url`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from packaging.utils import canonicalize_name
from packaging.version import Version

from btecctl.output import FAILED, OK, UNREACHABLE, USAGE
from tests.support.env import closed_port

FIXTURES = Path(__file__).parent / "fixtures" / "osv"
JINJA = FIXTURES / "GHSA-h75v-3vvj-5mfj.json"  # Jinja2, introduced 0, fixed 3.1.4
URLLIB3 = FIXTURES / "GHSA-34jh-p97f-mpxf.json"  # urllib3 < 1.26.19, and 2.0.0 to 2.2.2
ENV = {"BTEC_ENV_FILE": ""}
KEYS = {"ok", "source", "packages", "vulnerable", "skipped"}
FINDING_KEYS = {"name", "version", "id", "aliases", "fixed_versions", "summary"}


def audit(cli: Callable[..., Any], *args: str, env: dict[str, Any] | None = None) -> Any:
    """`security deps ARGS --json`: the result, its one JSON document as `.doc`."""
    result = cli("security", "deps", *args, "--json", env={**ENV, **(env or {})})
    assert "Traceback" not in result.stdout + result.stderr
    result.doc = json.loads(result.stdout)
    return result


def real(path: Path) -> dict[str, Any]:
    return dict(json.loads(path.read_text()))


def write(tmp_path: Path, data: Any, name: str = "advisories.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(data))
    return path


def widened(events: list[dict[str, str]] | None = None, **entry: Any) -> dict[str, Any]:
    """A copy of the real Jinja2 advisory whose range is `events` (by default introduced 0
    and no fix: every version, the installed one included), or whose affected entry takes
    `entry`'s fields instead."""
    advisory = copy.deepcopy(real(JINJA))
    affected = advisory["affected"][0]
    if events is not None:
        affected["ranges"][0]["events"] = events
    affected.update(entry)
    return advisory


JINJA_NOW = version("jinja2")


def test_the_real_advisories_pass_the_installed_versions(cli: Callable[..., Any]) -> None:
    # Why they must pass: the versions installed are past both fixes.
    assert Version(JINJA_NOW) >= Version("3.1.4")
    assert Version(version("urllib3")) >= Version("2.2.2")
    for source in (JINJA, URLLIB3, FIXTURES):
        result = audit(cli, "--advisories", str(source))
        assert result.exit_code == OK, result.output
        assert set(result.doc) == KEYS
        assert result.doc["ok"] is True
        assert result.doc["source"] == f"file:{source}"
        assert result.doc["vulnerable"] == []
        assert result.doc["skipped"] == []
        assert result.doc["packages"] > 20
    shown = cli("security", "deps", "--advisories", str(FIXTURES), env=ENV)
    assert shown.exit_code == OK
    assert f"no known vulnerabilities in {result.doc['packages']} packages" in shown.stderr


def test_a_widened_copy_names_package_version_and_advisory(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    # The real GHSA-h75v-3vvj-5mfj, its range widened to introduced 0 with no fix.
    path = write(tmp_path, widened([{"introduced": "0"}]))
    result = audit(cli, "--advisories", str(path))
    assert result.exit_code == FAILED, result.output
    assert result.doc["ok"] is False
    assert result.doc["source"] == f"file:{path}"
    [found] = result.doc["vulnerable"]
    assert found == {"name": "Jinja2", "version": JINJA_NOW, "id": "GHSA-h75v-3vvj-5mfj",
                     "aliases": ["CVE-2024-34064"], "fixed_versions": [],
                     "summary": real(JINJA)["summary"]}  # fmt: skip
    shown = cli("security", "deps", "--advisories", str(path), env=ENV)
    assert shown.exit_code == FAILED
    for word in ("Jinja2", JINJA_NOW, "GHSA-h75v-3vvj-5mfj", "CVE-2024-34064"):
        assert word in shown.stdout, shown.stdout
    assert "1 known vulnerability in 1 of" in shown.stderr


@pytest.mark.parametrize(
    ("events", "code"),
    [
        ([{"introduced": JINJA_NOW}], FAILED),  # from the installed version on
        ([{"introduced": "0"}, {"last_affected": JINJA_NOW}], FAILED),
        ([{"introduced": "0"}, {"fixed": JINJA_NOW}], OK),  # fixed in the installed version
        ([{"introduced": "0"}, {"last_affected": "3.1.5"}], OK),
        ([{"introduced": "0"}, {"fixed": "3.0"}, {"introduced": "3.1"}], FAILED),  # reopened
        ([{"introduced": "3.1"}, {"introduced": "0"}, {"fixed": "3.0"}], FAILED),  # any order
        ([{"introduced": "0"}, {"fixed": "3.0"}, {"introduced": "4.0"}], OK),
    ],
)
def test_ecosystem_ranges(
    events: list[dict[str, str]], code: int, cli: Callable[..., Any], tmp_path: Path
) -> None:
    # The real GHSA-h75v-3vvj-5mfj with `events` as its range.
    result = audit(cli, "--advisories", str(write(tmp_path, widened(events))))
    assert result.exit_code == code, result.output
    assert len(result.doc["vulnerable"]) == (code == FAILED)


def test_a_versions_list_names_the_installed_version(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    # The real advisory listing versions instead of a range: the installed one, or others.
    listed = widened(versions=[JINJA_NOW], ranges=[])
    others = widened(versions=["3.1.3", "3.1.5", "not.a-version"], ranges=[])
    assert audit(cli, "--advisories", str(write(tmp_path, listed))).exit_code == FAILED
    assert audit(cli, "--advisories", str(write(tmp_path, others))).exit_code == OK


def test_names_compare_as_pep_503_normalises_them(cli: Callable[..., Any], tmp_path: Path) -> None:
    spelled = widened(package={"ecosystem": "PyPI", "name": "Typing.Extensions"},
                      versions=[version("typing-extensions")], ranges=[])  # fmt: skip
    npm = widened(package={"ecosystem": "npm", "name": "jinja2"}, versions=[JINJA_NOW])
    result = audit(cli, "--advisories", str(write(tmp_path, [spelled, npm])))
    assert result.exit_code == FAILED
    assert [canonicalize_name(f["name"]) for f in result.doc["vulnerable"]] == ["typing-extensions"]


def test_a_directory_and_a_withdrawn_advisory(cli: Callable[..., Any], tmp_path: Path) -> None:
    nested = tmp_path / "2024" / "05"
    nested.mkdir(parents=True)
    write(nested, widened([{"introduced": "0"}]), "GHSA-h75v-3vvj-5mfj.json")
    write(tmp_path, real(URLLIB3), "GHSA-34jh-p97f-mpxf.json")
    (tmp_path / "README.md").write_text("not an advisory: only *.json is read")
    found = audit(cli, "--advisories", str(tmp_path))
    assert found.exit_code == FAILED
    assert [f["id"] for f in found.doc["vulnerable"]] == ["GHSA-h75v-3vvj-5mfj"]
    withdrawn = {**widened([{"introduced": "0"}]), "withdrawn": "2024-06-01T00:00:00Z"}
    write(nested, withdrawn, "GHSA-h75v-3vvj-5mfj.json")
    assert audit(cli, "--advisories", str(tmp_path)).exit_code == OK


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ("{not json", "not JSON"),
        ('["GHSA-h75v-3vvj-5mfj"]', "not an OSV advisory"),
        ('{"summary": "no id"}', "no id"),
        ('{"id": "X-1", "affected": {"package": "jinja2"}}', "affected is not a list"),
        ('{"id": "X-1", "aliases": "CVE-1"}', "aliases is not a list of strings"),
        ('{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI"}}]}', "name"),
        ('{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "jinja2"}, '
         '"ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0", "fixed": "1"}]}]}]}',
         "an event is not one of"),
        ('{"id": "X-1", "affected": [{"package": {"ecosystem": "PyPI", "name": "jinja2"}, '
         '"ranges": [{"type": "ECOSYSTEM", "events": [{"fixed": "soon"}]}]}]}',
         "'soon' is not a PEP 440 version"),
    ],
)  # fmt: skip
def test_a_malformed_file_is_bad_input(
    content: str, said: str, cli: Callable[..., Any], tmp_path: Path
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = audit(cli, "--advisories", str(path))
    assert result.exit_code == USAGE, result.output
    assert set(result.doc) == {"ok", "error"}
    assert result.doc["ok"] is False
    assert str(path) in result.doc["error"]
    assert said in result.doc["error"]
    shown = cli("security", "deps", "--advisories", str(path), env=ENV)
    assert shown.exit_code == USAGE
    assert shown.stderr.strip().startswith("error:")
    assert str(path) in shown.stderr


def test_a_missing_file_or_an_empty_directory_is_bad_input(
    cli: Callable[..., Any], tmp_path: Path
) -> None:
    for path, said in ((tmp_path / "nope.json", "no such file"), (tmp_path, "no *.json files")):
        result = audit(cli, "--advisories", str(path))
        assert result.exit_code == USAGE, result.output
        assert result.doc["ok"] is False
        assert str(path) in result.doc["error"]
        assert said in result.doc["error"]
    both = audit(cli, "--advisories", str(JINJA), "--osv-url", "http://127.0.0.1:1/v1/query")
    assert both.exit_code == USAGE
    assert audit(cli, "--osv-url", "ftp://mirror/v1/query").exit_code == USAGE


def _proxied(port: int) -> dict[str, Any]:
    """Every request through a proxy on a closed loopback port: nothing leaves the machine.
    Lower case too, which urllib and requests prefer, and no exemptions."""
    proxy = f"http://127.0.0.1:{port}"
    names = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY")
    return {**dict.fromkeys(names, proxy), **{n.lower(): proxy for n in names},
            "NO_PROXY": None, "no_proxy": None}  # fmt: skip


def test_no_service_answering_exits_3(cli: Callable[..., Any]) -> None:
    env = _proxied(closed_port())
    result = audit(cli, env=env)
    assert result.exit_code == UNREACHABLE, result.output
    assert set(result.doc) == {"ok", "error"}
    assert result.doc["ok"] is False
    for name in ("PyPI", "OSV", "--advisories"):
        assert name in result.doc["error"]
    shown = cli("security", "deps", env={**ENV, **env})
    assert shown.exit_code == UNREACHABLE
    assert len(shown.stderr.strip().splitlines()) == 1, shown.stderr
    assert "Traceback" not in shown.stderr


# A stand-in for OSV's query API --------------------------------------------------------------


@dataclass
class OsvApi:
    """A stand-in for OSV's query API (`POST /v1/query`) on loopback: the real one is a cloud
    service that cannot run here. It answers each package with the advisories of `advisories`
    that name it, whatever the version (each test writes its advisories for the installed
    one), and with `drop`, closes the connection on any package but pip-audit's own (what the
    probe asks), as a service lost mid-audit does."""

    url: str = ""
    advisories: list[dict[str, Any]] = field(default_factory=list)
    drop: bool = False
    asked: list[str] = field(default_factory=list)

    def answer(self, query: dict[str, Any]) -> dict[str, Any] | None:
        name = canonicalize_name(query["package"]["name"])
        self.asked.append(name)
        if self.drop and name != "pip-audit":
            return None
        vulns = [
            a
            for a in self.advisories
            if any(canonicalize_name(e["package"]["name"]) == name for e in a["affected"])
        ]
        return {"vulns": vulns} if vulns else {}  # fmt: skip


@pytest.fixture
def osv_api() -> Iterator[OsvApi]:
    api = OsvApi()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = api.answer(query)
            if answer is None:
                self.close_connection = True
                return
            body = json.dumps(answer).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    api.url = f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()


LOOPBACK = {"NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}


def test_pip_audit_against_an_osv_api(cli: Callable[..., Any], osv_api: OsvApi) -> None:
    clean = audit(cli, "--osv-url", osv_api.url, env=LOOPBACK)
    assert clean.exit_code == OK, clean.output
    assert set(clean.doc) == KEYS
    assert clean.doc["source"] == "osv"
    assert clean.doc["vulnerable"] == []
    assert clean.doc["skipped"] == []  # the project (editable) is left out, not "not found"
    assert "btec" not in osv_api.asked
    assert "jinja2" in osv_api.asked
    assert clean.doc["packages"] == len(set(osv_api.asked))  # pip-audit's own: probe, audit

    # The real GHSA-h75v-3vvj-5mfj widened to the installed version, as the API would answer.
    osv_api.advisories = [widened([{"introduced": "0"}])]
    found = audit(cli, "--osv-url", osv_api.url, env=LOOPBACK)
    assert found.exit_code == FAILED, found.output
    assert found.doc["ok"] is False
    [jinja] = found.doc["vulnerable"]
    assert set(jinja) == FINDING_KEYS
    assert (jinja["name"], jinja["version"]) == ("jinja2", JINJA_NOW)
    # pip-audit makes a CVE (or PYSEC) id the primary one where an advisory has one.
    assert (jinja["id"], jinja["aliases"]) == ("CVE-2024-34064", ["GHSA-h75v-3vvj-5mfj"])
    assert jinja["fixed_versions"] == []
    assert jinja["summary"] == real(JINJA)["summary"]


def test_a_service_lost_mid_audit_exits_3(cli: Callable[..., Any], osv_api: OsvApi) -> None:
    osv_api.drop = True
    result = audit(cli, "--osv-url", osv_api.url, env=LOOPBACK)
    assert result.exit_code == UNREACHABLE, result.output
    assert "stopped answering" in result.doc["error"]
    closed = audit(cli, "--osv-url", f"http://127.0.0.1:{closed_port()}/v1/query", env=LOOPBACK)
    assert closed.exit_code == UNREACHABLE
    assert "127.0.0.1" in closed.doc["error"]


# The real services -------------------------------------------------------------------------


def _unreachable_services() -> str | None:
    """None if PyPI's vulnerability feed or OSV's API answers a query from here, as pip-audit
    would ask it; else why neither does."""
    pip_audit = version("pip-audit")
    query = {"package": {"name": "pip-audit", "ecosystem": "PyPI"}, "version": pip_audit}
    asks = [
        urllib.request.Request(f"https://pypi.org/pypi/pip-audit/{pip_audit}/json"),
        urllib.request.Request("https://api.osv.dev/v1/query", data=json.dumps(query).encode()),
    ]
    said = []
    for ask in asks:
        try:
            with contextlib.closing(urllib.request.build_opener().open(ask, timeout=10)):
                return None
        except (urllib.error.URLError, OSError) as exc:
            said.append(f"{ask.full_url}: {exc}")
    return "; ".join(said)


def test_the_real_default_audit(cli: Callable[..., Any]) -> None:
    why = _unreachable_services()
    if why is not None:
        pytest.skip(f"no vulnerability service answers from this machine ({why})")
    result = audit(cli)
    assert result.exit_code in (OK, FAILED), result.output
    assert set(result.doc) == KEYS
    assert result.doc["source"] in ("pypi", "osv")
    assert result.doc["packages"] > 20
    assert result.doc["ok"] is (result.exit_code == OK)
    assert all(set(f) == FINDING_KEYS for f in result.doc["vulnerable"])
    assert "btec" not in {s["name"] for s in result.doc["skipped"]}
