"""The OpenAPI document as front-end developers and their generators read it: valid OpenAPI 3,
one operationId per operation, the HEAD twins left out, and a schema for every answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp_apigami.constants import API_SPEC_ATTR, SWAGGER_DICT
from openapi_spec_validator import validate

from server.app import create_app
from server.config.settings import Settings
from server.http.contract import OPERATION_IDS, schema_of
from server.http.guard import GUARD, public
from server.http.openapi import operation
from server.http.problems import PROBLEM_CONTENT_TYPE as PROBLEM

METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@pytest.fixture
async def document(client: Any) -> dict[str, Any]:
    answer = await client.get("/api/docs/openapi.json")
    assert answer.status == 200
    found: dict[str, Any] = await answer.json()
    return found


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(method, path, op) for path, item in document["paths"].items()
            for method, op in item.items() if method in METHODS]  # fmt: skip


def test_the_served_document_is_valid_openapi(document: dict[str, Any]) -> None:
    validate(document)  # raises, naming the first problem
    assert document["openapi"].startswith("3.")
    assert document["servers"] == [
        {"url": "/", "description": "The server that served this document"}
    ]


def test_every_operation_is_complete(document: dict[str, Any]) -> None:
    found = operations(document)
    ids = [op.get("operationId") for _, _, op in found]
    assert None not in ids
    assert len(ids) == len(set(ids)) == len(OPERATION_IDS)
    for method, path, op in found:
        where = f"{method.upper()} {path}"
        assert method != "head", where  # aiohttp's HEAD twins are served, not listed
        assert "produces" not in op, where  # Swagger 2
        assert op.get("summary"), where
        assert op.get("description"), where
        assert op.get("tags"), where
        assert "security" in op, where
        if "requestBody" in op:
            assert op["requestBody"]["required"] is True, where
        for status, answer in op["responses"].items():
            for media, content in answer.get("content", {}).items():
                assert "schema" in content, f"{where} {status} {media}"


def test_every_list_links_to_its_next_page(document: dict[str, Any]) -> None:
    lists = {}
    for _, path, op in operations(document):
        answer = op["responses"].get("200", {})
        schema = answer.get("content", {}).get("application/json", {}).get("schema", {})
        if "items" in schema.get("properties", {}):
            lists[op["operationId"]] = answer.get("links", {}).get("next")
            assert "next_offset" in schema["required"], path
            assert {p["name"] for p in op["parameters"] if p["in"] == "query"} >= {
                "limit",
                "offset",
            }
    assert set(lists) == {"listUnits", "listAssignments", "listUsers", "listFiles",
                          "listSubmissions"}  # fmt: skip
    for operation_id, link in lists.items():
        assert link == {
            "operationId": operation_id,
            "parameters": {
                "limit": "$response.body#/limit",
                "offset": "$response.body#/next_offset",
            },
            "description": link["description"],
        }


async def test_head_answers_like_get(client: Any) -> None:
    for path in ("/api/v1/health/live", "/api/v1/units"):
        got, head = await client.get(path), await client.head(path)
        assert head.status == got.status == 200
        assert await head.read() == b""


@pytest.mark.parametrize(
    ("example", "schema"),
    [
        ({"id": 7, "ok": True, "score": 1.5, "name": "x"},
         {"type": "object", "required": ["id", "name", "ok", "score"],
          "properties": {"id": {"type": "integer"}, "ok": {"type": "boolean"},
                         "score": {"type": "number"}, "name": {"type": "string"}}}),
        ({"created_at": "2026-11-27T16:00:00+00:00"},
         {"type": "object", "required": ["created_at"],
          "properties": {"created_at": {"type": "string", "format": "date-time"}}}),
        ({"scanned_at": None, "scan_detail": None},
         {"type": "object", "required": ["scan_detail", "scanned_at"],
          "properties": {"scanned_at": {"type": "string", "format": "date-time", "nullable": True},
                         "scan_detail": {"type": "string", "nullable": True}}}),
        ([{"id": 1}], {"type": "array", "items": {"type": "object", "required": ["id"],
                                                   "properties": {"id": {"type": "integer"}}}}),
    ],
)  # fmt: skip
def test_the_schema_an_example_shows(example: Any, schema: dict[str, Any]) -> None:
    assert schema_of(example) == schema


def test_dev_openapi_writes_the_served_document(
    cli: Callable[..., Any], tmp_path: Path, make_settings: Callable[..., Settings]
) -> None:
    out = tmp_path / "openapi.json"
    result = cli("dev", "openapi", "--out", str(out), "--json", env={"BTEC_ENV_FILE": ""})
    assert result.exit_code == 0, result.output
    reported = json.loads(result.stdout)
    assert reported["ok"] is True
    assert reported["operations"] == len(OPERATION_IDS)
    written = json.loads(out.read_text())
    validate(written)
    printed = cli("dev", "openapi", env={"BTEC_ENV_FILE": ""})
    assert json.loads(printed.stdout) == written
    served = create_app(make_settings())
    assert json.loads(json.dumps(served[SWAGGER_DICT])) == written
    refused = cli("dev", "openapi", "--out", str(tmp_path / "no" / "such" / "dir" / "x.json"),
                  "--json", env={"BTEC_ENV_FILE": ""})  # fmt: skip
    assert refused.exit_code != 0
    assert "Traceback" not in refused.output


# Each operation is written from what its route declares (server.http.openapi.operation).

GUARD_SECURITY = {"public": [{}], "user": [{"bearerAuth": []}], "operator": [{"bearerAuth": []}]}


def test_each_operation_documents_its_guard_and_schemas(
    settings: Settings, document: dict[str, Any]
) -> None:
    app = create_app(settings)
    guard = app[GUARD]
    checked = 0
    for route in app.router.routes():
        assert route.resource is not None
        op = document["paths"].get(route.resource.canonical, {}).get(route.method.lower())
        if op is None:  # HEAD twins, the API docs' own routes
            continue
        access, where = guard.access(route), f"{route.method} {route.resource.canonical}"
        problems = [
            answer.get("content", {}).get(PROBLEM, {}) for answer in op["responses"].values()
        ]
        codes = {code for problem in problems for code in problem.get("examples", {})}
        if op["security"] != [{}, {"bearerAuth": []}]:  # a token that shows more, never needed
            assert op["security"] == GUARD_SECURITY[access.who], where
        if access.who == "user":
            assert {"unauthorized", "invalid_token"} <= codes, where
            assert ("email_unverified" in codes) is not access.unverified, where
            assert "forbidden" in codes or access.roles is None, where
        if access.who == "operator":
            assert {"unauthorized", "forbidden"} <= codes, where
        if "requestBody" in op and route.resource.canonical != "/api/v1/files":
            assert {"validation_failed", "malformed_body"} <= codes, where
        checked += 1
    assert checked == len(OPERATION_IDS)


def test_an_access_mark_above_the_operation_is_refused() -> None:
    @operation("units", ok={200: {"description": "Yes"}})
    async def handler(request: web.Request) -> web.Response:
        """Answer

        Says yes."""
        return web.json_response({})

    with pytest.raises(TypeError, match="below @operation"):
        public(handler)


def test_an_operation_takes_its_summary_and_description_from_the_docstring() -> None:
    @operation("units", ok={200: {"description": "Yes"}}, problems="not_found")
    @public
    async def handler(request: web.Request) -> web.Response:
        """Read one unit,
        with its words

        The first paragraph is the summary; this one, wrapped for the
        source, is the description.

        A second paragraph stays one.
        """
        return web.json_response({})

    spec = getattr(handler, API_SPEC_ATTR)
    assert spec["summary"] == "Read one unit, with its words"
    assert spec["description"] == (
        "The first paragraph is the summary; this one, wrapped for the source, is the "
        "description.\n\nA second paragraph stays one."
    )
    assert spec["security"] == [{}]
    assert set(spec["responses"]) == {200, 404, 429, 500, 503}

    async def undocumented(request: web.Request) -> web.Response:
        return web.json_response({})

    with pytest.raises(TypeError, match="docstring"):
        operation("units")(undocumented)
