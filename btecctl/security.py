"""btecctl security: audits of the deployment. `deps`, here, checks the installed Python
packages against known vulnerabilities; `check` joins the group from its own module.

`deps` runs pip-audit as a subprocess of this interpreter (`python -m pip_audit --format json`),
not as a library: pip-audit documents its command line and its JSON output, while every module
of its Python code is private (`pip_audit._audit`, `pip_audit._service`, ...) and may change in
any release. Run by `sys.executable`, it lists the very environment btecctl runs in.

The service is PyPI's vulnerability feed (pip-audit's default) if one query to it answers, else
OSV's API, else exit 3. From the project's own machines neither answers (pypi.org serves the
package index there but answers 404 to the per-release JSON API the feed is part of, and
api.osv.dev does not resolve): there, and in air-gapped colleges, `--advisories` audits against
OSV files on disk instead (btecctl/osv.py), or `--osv-url` names an OSV-compatible mirror
(pip-audit's own option, which the tests use to run the whole pip-audit path on loopback).

pip-audit's quiet failures are loud here. A feed that answers 404 for a release makes it skip
that package ("not found on PyPI") and still print "No known vulnerabilities found": skipped
packages are reported, and an audit that checked none of them is an unreachable service (exit
3), as is a connection lost mid-audit (a traceback of requests). Editable installs (btec
itself) are working copies, not releases, and are left out (`--skip-editable`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer
from rich.table import Table
from rich.text import Text

from btecctl import security_check
from btecctl.context import session
from btecctl.output import (
    FAILED,
    UNREACHABLE,
    JsonOpt,
    err_console,
    fail,
    noun,
    out_console,
    progress,
    report,
)
from server.domain.text import describe

if TYPE_CHECKING:
    from btecctl.osv import Audit

app = noun(
    "Security audits: the installed dependencies (deps) and the deployment's settings and "
    "headers (check)."
)
TIMEOUT_SECONDS = 15  # a request to the service: pip-audit's own default
OSV_URL = "https://api.osv.dev/v1/query"
SERVICES = {"pypi": "PyPI", "osv": "OSV"}  # in the order tried
EDITABLE = "distribution marked as editable"  # pip-audit's skip reason under --skip-editable
# pip-audit's --verbose lines for each package it is done with: what moves the progress bar.
DONE = re.compile(r"DEBUG:pip_audit[\w.]*:(?:Auditing (\S+)|.*could not be audited: (\S+))")
# What requests raises, or pip-audit says, when a service stops answering.
LOST = re.compile(r"requests\.exceptions\.\w*(?:Connection|Proxy|Timeout|SSL)|Could not connect")

AdvisoriesOpt = Annotated[
    Path | None,
    typer.Option(
        "--advisories", metavar="FILE",
        help="Audit against OSV advisories on disk instead of a service: a JSON file of one "
        "advisory or a list of them, or a directory of such *.json files.",
    ),
]  # fmt: skip
OsvUrlOpt = Annotated[
    str | None,
    typer.Option(
        "--osv-url", metavar="URL",
        help=f"Ask this OSV-compatible API (a mirror) instead of PyPI's feed or {OSV_URL}.",
    ),
]  # fmt: skip


def deps(
    ctx: typer.Context, advisories: AdvisoriesOpt = None, osv_url: OsvUrlOpt = None,
    as_json: JsonOpt = False,
) -> None:  # fmt: skip
    """Audit the installed Python packages for known vulnerabilities: exit 1 naming each one
    found, 0 if none is known, 3 if no advisory service answers (then use --advisories).

    Audits the environment btecctl runs in, editable installs (the project itself) left out,
    with pip-audit against PyPI's vulnerability feed, or OSV's API where PyPI's does not
    answer, or the OSV-compatible API `--osv-url` names; with `--advisories`, against OSV
    files instead, for machines without a network.
    `--json` prints `{"ok", "source": "pypi"|"osv"|"file:PATH", "packages": N, "vulnerable":
    [{"name", "version", "id", "aliases", "fixed_versions", "summary"}], "skipped": [{"name",
    "reason"}]}`, `skipped` being the packages the service could not audit."""
    from btecctl import osv

    with session(ctx, as_json):
        if advisories is not None and osv_url is not None:
            raise ValueError("--advisories and --osv-url exclude each other: a file or a service")
        if advisories is None:
            found = _audit_with_service(_services(osv_url), as_json)
        else:
            with progress("reading advisories", None, "files") as tick:
                found = osv.audit(advisories, tick)
    report(as_json, found.as_json(), lambda: _print(found))
    if found.vulnerable:
        raise typer.Exit(FAILED)


app.command("deps")(deps)
app.command("check")(security_check.check)


def _services(osv_url: str | None) -> list[tuple[str, str]]:
    """The services to try in turn, (pip-audit's name, the URL a probe asks)."""
    import importlib.metadata

    if osv_url is not None:
        if not osv_url.startswith(("http://", "https://")):
            raise ValueError(f"--osv-url {osv_url!r}: not an http:// or https:// URL")
        return [("osv", osv_url)]
    version = importlib.metadata.version("pip-audit")
    return [("pypi", f"https://pypi.org/pypi/pip-audit/{version}/json"), ("osv", OSV_URL)]


def _audit_with_service(services: list[tuple[str, str]], as_json: bool) -> Audit:
    """pip-audit against the first of `services` that answers a probe; exit 3 if none does."""
    from btecctl import osv

    refusals = []
    for kind, url in services:
        refusal = _probe(kind, url)
        if refusal is None:
            break
        refusals.append(f"{SERVICES[kind]} ({url}) {refusal}")
    else:
        fail(f"no advisory service answered: {'; '.join(refusals)}; offline, audit against "
             "OSV files with --advisories FILE", code=UNREACHABLE, as_json=as_json)  # fmt: skip
    with progress(f"auditing against {SERVICES[kind]}", len(osv.installed()), "packages") as tick:
        out, said = _pip_audit(kind, url, tick)
    return _result(kind, out, said, as_json)


def _probe(kind: str, url: str) -> str | None:
    """None if the service answers a query about pip-audit's own release as pip-audit would
    ask it, else what went wrong. Proxies come from the environment (HTTPS_PROXY, NO_PROXY),
    as they do for pip-audit."""
    import http.client
    import importlib.metadata
    import urllib.error
    import urllib.request

    query = {"package": {"name": "pip-audit", "ecosystem": "PyPI"},
             "version": importlib.metadata.version("pip-audit")}  # fmt: skip
    body = json.dumps(query).encode() if kind == "osv" else None
    request = urllib.request.Request(  # noqa: S310 - http(s) only, checked by _services
        url, data=body, headers={"Content-Type": "application/json"}
    )
    try:
        # An opener of its own: urlopen's global one keeps the proxies of its first call.
        with urllib.request.build_opener().open(request, timeout=TIMEOUT_SECONDS) as resp:
            answer = json.load(resp)
    except urllib.error.HTTPError as exc:
        return f"answered HTTP {exc.code}"
    except urllib.error.URLError as exc:
        why = exc.reason
        return f"unreachable: {describe(why) if isinstance(why, BaseException) else why}"
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return f"unreachable: {describe(exc)}"
    return None if isinstance(answer, dict) else "answered with something else than JSON"


def _pip_audit(kind: str, url: str, tick: Callable[[str], None]) -> tuple[str, list[str]]:
    """Run pip-audit on this interpreter's environment: its JSON report (empty if it
    failed), and what it said on stderr besides the per-package lines that move `tick`."""
    import subprocess  # nosec B404 # runs only this interpreter's pip-audit, as an argv list
    import sys
    import tempfile

    args = [sys.executable, "-m", "pip_audit", "--format", "json", "--output", "-",
            "--vulnerability-service", kind, "--skip-editable", "--desc", "on", "--aliases",
            "on", "--progress-spinner", "off", "--timeout", str(TIMEOUT_SECONDS), "--verbose",
            *(["--osv-url", url] if kind == "osv" else [])]  # fmt: skip
    said: list[str] = []
    # The report to a file: read after the end, a pipe of it could fill while stderr is read.
    with tempfile.TemporaryFile("w+") as out:
        with subprocess.Popen(args, stdout=out, stderr=subprocess.PIPE, text=True) as proc:  # nosec B603 # argv list: sys.executable -m pip_audit and our options, no shell
            if proc.stderr is None:
                raise RuntimeError("Popen(stderr=PIPE) gave no stderr")
            for line in proc.stderr:
                done = DONE.match(line)
                if done:
                    tick(done[1] or done[2])
                elif not line.startswith("DEBUG:"):
                    said.append(line.rstrip())
        out.seek(0)
        return out.read(), said


def _result(service: str, out: str, said: list[str], as_json: bool) -> Audit:
    """The audit in pip-audit's JSON report (its exit code says no more than the report)."""
    from btecctl.osv import Audit, Finding

    try:
        dependencies = json.loads(out)["dependencies"]
    except (ValueError, KeyError, TypeError):
        _failed(service, said, as_json)
    audited = [d for d in dependencies if "skip_reason" not in d]
    skipped = [(d["name"], d["skip_reason"]) for d in dependencies
               if d.get("skip_reason", EDITABLE) != EDITABLE]  # fmt: skip
    if skipped and not audited:
        fail(f"{SERVICES[service]} audited none of the {len(skipped)} packages: "
             f"{skipped[0][1]}", code=UNREACHABLE, as_json=as_json)  # fmt: skip
    vulnerable = [
        Finding(d["name"], d["version"], v["id"], tuple(sorted(v.get("aliases") or ())),
                tuple(v.get("fix_versions") or ()), (v.get("description") or "").strip())
        for d in audited for v in d.get("vulns") or ()
    ]  # fmt: skip
    return Audit(service, len(audited), vulnerable, skipped)


def _failed(service: str, said: list[str], as_json: bool) -> NoReturn:
    """Exit for a pip-audit that wrote no report: 3 if the service stopped answering."""
    lost = next((line for line in said if LOST.search(line)), None)
    if lost is not None:
        fail(f"{SERVICES[service]} stopped answering during the audit: {lost[:200]}",
             code=UNREACHABLE, as_json=as_json)  # fmt: skip
    last = next((line for line in reversed(said) if line.strip()), "it said nothing")
    fail(f"pip-audit failed: {last[:300]}", code=FAILED, as_json=as_json)


def _print(found: Audit) -> None:
    for name, reason in found.skipped:
        err_console.print(Text.assemble(("not audited", "yellow"), f" {name}: {reason}"))
    if not found.vulnerable:
        said = f" in {found.packages} packages ({found.source})"  # a path: text, not markup
        err_console.print(Text.assemble(("no known vulnerabilities", "green"), said))
        return
    table = Table(title=f"known vulnerabilities ({found.source})", title_justify="left")
    for column in ("package", "version", "advisory", "fixed in", "summary"):
        table.add_column(column, overflow="fold")
    for f in found.vulnerable:
        advisory = f.id + (f" ({', '.join(f.aliases)})" if f.aliases else "")
        fixed = ", ".join(f.fixed_versions) or "none yet"
        table.add_row(*map(Text, (f.name, f.version, advisory, fixed, f.summary)))
    out_console.print(table)
    count, names = len(found.vulnerable), len({f.name for f in found.vulnerable})
    said = (f" {count} known {'vulnerability' if count == 1 else 'vulnerabilities'} in "
            f"{names} of {found.packages} packages")  # fmt: skip
    err_console.print(Text.assemble(("error:", "bold red"), said))
