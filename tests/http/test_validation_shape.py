"""One validation-error shape on every endpoint: `errors` is a list of objects (RFC 9457
section 3), each a `pointer` into the body (`#/criteria/0/code`) or a `parameter` with its
`in`, a stable `code` and a `detail`; the problem's own `detail` names the fields. The same
for the schema's errors, the parser's (NUL in a string), and the services' (invalid_criteria,
invalid_files)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from server.config.settings import SETTINGS
from server.domain.errors import FieldError, ValidationFailed, field_error
from server.http.problems import field_entry, pointer
from tests.support.accounts import PASSWORD, make_admin, session_of
from tests.support.problems import places, problem

LOGIN = "/api/v1/auth/login"
CRITERIA = [{"code": "P1", "description": "Explain."}, {"code": "P2", "description": "Apply."}]
Case = Callable[[dict[str, Any]], tuple[str, str, str | None, Any]]


def _when(days: int) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat()


def _new_assignment(world: dict[str, Any], **change: Any) -> dict[str, Any]:
    return {
        "unit_id": world["unit"], "title": "Classes", "brief": "Write classes.",
        "opens_at": _when(-1), "deadline": _when(7), "criteria": CRITERIA, **change,
    }  # fmt: skip


@pytest.fixture
async def world(http: Any, acli: Callable[..., Any]) -> dict[str, Any]:
    """An admin, an assessor (`sam`) and a student (`stu`), signed in; a unit, an open
    assignment of sam's with criteria P1 and P2, and stu's submission to it."""
    await make_admin(acli, http.app[SETTINGS], "ada@x.org")
    found: dict[str, Any] = {"http": http, "admin": await session_of(http, "ada@x.org")}
    for name, role in (("sam", "assessor"), ("stu", "student")):
        body = {"email": f"{name}@x.org", "full_name": name, "role": role, "password": PASSWORD}
        made = await http.post("/api/v1/users", headers=found["admin"], json=body)
        assert made.status == 201, await made.text()
        found[name] = await session_of(http, f"{name}@x.org")
    unit = {"code": "U1", "title": "Programming", "level": 3, "credits": 60}
    found["unit"] = (await _ok(http.post("/api/v1/units", headers=found["sam"], json=unit)))["id"]
    made = http.post("/api/v1/assignments", headers=found["sam"], json=_new_assignment(found))
    found["assignment"] = (await _ok(made))["id"]
    sent = http.put(_submission(found), headers=found["stu"], json={"answer": "An answer."})
    found["submission"] = (await _ok(sent))["id"]
    return found


async def _ok(request: Any) -> Any:
    answer = await request
    assert answer.status in (200, 201), await answer.text()
    return await answer.json()


def _submission(w: dict[str, Any]) -> str:
    return f"/api/v1/assignments/{w['assignment']}/submission"


def _grade(w: dict[str, Any]) -> str:
    return f"/api/v1/submissions/{w['submission']}/grade"


# (who, method, path, body) of a request, the problem's code, and the errors expected: where
# (a pointer, or `in:parameter`) and the code of each.
CASES: dict[str, tuple[Case, str, list[tuple[str, str]]]] = {
    "body, create a unit": (
        lambda w: ("sam", "POST", "/api/v1/units", {"title": "T", "level": 99, "credits": 60}),
        "validation_failed", [("#/code", "required"), ("#/level", "invalid")],
    ),
    "body, sign in": (
        lambda w: ("", "POST", LOGIN, {"email": "a@x.org"}),
        "validation_failed", [("#/password", "required")],
    ),
    "body, submit": (
        lambda w: ("stu", "PUT", _submission(w), {"answer": 42}),
        "validation_failed", [("#/answer", "invalid")],
    ),
    "query, units by level": (
        lambda w: ("", "GET", "/api/v1/units?level=99", None),
        "validation_failed", [("query:level", "invalid")],
    ),
    "query, submissions page": (
        lambda w: ("stu", "GET", "/api/v1/submissions?limit=0", None),
        "validation_failed", [("query:limit", "invalid")],
    ),
    "path, a unit": (
        lambda w: ("", "GET", "/api/v1/units/0", None),
        "validation_failed", [("path:id", "invalid")],
    ),
    "nested fields and list items": (
        lambda w: ("sam", "POST", "/api/v1/assignments", _new_assignment(
            w, criteria=[{"code": "P1"}, {"description": "x", "weight": 2}])),
        "validation_failed",
        [("#/criteria/0/description", "required"), ("#/criteria/1/code", "required"),
         ("#/criteria/1/weight", "unknown_field")],
    ),
    "a dict's values": (
        lambda w: ("sam", "PUT", _grade(w), {"assignment_id": w["assignment"],
                                              "criteria": {"P1": "yes", "P2": True}}),
        "validation_failed", [("#/criteria/P1", "invalid")],
    ),
    "unknown fields": (
        lambda w: ("", "POST", LOGIN, {"email": "a@x.org", "password": "x", "remember": True}),
        "validation_failed", [("#/remember", "unknown_field")],
    ),
    "NUL in a body string": (
        lambda w: ("sam", "POST", "/api/v1/assignments", _new_assignment(
            w, criteria=[CRITERIA[0], {"code": "P2", "description": "a\u0000b"}])),
        "validation_failed", [("#/criteria/1/description", "invalid")],
    ),
    "NUL in a query string": (
        lambda w: ("", "GET", "/api/v1/units?q=a%00b", None),
        "validation_failed", [("query:q", "invalid")],
    ),
    "the services: criteria": (
        lambda w: ("sam", "PUT", _grade(w), {"assignment_id": w["assignment"],
                                              "criteria": {"P1": True, "P9": True}}),
        "invalid_criteria", [("#/criteria/P9", "unknown_field"), ("#/criteria/P2", "required")],
    ),
    "the services: files": (
        lambda w: ("stu", "PUT", _submission(w), {"answer": "Again.",
                                                 "file_ids": [str(uuid.uuid4())]}),
        "invalid_files", [("#/file_ids/0", "not_found")],
    ),
    "the services: a unit that is not there": (
        lambda w: ("sam", "POST", "/api/v1/assignments", _new_assignment(w, unit_id=99999)),
        "validation_failed", [("#/unit_id", "not_found")],
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", list(CASES))
async def test_every_endpoint_answers_one_shape(world: dict[str, Any], name: str) -> None:
    case, code, expected = CASES[name]
    who, method, path, body = case(world)
    headers = world[who] if who else {}
    found = await problem(
        await world["http"].request(method, path, json=body, headers=headers), 422, code
    )
    pairs = [(place, e["code"]) for place, e in zip(places(found), found["errors"], strict=True)]
    assert sorted(pairs) == sorted(expected), found
    # the detail counts and names the fields (dotted), not repeating the title
    names = [place.removeprefix("#/").replace("/", ".").split(":")[-1] for place, _ in expected]
    noun = "field" if expected[0][0].startswith("#") else "parameter"
    assert found["detail"].startswith(f"{len(names)} {noun}"), found["detail"]
    assert all(name in found["detail"] for name in names), found["detail"]


async def test_an_error_of_the_whole_body_points_at_it(world: dict[str, Any]) -> None:
    http = world["http"]
    path = f"/api/v1/units/{world['unit']}"
    found = await problem(await http.patch(path, headers=world["sam"], json={}), 422,
                          "validation_failed")  # fmt: skip
    message = "Give at least one of code, title, level, credits."
    assert found["errors"] == [{"pointer": "#", "code": "invalid", "detail": message}]
    assert found["detail"] == message
    listed = await problem(await http.post(LOGIN, json=[1]), 422, "validation_failed")
    assert [e["pointer"] for e in listed["errors"]] == ["#"]


async def test_the_detail_of_a_service_keeps_its_own_words(world: dict[str, Any]) -> None:
    body = {"assignment_id": world["assignment"], "criteria": {"P1": True}}
    found = await problem(await world["http"].put(_grade(world), headers=world["sam"], json=body),
                          422, "invalid_criteria")  # fmt: skip
    assert found["detail"] == (
        "1 field is not valid: criteria.P2; the assignment's criteria are P1, P2"
    )
    assert found["errors"] == [{"pointer": "#/criteria/P2", "code": "required",
                                "detail": "Not marked."}]  # fmt: skip


@pytest.mark.parametrize(
    ("path", "expected"),
    [((), "#"), (("criteria", 0, "code"), "#/criteria/0/code"), (("a/b", "m~n"), "#/a~1b/m~0n"),
     (("k\u0000", "é p"), "#/k%00/%C3%A9%20p")],
)  # fmt: skip
def test_pointers_follow_rfc_6901_in_their_fragment_form(
    path: tuple[str | int, ...], expected: str
) -> None:
    assert pointer(path) == expected


def test_parameters_name_their_place() -> None:
    header = field_error("Idempotency-Key", "1-100 of A-Z", location="header")
    assert field_entry(header) == {
        "parameter": "Idempotency-Key", "in": "header", "code": "invalid", "detail": "1-100 of A-Z"
    }  # fmt: skip
    failed = ValidationFailed(errors=[header, FieldError(("q",), "Too long.", location="query")])
    assert failed.detail == "2 parameters are not valid: Idempotency-Key, q"


async def test_unknown_query_parameters_are_named_on_every_list(
    aiohttp_client: Any, make_settings: Any, acli: Any
) -> None:
    """As the document says: a parameter a list does not take is 422 `unknown_field` naming
    it, on every list alike (a misspelt filter would otherwise return everything)."""
    from server.app import create_app
    from tests.support.accounts import CHEAP, make_admin, session_of

    settings = make_settings(**CHEAP)
    http = await aiohttp_client(create_app(settings))
    await make_admin(acli, settings, "ada@example.org")
    admin = await session_of(http, "ada@example.org")
    for path in ("/api/v1/units", "/api/v1/assignments", "/api/v1/submissions",
                 "/api/v1/users", "/api/v1/files"):  # fmt: skip
        assert (await http.get(path, headers=admin)).status == 200, path
        extra = await http.get(path, params={"sort": "name"}, headers=admin)
        found = await problem(extra, 422, "validation_failed")
        assert found["errors"] == [{"parameter": "sort", "in": "query", "code": "unknown_field",
                                    "detail": "Unknown field."}], path  # fmt: skip
