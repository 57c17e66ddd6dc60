"""Admin account routes over HTTP, and the role matrix: who may call what."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from server.config.settings import Settings
from tests.support.accounts import PASSWORD, make_admin, session_of
from tests.support.problems import PROBLEM

ADMIN = "ada@example.org"


async def create(http: Any, admin: dict[str, str], email: str, role: str) -> dict[str, Any]:
    body = {"email": email, "full_name": role.title(), "role": role, "password": PASSWORD}
    answer = await http.post("/api/v1/users", headers=admin, json=body)
    assert answer.status == 201, await answer.text()
    made = dict(await answer.json())
    assert answer.headers["Location"] == f"/api/v1/users/{made['id']}"  # every create says where
    return made


@pytest.fixture
async def people(
    http: Any,
    acli: Callable[..., Any],
    auth_settings: Settings,
) -> dict[str, Any]:
    await make_admin(acli, auth_settings, ADMIN)
    admin = await session_of(http, ADMIN)
    assessor = await create(http, admin, "sam@example.org", "assessor")
    student = await create(http, admin, "stu@example.org", "student")
    return {
        "admin": admin,
        "assessor": await session_of(http, "sam@example.org"),
        "student": await session_of(http, "stu@example.org"),
        "assessor_id": assessor["id"],
        "student_id": student["id"],
    }


async def test_the_role_matrix(http: Any, people: dict[str, Any]) -> None:
    sid = people["student_id"]
    calls = [
        ("GET", "/api/v1/users", None),
        ("GET", f"/api/v1/users/{sid}", None),
        ("PATCH", f"/api/v1/users/{sid}", {"full_name": "Renamed"}),
        (
            "POST",
            "/api/v1/users",
            {"email": "x@example.org", "full_name": "X", "role": "student", "password": PASSWORD},
        ),
        ("POST", f"/api/v1/users/{sid}/deactivate", None),
    ]
    for who in ("student", "assessor"):
        for method, path, body in calls:
            answer = await http.request(method, path, headers=people[who], json=body)
            assert answer.status == 403, (who, method, path)
            assert (await answer.json(content_type=PROBLEM))["code"] == "forbidden"
    for method, path, body in calls:
        answer = await http.request(method, path, json=body)
        assert answer.status == 401, (method, path)
    for who in ("admin", "assessor", "student"):
        assert (await http.get("/api/v1/users/me", headers=people[who])).status == 200


async def test_admins_list_read_update_and_deactivate(
    http: Any,
    people: dict[str, Any],
) -> None:
    admin, sid = people["admin"], people["student_id"]
    listed = await (await http.get("/api/v1/users?role=student", headers=admin)).json()
    assert [u["email"] for u in listed["items"]] == ["stu@example.org"]
    assert listed["total"] == 1
    assert all("password_hash" not in u for u in listed["items"])
    everyone = await (await http.get("/api/v1/users?limit=2&offset=1", headers=admin)).json()
    assert (everyone["total"], len(everyone["items"]), everyone["next_offset"]) == (3, 2, None)
    first = await (await http.get("/api/v1/users?limit=2", headers=admin)).json()
    assert first["next_offset"] == 2
    one = await (await http.get(f"/api/v1/users/{sid}", headers=admin)).json()
    assert one["role"] == "student"

    promoted = await http.patch(f"/api/v1/users/{sid}", headers=admin,
                                json={"role": "assessor", "full_name": "  Stu Dent "})  # fmt: skip
    assert promoted.status == 200
    assert (await promoted.json())["full_name"] == "Stu Dent"
    # the new role applies at once, and the session goes on
    assert (await http.get("/api/v1/users", headers=people["student"])).status == 403
    assert (await http.get("/api/v1/users/me", headers=people["student"])).status == 200

    gone = await http.post(f"/api/v1/users/{sid}/deactivate", headers=admin)
    assert gone.status == 200
    assert (await gone.json())["is_active"] is False
    assert (await http.get("/api/v1/users/me", headers=people["student"])).status == 401
    signin = {"email": "stu@example.org", "password": PASSWORD}
    assert (await http.post("/api/v1/auth/login", json=signin)).status == 401


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/api/v1/users?role=king", None, 422),
        ("GET", "/api/v1/users?limit=0", None, 422),
        ("GET", "/api/v1/users/999999", None, 404),
        ("PATCH", "/api/v1/users/999999", {"full_name": "X"}, 404),
        ("PATCH", "/api/v1/users/1", {"role": "king"}, 422),
        ("PATCH", "/api/v1/users/1", {"full_name": ""}, 422),
        ("PATCH", "/api/v1/users/1", {"is_active": "maybe"}, 422),
        # JSON booleans only: 0 and 1 deactivated and reactivated accounts (the audit)
        ("PATCH", "/api/v1/users/1", {"is_active": 0}, 422),
        ("PATCH", "/api/v1/users/1", {"is_active": 1}, 422),
        ("PATCH", "/api/v1/users/1", {"is_active": "false"}, 422),
        ("PATCH", "/api/v1/users/1", {"password_hash": "x"}, 422),
        (
            "POST",
            "/api/v1/users",
            {"email": "a@example.org", "full_name": "A", "role": "student", "password": "short"},
            422,
        ),
        (
            "POST",
            "/api/v1/users",
            {"email": ADMIN, "full_name": "A", "role": "admin", "password": PASSWORD},
            409,
        ),
        ("POST", "/api/v1/users/999999/deactivate", None, 404),
    ],
)
async def test_bad_admin_requests(
    http: Any,
    people: dict[str, Any],
    method: str,
    path: str,
    body: Any,
    status: int,
) -> None:
    answer = await http.request(method, path, headers=people["admin"], json=body)
    assert answer.status == status, await answer.text()
    assert (await answer.json(content_type=PROBLEM))["code"]
