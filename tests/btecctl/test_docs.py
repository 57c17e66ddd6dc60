"""Documentation is tested: OpenAPI completeness, the generated references (CLI,
configuration, API) match the code, the README starts with its two commands and links every
reference and runbook, and every command a runbook shows exists."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import typer
from pydantic import SecretStr

from btecctl.main import app as cli_app
from server.app import create_app
from server.config.settings import Settings
from tests.support.env import ROOT

README = (ROOT / "README.md").read_text()
CLI_REFERENCE = (ROOT / "docs" / "cli.md").read_text()
HTTP_METHODS = {"get", "post", "put", "patch", "delete"}


def all_commands(leaves: bool = True, hidden: bool = False) -> Iterator[tuple[str, Any]]:
    """Every leaf command of btecctl by its path (`db migrate`), or every group that runs on
    its own (`jobs`); hidden ones (old names kept working, such as `tasks`) only if asked."""
    root = typer.main.get_command(cli_app)

    def walk(group: Any, prefix: str) -> Iterator[tuple[str, Any]]:
        for name, cmd in group.commands.items():
            if cmd.hidden and not hidden:
                continue
            path = f"{prefix} {name}".strip()
            if hasattr(cmd, "commands"):
                if not leaves and cmd.invoke_without_command:
                    yield path, cmd
                yield from walk(cmd, path)
            elif leaves:
                yield path, cmd

    yield from walk(root, "")


COMMANDS = dict(all_commands())
RUNNABLE = {**COMMANDS, **dict(all_commands(leaves=False))}


async def test_every_operation_is_documented(client: Any) -> None:
    spec = await (await client.get("/api/docs/openapi.json")).json()
    assert spec["openapi"] == "3.0.3"
    assert "bearerAuth" in spec["components"]["securitySchemes"]
    assert "Problem" in spec["components"]["schemas"]
    operations = [
        (path, method, op)
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if method in HTTP_METHODS
    ]
    assert {p for p, _, _ in operations} >= {
        "/api/v1/health/live",
        "/api/v1/health/ready",
        "/api/v1/health",
        "/metrics",
    }
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert op.get("summary"), where
        assert "security" in op, where
        responses = op["responses"]
        ok = [r for code, r in responses.items() if code.startswith("2")]
        assert ok, where
        with_body = [r for code, r in responses.items() if code.startswith("2") and code != "204"]
        assert all("example" in str(r) for r in with_body), where
        if "requestBody" in op and "multipart/form-data" in op["requestBody"]["content"]:
            # Uploads: Swagger UI offers a file picker for each binary field.
            form = op["requestBody"]["content"]["multipart/form-data"]["schema"]
            assert any(f.get("format") == "binary" for f in form["properties"].values()), where
        elif "requestBody" in op:
            body = op["requestBody"]["content"]["application/json"]["schema"]
            name = body.get("$ref", "").rsplit("/", 1)[-1]
            # Swagger UI builds the request example from the fields' examples.
            assert "example" in str(spec["components"]["schemas"].get(name) or body), where
        problems = [r for code, r in responses.items() if int(code) >= 400]
        assert problems, where
        for r in problems:
            content = r["content"]
            if "application/problem+json" in content:
                examples = content["application/problem+json"]["examples"]
                assert all(e["value"]["code"] == name for name, e in examples.items()), where


async def test_docs_ui_is_served(client: Any) -> None:
    resp = await client.get("/api/docs")
    assert resp.status == 200
    assert "swagger" in (await resp.text()).lower()


@pytest.mark.parametrize(("env", "docs_ui", "served"), [
    ("production", None, False), ("production", True, True), ("test", False, False),
])  # fmt: skip
async def test_docs_ui_switch(
    aiohttp_client: Callable[..., Any], make_settings: Callable[..., Settings],
    env: str, docs_ui: bool | None, served: bool,
) -> None:  # fmt: skip
    """Swagger UI is off in production unless asked for; the document itself stays."""
    strong = "kT3v0Qm9ZrX2bW8yHc5NpL1sJd7FgA4uEo6iRt0qVx-_"
    settings = make_settings(env=env, docs_ui=docs_ui, secret_key=SecretStr(strong),
                             scan_disabled=True)  # fmt: skip
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/api/docs")).status == (200 if served else 404)
    assert (await client.get("/api/docs/openapi.json")).status == 200


def test_readme_starts_with_the_two_commands() -> None:
    blocks = re.findall(r"```(?:sh|bash|console)?\n(.*?)```", README, re.S)
    first = [line for line in blocks[0].splitlines() if line.strip()]
    assert len(first) == 2, first
    assert "btecctl serve" in first[0]
    assert "pytest" in first[1]


def test_the_generated_references_match_the_code(cli: Callable[..., Any]) -> None:
    """docs/cli.md, configuration.md and api.md are what `btecctl dev docs` writes now."""
    result = cli("dev", "docs", "--check", "--json", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0, result.stdout
    assert json.loads(result.stdout)["stale"] == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_is_in_the_cli_reference(command: str) -> None:
    assert f"## `btecctl {command}`" in CLI_REFERENCE, command


def test_the_readme_links_every_reference_and_runbook() -> None:
    links = set(re.findall(r"\]\(([^)#]+)", README))
    pages = {"docs/cli.md", "docs/configuration.md", "docs/api.md", "docs/architecture.md"}
    runbooks = {
        f"runbooks/{p.name}" for p in (ROOT / "runbooks").glob("*.md") if p.name != "README.md"
    }
    assert pages | runbooks <= links
    assert all((ROOT / link).exists() for link in links if not link.startswith("http"))


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_command_has_json(command: str) -> None:
    params = {opt for p in COMMANDS[command].params for opt in getattr(p, "opts", [])}
    assert "--json" in params, command


def test_every_setting_is_in_the_configuration_reference() -> None:
    table = (ROOT / "docs" / "configuration.md").read_text()
    documented = set(re.findall(r"^\| `((?:BTEC_)?[A-Z0-9_]+)` \|", table, re.M))
    fields = {f"BTEC_{name.upper()}" for name in Settings.model_fields} - {"BTEC_SENTRY_DSN"}
    fields.add("SENTRY_DSN")  # read under its usual name (BTEC_SENTRY_DSN works too)
    assert fields - documented == set(), "undocumented settings"
    assert (
        documented - fields - {"BTEC_ENV_FILE", "BTEC_TEST_DATABASE_URL", "BTEC_TEST_REDIS_URL"}
        == set()
    )


def runbook_commands() -> list[str]:
    found = []
    for md in sorted((ROOT / "runbooks").glob("**/*.md")):
        for block in re.findall(r"```(?:sh|bash|console)?\n(.*?)```", md.read_text(), re.S):
            for line in block.splitlines():
                line = line.strip().removeprefix("$ ")
                if line.startswith("btecctl "):
                    found.append(line)
    return found


RUNBOOK_COMMANDS = runbook_commands()
_PREFIXES = {" ".join(k.split()[: i + 1]) for k in RUNNABLE for i in range(len(k.split()))}


def test_runbooks_show_commands() -> None:
    assert len(RUNBOOK_COMMANDS) >= 5


@pytest.mark.parametrize("line", RUNBOOK_COMMANDS)
def test_runbook_commands_exist(line: str, cli: Callable[..., Any]) -> None:
    words = [w for w in shlex.split(line.split("#")[0]) if not w.startswith("BTEC_")]
    path = []
    for word in words[1:]:
        if word.startswith("-") or " ".join([*path, word]) not in _PREFIXES:
            break
        path.append(word)
    command = " ".join(path)
    assert command in RUNNABLE, line
    params = RUNNABLE[command].params
    options = {o for p in params for o in getattr(p, "opts", [])}
    options |= {o for p in params for o in getattr(p, "secondary_opts", [])}
    for word in words:
        if word.startswith("--"):
            assert word.split("=")[0] in options, (line, word)
    result = cli(*path, "--help", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0, line


@pytest.mark.parametrize("command", sorted(RUNNABLE))
def test_help_shows_flags_and_readable_metavars(command: str, cli: Callable[..., Any]) -> None:
    """Flags as flags, values by a name (`--steps N`), never typer's `<bool>` or `<str>`."""
    shown = cli(*command.split(), "--help", env={"BTEC_ENV_FILE": ""}).stdout
    options = shown.split("Options:", 1)[1]
    assert not re.search(r"<(bool|str|int|float)[^>]*>", options), shown


def test_help_shows_defaults(cli: Callable[..., Any]) -> None:
    shown = cli("db", "rollback", "--help", env={"BTEC_ENV_FILE": ""}).stdout
    assert re.search(r"--steps N .*\[default: 1", shown), shown
    assert "backups and restores" in cli("db", "--help", env={"BTEC_ENV_FILE": ""}).stdout
