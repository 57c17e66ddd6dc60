"""The architecture holds: the layers of ARCHITECTURE.md (import-linter's contracts in
pyproject.toml, every import counted: module level, in functions, under TYPE_CHECKING), no
import cycles, no I/O when a module is imported, and deny by default on every route."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from server.app import create_app
from server.config.settings import Settings
from server.http.guard import GUARD, public, roles

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"

# Exactly these routes answer anyone; every other one needs a signed-in user or an operator.
PUBLIC_ROUTES = {
    ("GET", "/api/v1/health/live"),
    ("GET", "/api/v1/health/ready"),
    ("GET", "/api/v1/health"),
    ("GET", "/api/v1/units"),
    ("GET", "/api/v1/units/{id}"),
    ("POST", "/api/v1/auth/login"),
    ("POST", "/api/v1/auth/refresh"),
    ("POST", "/api/v1/auth/register"),
    ("POST", "/api/v1/auth/password/forgot"),
    ("POST", "/api/v1/auth/password/reset"),
    ("GET", "/api/v1/auth/verify/confirm"),
    ("POST", "/api/v1/auth/verify/confirm"),
    ("GET", "/api/docs"),
    ("GET", "/api/docs/openapi.json"),
    ("GET", "/static/swagger"),
    # btec's own pages for mailed links (BTEC_FRONTEND_URL unset) and their script and style
    ("GET", "/verify-email"),
    ("GET", "/confirm-email-change"),
    ("GET", "/reset-password"),
    ("GET", "/pages/pages.js"),
    ("GET", "/pages/pages.css"),
}
OPERATOR_ROUTES = {
    ("GET", "/metrics"),
    ("POST", "/api/v1/ops/mail/test"),
    ("GET", "/api/v1/ops/jobs/{job_id}"),
}


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """import-linter over the packages found first on the path at `root`, with its config."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Callable[[], Path]:
    """A fresh copy of server/, btecctl/ and pyproject.toml to add a bad import to."""
    base = tmp_path_factory.mktemp("tree")

    def make() -> Path:
        target = base / f"copy{len(list(base.iterdir()))}"
        for package in ("server", "btecctl"):
            shutil.copytree(ROOT / package, target / package,
                            ignore=shutil.ignore_patterns("__pycache__"))  # fmt: skip
        shutil.copy(ROOT / "pyproject.toml", target / "pyproject.toml")
        return target

    return make


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "source", "broken"),
    [
        # an adapter reaching up into a use case, at module level
        ("server/platform/back.py", "from server.services import health\n", "layers"),
        # the same, only under TYPE_CHECKING
        (
            "server/platform/back.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from server.services.health import HealthService\n",
            "layers",
        ),
        # inside a function
        ("server/domain/back.py", "def f():\n    from server.config import settings\n", "layers"),
        # the CLI reaching into the HTTP edge
        ("btecctl/back.py", "from server.http import deps\n", "btecctl reaches"),
        # two siblings that import each other
        ("server/store/back.py", "from server.jobs import queue\n", "layers"),
    ],
)
def test_a_back_arrow_breaks_a_contract(
    tree_copy: Callable[[], Path], module: str, source: str, broken: str
) -> None:
    root = tree_copy()
    (root / module).write_text(source)
    result = lint_imports(root)
    assert result.returncode == 1, result.stdout
    assert "BROKEN" in result.stdout
    assert broken in result.stdout.split("Broken contracts", 1)[1]


def test_an_import_cycle_breaks_the_acyclic_contract(tree_copy: Callable[[], Path]) -> None:
    root = tree_copy()
    (root / "server/domain/cycle_a.py").write_text("from server.domain import cycle_b\n")
    (root / "server/domain/cycle_b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from server.domain import cycle_a\n"
    )
    result = lint_imports(root)
    assert result.returncode == 1
    assert "No import cycles" in result.stdout.split("Broken contracts", 1)[1]


# No I/O at import: every module of server/ and btecctl/ is imported in a fresh interpreter
# with an audit hook that records file, socket and process events raised while one of our
# modules' top-level code runs, unless an import (a library loading itself) lies between.
IMPORT_PROBE = textwrap.dedent(
    """
    import json, pkgutil, sys, importlib
    ROOTS = {ROOTS!r}
    EVENTS = ("open", "os.listdir", "os.scandir", "glob.glob", "os.mkdir", "os.remove",
              "os.rename", "shutil.rmtree", "socket.connect", "socket.bind", "socket.getaddrinfo",
              "subprocess.Popen", "os.system", "os.exec", "os.spawn", "os.posix_spawn")
    found = []

    def ours(code):
        return code.co_name == "<module>" and any(code.co_filename.startswith(r) for r in ROOTS)

    def hook(event, args):
        if event not in EVENTS:
            return
        frame = sys._getframe(1)
        while frame is not None:
            code = frame.f_code
            if code.co_filename.startswith("<frozen importlib"):
                return  # a library importing itself
            if ours(code):
                found.append([code.co_filename, frame.f_lineno, event, str(args[0])[:200]])
                return
            frame = frame.f_back

    sys.addaudithook(hook)
    for package in {PACKAGES!r}:
        importlib.import_module(package)
        for info in pkgutil.walk_packages(sys.modules[package].__path__, package + "."):
            if not info.name.endswith(".__main__"):  # runs the program, by design
                importlib.import_module(info.name)
    print(json.dumps(found))
    """
)


def imports_doing_io(root: Path, packages: tuple[str, ...]) -> list[list[Any]]:
    roots = [str(root / p) for p in packages]
    probe = IMPORT_PROBE.replace("{ROOTS!r}", repr(roots)).replace("{PACKAGES!r}", repr(packages))
    env = {**os.environ, "PYTHONPATH": str(root)}
    done = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, check=True)  # fmt: skip
    found: list[list[Any]] = json.loads(done.stdout.strip().splitlines()[-1])
    return found


def test_no_module_does_io_when_imported() -> None:
    assert imports_doing_io(ROOT, ("server", "btecctl")) == []


def test_the_io_probe_sees_a_module_that_reads_a_file_at_import(
    tree_copy: Callable[[], Path],
) -> None:
    root = tree_copy()
    (root / "server/domain/reads.py").write_text(
        "from pathlib import Path\nTEXT = Path(__file__).read_text()\n"
    )
    found = imports_doing_io(root, ("server",))
    assert [(Path(f).name, event) for f, _, event, _ in found] == [("reads.py", "open")]


# Deny by default.


def routes_by_access(app: web.Application) -> dict[str, set[tuple[str, str]]]:
    guard = app[GUARD]
    found: dict[str, set[tuple[str, str]]] = {}
    for route in app.router.routes():
        if route.method == "HEAD":  # aiohttp adds one beside each GET
            continue
        assert route.resource is not None
        found.setdefault(guard.access(route).who, set()).add(
            (route.method, route.resource.canonical)
        )
    return found


def test_exactly_the_intended_routes_are_public(settings: Settings) -> None:
    found = routes_by_access(create_app(settings))
    assert found["public"] == PUBLIC_ROUTES
    assert found["operator"] == OPERATOR_ROUTES
    assert len(found["user"]) >= 30


async def test_an_unmarked_route_needs_a_signed_in_user(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    async def forgot_to_check(request: web.Request) -> web.Response:
        return web.json_response({"secret": "anyone could read this"})

    app = create_app(settings)
    app.router.add_get("/api/v1/new", forgot_to_check)
    client = await aiohttp_client(app)
    resp = await client.get("/api/v1/new")
    assert resp.status == 401
    assert (await resp.json(content_type=None))["code"] == "unauthorized"
    assert "secret" not in await resp.text()


async def test_a_route_both_public_and_for_roles_stops_the_start(
    aiohttp_client: Callable[..., Any], settings: Settings
) -> None:
    @roles("admin")
    @public
    async def confused(request: web.Request) -> web.Response:
        return web.json_response({})

    app = create_app(settings)
    app.router.add_get("/api/v1/confused", confused)
    with pytest.raises(ValueError, match="roles are for signed-in users"):
        await aiohttp_client(app)
