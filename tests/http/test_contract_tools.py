"""The API contract as the front-end tools read it (the npm packages of package.json): redocly
lints the OpenAPI document clean (its warnings each listed in docs/api-contract.md),
openapi-typescript types every success answer, the TypeScript example in docs/typescript.md
compiles against those types, the committed Postman collection is what `btecctl dev postman`
makes, and newman runs it against a real `btecctl serve`, every test passing.

Without `npm ci` these skip, saying so; CI sets BTEC_TEST_REQUIRE_NPM, and they fail."""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from btecctl import postman
from btecctl.reference import openapi_text
from server.app.factory import openapi_document
from server.config.settings import Settings
from tests.support.accounts import CHEAP_ENV, PASSWORD
from tests.support.env import ROOT, cli_env, free_port
from tests.support.npm import npm_tool, run_tool
from tests.support.processes import Served

CONTRACT_PAGE = ROOT / "docs" / "api-contract.md"
TYPESCRIPT_PAGE = ROOT / "docs" / "typescript.md"
COLLECTION = postman.OUT_DIR / postman.COLLECTION
ENVIRONMENT = postman.OUT_DIR / postman.ENVIRONMENT
ADMIN_EMAIL = "ada@college.example.ac.uk"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return openapi_document(Settings.model_construct())


@pytest.fixture
def spec_file(spec: dict[str, Any], tmp_path: Path) -> Path:
    """The document as `btecctl dev openapi --out` writes it now."""
    path = tmp_path / "openapi.json"
    path.write_text(openapi_text(spec))
    return path


def operation_ids(spec: dict[str, Any]) -> dict[str, str]:
    """JSON pointer of each operation -> its operationId."""
    return {
        f"#/paths/{path.replace('~', '~0').replace('/', '~1')}/{method}": op["operationId"]
        for path, item in spec["paths"].items()
        for method, op in item.items()
        if isinstance(op, dict) and "operationId" in op
    }


def documented_warnings() -> set[tuple[str, str]]:
    """(rule, where) of each row of docs/api-contract.md's table of warnings that stay."""
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| `([^`]+)` \|", CONTRACT_PAGE.read_text(), re.M)
    return set(rows)


def test_redocly_lint_finds_no_error_and_only_documented_warnings(
    spec: dict[str, Any], spec_file: Path
) -> None:
    done = run_tool("redocly", "lint", str(spec_file), "--format=json",
                    "--config", str(ROOT / "redocly.yaml"))  # fmt: skip
    report = json.loads(done.stdout)
    errors = [p for p in report["problems"] if p["severity"] == "error"]
    assert report["totals"]["errors"] == 0, errors
    pointers = operation_ids(spec)
    found = set()
    for problem in report["problems"]:
        pointer = problem["location"][0]["pointer"]
        operation = next((op for p, op in pointers.items() if pointer.startswith(p + "/")), None)
        found.add((problem["ruleId"], operation or pointer.removeprefix("#/")))
    assert found == documented_warnings(), "list each warning in docs/api-contract.md, or fix it"


# openapi-typescript's output, comments gone: what each operation answers.
_OPEN, _CLOSE = "{[(<", "}])>"


def members(body: str) -> dict[str, str]:
    """The members of a TypeScript object type's body: name -> type (`?` dropped)."""
    found, depth, start = {}, 0, 0
    for i, char in enumerate(body):
        if char in _OPEN:
            depth += 1
        elif char in _CLOSE and body[i - 1 : i + 1] != "=>":
            depth -= 1
        elif char == ";" and depth == 0:
            name, _, kind = body[start:i].strip().partition(":")
            start = i + 1
            if name:
                found[name.strip().rstrip("?").strip('"')] = kind.strip()
    return found


def inner(kind: str) -> str:
    assert kind.startswith("{"), kind[:80]
    assert kind.endswith("}"), kind[-80:]
    return kind[1:-1]


def success_types(declarations: str) -> Iterator[tuple[str, str, str, str]]:
    """(operation, status, media type, TypeScript type) of each 2xx answer with a body;
    media type "" for one documented with none."""
    text = re.sub(r"/\*.*?\*/|//[^\n]*", "", declarations, flags=re.S)
    start = text.index("export interface operations {") + len("export interface operations ")
    depth = 0
    for end in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[end], 0)
        if depth == 0:
            break
    for operation, kind in members(text[start + 1 : end]).items():
        for status, answer in members(inner(members(inner(kind))["responses"])).items():
            if not status.startswith("2") or status == "204":
                continue
            content = members(inner(answer)).get("content", "never")
            if content == "never":
                yield operation, status, "", "never"
                continue
            for media, body in members(inner(content)).items():
                yield operation, status, media, body


def test_openapi_typescript_types_every_success_answer(
    spec: dict[str, Any], spec_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "btec.d.ts"
    done = run_tool("openapi-typescript", str(spec_file), "-o", str(out))
    assert done.returncode == 0, done.stderr
    found = list(success_types(out.read_text()))
    assert {op for op, *_ in found} == {
        op["operationId"]
        for item in spec["paths"].values()
        for op in item.values()
        if isinstance(op, dict) and any(c.startswith("2") and c != "204" for c in op["responses"])
    }
    untyped = [
        (op, status, media, body[:80])
        for op, status, media, body in found
        if re.search(r"\b(unknown|never)\b", body)
    ]
    assert untyped == []


def test_the_typescript_example_compiles(spec_file: Path, tmp_path: Path) -> None:
    """docs/typescript.md's example, against the types generated now (tsc --noEmit)."""
    typed = run_tool("openapi-typescript", str(spec_file), "-o", str(tmp_path / "btec.d.ts"))
    assert typed.returncode == 0, typed.stderr
    blocks = re.findall(r"```ts\n(.*?)```", TYPESCRIPT_PAGE.read_text(), re.S)
    assert len(blocks) == 1
    (tmp_path / "example.ts").write_text(blocks[0])
    fetch = ROOT / "node_modules" / "openapi-fetch"
    config = {
        "compilerOptions": {
            "strict": True, "noEmit": True, "target": "ES2022", "module": "ESNext",
            "moduleResolution": "bundler", "lib": ["ES2022", "DOM"], "skipLibCheck": True,
            "paths": {"openapi-fetch": [str(fetch)]},
        },
        "files": ["example.ts"],
    }  # fmt: skip
    (tmp_path / "tsconfig.json").write_text(json.dumps(config))
    done = run_tool("tsc", "-p", str(tmp_path), cwd=tmp_path)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_committed_collection_is_what_the_generator_makes(cli: Callable[..., Any]) -> None:
    npm_tool("openapi2postmanv2")
    result = cli("dev", "postman", "--check", "--json", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0, result.output + "\nrun: btecctl dev postman"
    assert json.loads(result.stdout)["stale"] == []


def items(document: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for folder in document["item"]:
        for item in folder["item"]:
            yield folder["name"], item


def test_the_collection_signs_in_and_tests_every_answer(spec: dict[str, Any]) -> None:
    """Read from the committed file: no npm needed."""
    document = json.loads(COLLECTION.read_text())
    names = [folder["name"] for folder in document["item"]]
    assert names == [f.name for f in postman.FOLDERS]
    assert names[-1] == postman.MAILED.name  # not run by CI, and last
    first = next(items(document))[1]
    assert first["request"]["auth"] == {"type": "noauth"}
    sign_ins = []
    for _, item in items(document):
        request = item["request"]
        if request["url"]["raw"] == "{{baseUrl}}/api/v1/auth/login":
            sign_ins.append(item)
        script = "\n".join(item["event"][0]["script"]["exec"])
        assert "pm.response.code).to.be.oneOf(" in script, item["name"]
        auth = request["auth"]
        if auth["type"] == "bearer":
            token = auth["bearer"][0]["value"]
            assert token in ("{{accessToken}}", "{{opsToken}}", "{{metricsToken}}"), item["name"]
            path = request["url"]["path"]
            operator = path[:3] == ["api", "v1", "ops"] or path == ["metrics"]
            assert (token != "{{accessToken}}") == operator, item["name"]
    assert len(sign_ins) == 3  # the admin, the student, the admin again
    for item in sign_ins:
        script = "\n".join(item["event"][0]["script"]["exec"])
        assert "pm.collectionVariables.set('accessToken', body.access_token);" in script
    covered = {s.operation for f in postman.FOLDERS for s in f.steps}
    assert covered == set(operation_ids(spec).values())
    assert [s.operation for s in postman.MAILED.steps] == [
        "previewVerification", "confirmVerification", "resetPassword",
    ]  # fmt: skip


@pytest.fixture
def served(data_dir: Path, make_settings: Callable[..., Settings],
           cli: Callable[..., Any]) -> Iterator[dict[str, str]]:  # fmt: skip
    """A fresh `btecctl serve` on the test database and Redis, with an admin made by
    `btecctl users create-admin`: the environment's values newman runs the collection with."""
    npm_tool("newman")
    settings = make_settings(data_dir=data_dir)
    tokens = {"BTEC_OPS_TOKEN": secrets.token_urlsafe(24),
              "BTEC_METRICS_TOKEN": secrets.token_urlsafe(24)}  # fmt: skip
    env = cli_env(settings, **CHEAP_ENV, **tokens, BTEC_ENV_FILE="", BTEC_MAIL_CATCHER_PORT="0")
    made = cli("users", "create-admin", ADMIN_EMAIL, "--name", "Ada", "--password-stdin",
               "--json", env=env, input=PASSWORD + "\n")  # fmt: skip
    assert made.exit_code == 0, made.output
    server = Served(data_dir, free_port(), **env)
    try:
        server.wait_ready()
        values = {"baseUrl": server.url, "adminEmail": ADMIN_EMAIL, "adminPassword": PASSWORD,
                  "opsToken": tokens["BTEC_OPS_TOKEN"],
                  "metricsToken": tokens["BTEC_METRICS_TOKEN"]}  # fmt: skip
        yield values
    finally:
        server.stop()


def test_newman_runs_the_collection_and_every_test_passes(
    served: dict[str, str], tmp_path: Path
) -> None:
    environment = json.loads(ENVIRONMENT.read_text())
    for entry in environment["values"]:
        entry["value"] = served.get(entry["key"], entry["value"])
    (tmp_path / "env.json").write_text(json.dumps(environment))
    report = tmp_path / "newman.json"
    folders = [arg for folder in postman.RUN for arg in ("--folder", folder.name)]
    done = run_tool(
        "newman", "run", str(COLLECTION), "-e", str(tmp_path / "env.json"), *folders,
        "--working-dir", str(postman.OUT_DIR), "--reporters", "json,cli",
        "--reporter-json-export", str(report), "--timeout-request", "15000", "--color", "off",
    )  # fmt: skip
    run = json.loads(report.read_text())["run"]
    failures = [
        f"{f['source'].get('name')}: {f['error'].get('test') or ''} {f['error']['message']}"
        for f in run["failures"]
    ]
    assert failures == [], "\n".join(failures)
    assert done.returncode == 0, done.stdout[-4000:]
    ran = [item for folder, item in items(json.loads(COLLECTION.read_text()))
           if folder != postman.MAILED.name]  # fmt: skip
    assert run["stats"]["requests"] == {"total": len(ran), "pending": 0, "failed": 0}
    # Each request tests its status, and its answer's schema if it has a JSON one.
    checks = sum(1 + ("jsonSchema" in "".join(i["event"][0]["script"]["exec"])) for i in ran)
    assert run["stats"]["assertions"] == {"total": checks, "pending": 0, "failed": 0}
