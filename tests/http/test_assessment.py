"""BTEC assessment through the HTTP API: units, assignments, submissions, grades, similarity."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from server.app import create_app
from server.config.settings import Settings
from server.domain.grading import overall
from server.platform.postgres import DB_POOL
from tests.support.accounts import CHEAP, PASSWORD, make_admin, session_of
from tests.support.env import cli_env, closed_port
from tests.support.jobs import job_states, jobs_idle
from tests.support.mail import Inbox
from tests.support.problems import places, problem
from tests.support.uploads import upload
from tests.support.wait import eventually

# The tests marked `embedded` run against the embedded servers too, in CI's second pass
# (pyproject.toml's markers): every statement and transaction of the assessment domain. The
# checks of bad input, refused before any statement, run once.


ADMIN = "ada@example.org"
PEOPLE = {
    "sam": ("sam@example.org", "assessor", "Sam Assessor"),
    "ann": ("ann@example.org", "assessor", "Ann Assessor"),
    "stu": ("stu@example.org", "student", "Stu Student"),
    "kim": ("kim@example.org", "student", '=HYPERLINK("http://x")'),
    "lee": ("lee@example.org", "student", "Lee Ünïcødé 学生"),
}
CRITERIA = [
    {"code": "P1", "description": "Explain the principles of OOP."},
    {"code": "P2", "description": "Write a program that uses classes."},
    {"code": "M1", "description": "Analyse how the design supports change."},
    {"code": "D1", "description": "Evaluate the design against alternatives."},
]
ESSAY = (
    "Object oriented programming organises a program around objects that bundle data with "
    "the operations on that data. Encapsulation hides the internal state of an object behind "
    "methods so that other parts of the program cannot put it into an inconsistent state. "
    "Inheritance lets a class reuse and extend the behaviour of another class, and "
    "polymorphism lets code call the same method on objects of different classes."
)
OTHER_ESSAY = (
    "Databases keep records in tables of rows and columns, and a query language such as SQL "
    "selects, joins and aggregates them. Normalisation removes repeated data so that an "
    "update changes one place only, while indexes make lookups fast at the cost of slower "
    "writes. Transactions group changes so that they happen completely or not at all, even "
    "when the server stops half way through."
)


def iso(moment: datetime) -> str:
    return moment.isoformat()


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def school_settings(
    make_settings: Callable[..., Settings], tmp_path: Path, inbox: Inbox
) -> Settings:
    return make_settings(
        **CHEAP, smtp_url=SecretStr(inbox.url), data_dir=tmp_path / "var", similarity_min_words=20
    )


@pytest.fixture
async def school(
    request: pytest.FixtureRequest,
    aiohttp_client: Callable[..., Any],
    acli: Callable[..., Any],
    school_settings: Settings,
) -> dict[str, Any]:
    """The app (with a job worker if the test is marked `worker`), an admin, two assessors
    and three students, signed in."""
    worker = request.node.get_closest_marker("worker") is not None
    http = await aiohttp_client(create_app(school_settings, worker=worker))
    await make_admin(acli, school_settings, ADMIN)
    admin = await session_of(http, ADMIN)
    found: dict[str, Any] = {"http": http, "admin": admin, "ids": {}}
    for name, (email, role, full_name) in PEOPLE.items():
        body = {"email": email, "full_name": full_name, "role": role, "password": PASSWORD}
        answer = await http.post("/api/v1/users", headers=admin, json=body)
        assert answer.status == 201, await answer.text()
        found["ids"][name] = (await answer.json())["id"]
        found[name] = await session_of(http, email)
    return found


async def ok(answer: Any, status: int = 200) -> Any:
    assert answer.status == status, await answer.text()
    return await answer.json()


async def unit(school: dict[str, Any], code: str = "K/615/1544") -> int:
    body = {"code": code, "title": "Programming", "level": 3, "credits": 60}
    made = await ok(
        await school["http"].post("/api/v1/units", headers=school["sam"], json=body), 201
    )
    return int(made["id"])


async def assignment(
    school: dict[str, Any],
    unit_id: int,
    *,
    who: str = "sam",
    criteria: list[dict[str, str]] | None = None,
    opens: timedelta = timedelta(days=-1),
    deadline: timedelta = timedelta(days=7),
    **extra: Any,
) -> dict[str, Any]:
    body = {
        "unit_id": unit_id,
        "title": "Assignment 1: OOP principles",
        "brief": "Write a report.\n\nExplain the principles.",
        "opens_at": iso(now() + opens),
        "deadline": iso(now() + deadline),
        "criteria": criteria or CRITERIA,
        **extra,
    }
    answer = await school["http"].post("/api/v1/assignments", headers=school[who], json=body)
    return dict(await ok(answer, 201))


async def submit(school: dict[str, Any], who: str, assignment_id: int, **body: Any) -> Any:
    body.setdefault("answer", ESSAY)
    return await school["http"].put(
        f"/api/v1/assignments/{assignment_id}/submission", headers=school[who], json=body
    )


def marks(achieved: str, codes: tuple[str, ...] = ("P1", "P2", "M1", "D1")) -> dict[str, bool]:
    return {code: code in achieved.split() for code in codes}


async def grade(
    school: dict[str, Any], who: str, submission: dict[str, Any], criteria: dict[str, bool],
    **extra: Any,
) -> Any:  # fmt: skip
    body = {"assignment_id": submission["assignment_id"], "criteria": criteria, **extra}
    headers = {**school[who], **extra.pop("headers", {})}
    body.pop("headers", None)
    return await school["http"].put(
        f"/api/v1/submissions/{submission['id']}/grade", headers=headers, json=body
    )


# -- Units and assignments -----------------------------------------------------------------


@pytest.mark.embedded
async def test_units_change_and_the_cached_catalogue_follows(school: dict[str, Any]) -> None:
    http = school["http"]
    unit_id = await unit(school)
    listed = await ok(await http.get("/api/v1/units"))
    assert [u["code"] for u in listed["items"]] == ["K/615/1544"]
    again = {"code": "k/615/1544", "title": "Copy", "level": 3, "credits": 60}
    await problem(await http.post("/api/v1/units", headers=school["admin"], json=again), 409,
                  "unit_code_taken")  # fmt: skip
    await problem(await http.post("/api/v1/units", headers=school["stu"], json=again), 403,
                  "forbidden")  # fmt: skip
    changed = await http.patch(f"/api/v1/units/{unit_id}", headers=school["ann"],
                               json={"title": "Programming (2026)"})  # fmt: skip
    assert (await ok(changed))["title"] == "Programming (2026)"
    listed = await ok(await http.get("/api/v1/units"))
    assert listed["items"][0]["title"] == "Programming (2026)"
    await problem(await http.patch(f"/api/v1/units/{unit_id}", headers=school["sam"], json={}),
                  422, "validation_failed")  # fmt: skip
    made = await assignment(school, unit_id)
    assert made["unit"]["title"] == "Programming (2026)"
    await problem(await http.delete(f"/api/v1/units/{unit_id}", headers=school["sam"]), 409,
                  "unit_in_use")  # fmt: skip
    # the assignment shows the unit's new code at once (one tag invalidates both)
    await http.patch(f"/api/v1/units/{unit_id}", headers=school["sam"], json={"code": "U1"})
    shown = await ok(await http.get(f"/api/v1/assignments/{made['id']}", headers=school["stu"]))
    assert shown["unit"]["code"] == "U1"
    other = await unit(school, "U2")
    assert (await http.delete(f"/api/v1/units/{other}", headers=school["sam"])).status == 204
    await problem(await http.delete(f"/api/v1/units/{other}", headers=school["sam"]), 404,
                  "not_found")  # fmt: skip


@pytest.mark.embedded
async def test_assignments_are_set_read_changed_and_deleted(school: dict[str, Any]) -> None:
    http = school["http"]
    unit_id = await unit(school)
    made = await assignment(school, unit_id)
    assert [c["code"] for c in made["criteria"]] == ["P1", "P2", "M1", "D1"]
    assert [c["band"] for c in made["criteria"]] == ["P", "P", "M", "D"]
    assert made["assessor_ids"] == [school["ids"]["sam"]]  # the creating assessor
    path = f"/api/v1/assignments/{made['id']}"
    # students read the catalogue, with ETags
    listed = await http.get(f"/api/v1/assignments?unit={unit_id}", headers=school["stu"])
    page = await ok(listed)
    assert page["total"] == 1
    assert page["items"][0]["criteria"] == ["P1", "P2", "M1", "D1"]
    etag = listed.headers["ETag"]
    same = await http.get(f"/api/v1/assignments?unit={unit_id}",
                          headers={**school["stu"], "If-None-Match": etag})  # fmt: skip
    assert same.status == 304
    await problem(await http.get("/api/v1/assignments"), 401, "unauthorized")
    # only admins and its own assessors change it
    await problem(await http.patch(path, headers=school["ann"], json={"title": "Mine now"}),
                  403, "not_assessor")  # fmt: skip
    await problem(await http.patch(path, headers=school["stu"], json={"title": "Mine now"}),
                  403, "forbidden")  # fmt: skip
    changed = await ok(await http.patch(
        path, headers=school["admin"],
        json={"title": "  Assignment 1 (revised)  ", "assessor_ids": [school["ids"]["ann"]]},
    ))  # fmt: skip
    assert changed["title"] == "Assignment 1 (revised)"
    assert changed["assessor_ids"] == [school["ids"]["ann"]]
    # nobody to grade it: refused, on a change and on a create by an admin
    await problem(await http.patch(path, headers=school["admin"], json={"assessor_ids": []}),
                  422, "assessor_required")  # fmt: skip
    orphan = {"unit_id": unit_id, "title": "Nobody grades this", "brief": "x",
              "opens_at": iso(now()), "deadline": iso(now() + timedelta(days=1)),
              "criteria": CRITERIA}  # fmt: skip
    for body in (orphan, {**orphan, "assessor_ids": []}):
        await problem(await http.post("/api/v1/assignments", headers=school["admin"], json=body),
                      422, "assessor_required")  # fmt: skip
    made_by_admin = await http.post(
        "/api/v1/assignments",
        headers=school["admin"],
        json={**orphan, "assessor_ids": [school["ids"]["ann"]]},
    )
    assert made_by_admin.status == 201
    assert (
        made_by_admin.headers["Location"]
        == f"/api/v1/assignments/{(await made_by_admin.json())['id']}"
    )
    assert (
        await http.delete(made_by_admin.headers["Location"], headers=school["admin"])
    ).status == 204
    # the cached list follows at once; the old ETag no longer matches
    fresh = await http.get(f"/api/v1/assignments?unit={unit_id}",
                           headers={**school["stu"], "If-None-Match": etag})  # fmt: skip
    assert (await ok(fresh))["items"][0]["title"] == "Assignment 1 (revised)"
    await problem(await http.patch(path, headers=school["sam"], json={"title": "x"}), 403,
                  "not_assessor")  # fmt: skip
    # filters and pages
    for n in range(3):
        await assignment(school, unit_id, who="ann", deadline=timedelta(days=10 + n),
                         title=f"Later {n}")  # fmt: skip
    other_unit = await unit(school, "OTHER")
    await assignment(school, other_unit, who="ann")
    page = await ok(await http.get(f"/api/v1/assignments?unit={unit_id}&limit=2&offset=2",
                                   headers=school["kim"]))  # fmt: skip
    assert page["total"] == 4
    assert [a["title"] for a in page["items"]] == ["Later 1", "Later 2"]
    page = await ok(await http.get("/api/v1/assignments?q=LATER%202", headers=school["kim"]))
    assert [a["title"] for a in page["items"]] == ["Later 2"]
    assert (await http.delete(path, headers=school["ann"])).status == 204
    await problem(await http.get(path, headers=school["stu"]), 404, "not_found")


BAD_ASSIGNMENTS = [
    ({"criteria": []}, "criteria"),
    ({"criteria": [{"code": "M1", "description": "x"}]}, "criteria"),  # no P
    ({"criteria": [{"code": "P1", "description": "x"}] * 2}, "criteria"),
    ({"criteria": [{"code": "X1", "description": "x"}]}, "criteria"),
    ({"criteria": [{"code": "P0", "description": "x"}]}, "criteria"),
    ({"criteria": [{"code": "P1", "description": ""}]}, "criteria"),
    ({"criteria": [{"code": "P1"}]}, "criteria"),
    ({"deadline": "2020-01-01T00:00:00+00:00"}, "deadline"),
    ({"opens_at": "2026-09-01T08:00:00"}, "opens_at"),  # no time zone
    ({"unit_id": "7"}, "unit_id"),
    ({"unit_id": 999999}, "unit_id"),
    ({"title": ""}, "title"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"brief": "nul\x00byte"}, "brief"),
    ({"brief": "x" * 20001}, "brief"),
    ({"assessor_ids": ["5"]}, "assessor_ids"),
    ({"surprise": True}, "surprise"),
]


@pytest.mark.parametrize(("change", "field"), BAD_ASSIGNMENTS)
async def test_bad_assignments_are_422(
    school: dict[str, Any], change: dict[str, Any], field: str
) -> None:
    unit_id = await unit(school)
    body = {
        "unit_id": unit_id,
        "title": "A",
        "brief": "B",
        "opens_at": iso(now()),
        "deadline": iso(now() + timedelta(days=1)),
        "criteria": CRITERIA,
        **change,
    }
    answer = await school["http"].post("/api/v1/assignments", headers=school["sam"], json=body)
    found = await problem(answer, 422, "validation_failed")
    assert any(p.split("/")[1] == field for p in places(found)), found


async def test_assessors_must_be_staff_and_unicode_is_kept(school: dict[str, Any]) -> None:
    unit_id = await unit(school)
    answer = await school["http"].post("/api/v1/assignments", headers=school["admin"], json={
        "unit_id": unit_id, "title": "Évaluation 学生 📚", "brief": "Ünïcødé brief ✓",
        "opens_at": iso(now()), "deadline": iso(now() + timedelta(days=1)), "criteria": CRITERIA,
        "assessor_ids": [school["ids"]["sam"], school["ids"]["stu"]],
    })  # fmt: skip
    found = await problem(answer, 422, "validation_failed")
    assert found["errors"] == [{"pointer": "#/assessor_ids/1", "code": "not_found",
                                "detail": "No active assessor or admin has this id."}]  # fmt: skip
    made = await assignment(school, unit_id, who="admin", title="Évaluation 学生 📚",
                            assessor_ids=[school["ids"]["sam"]])  # fmt: skip
    assert made["title"] == "Évaluation 学生 📚"
    assert made["assessor_ids"] == [school["ids"]["sam"]]  # an admin names the assessors


# -- Submissions ---------------------------------------------------------------------------


@pytest.mark.embedded
async def test_submit_resubmit_and_late_flags(school: dict[str, Any]) -> None:
    http = school["http"]
    made = await assignment(school, await unit(school))
    first = await submit(school, "stu", made["id"])
    body = await ok(first, 201)
    assert first.headers["Location"] == f"/api/v1/submissions/{body['id']}"
    assert body["late"] is False
    assert body["resubmissions"] == 0
    assert body["grade"] is None
    assert "similarity" not in body
    again = await ok(await submit(school, "stu", made["id"], answer="A better answer ✓"), 200)
    assert again["id"] == body["id"]
    assert again["resubmissions"] == 1
    assert again["answer"] == "A better answer ✓"
    # the deadline moves into the past: the submission made before it is now late
    path = f"/api/v1/assignments/{made['id']}"
    past = {"opens_at": iso(now() - timedelta(days=3)), "deadline": iso(now() - timedelta(days=2))}
    await ok(await http.patch(path, headers=school["sam"], json=past))
    mine = await ok(await http.get(f"{path}/submission", headers=school["stu"]))
    assert mine["late"] is True
    assert mine["resubmissions"] == 1
    # late work is still taken, and flagged
    late = await ok(await submit(school, "kim", made["id"]), 201)
    assert late["late"] is True
    # a deadline moved later clears the flags
    await ok(await http.patch(path, headers=school["sam"],
                              json={"deadline": iso(now() + timedelta(days=2))}))  # fmt: skip
    mine = await ok(await http.get(f"{path}/submission", headers=school["kim"]))
    assert mine["late"] is False
    listed = await ok(await http.get(f"/api/v1/submissions?assignment={made['id']}&late=false",
                                     headers=school["sam"]))  # fmt: skip
    assert listed["total"] == 2
    await problem(await http.get(f"{path}/submission", headers=school["lee"]), 404, "not_found")


@pytest.mark.embedded
async def test_a_retry_changes_nothing_and_racing_submissions_make_one(
    school: dict[str, Any],
) -> None:
    made = await assignment(school, await unit(school))
    first = await ok(await submit(school, "stu", made["id"]), 201)
    again = await ok(await submit(school, "stu", made["id"]), 200)
    assert again["resubmissions"] == 0
    assert again["submitted_at"] == first["submitted_at"]
    racing = await asyncio.gather(
        *(submit(school, "kim", made["id"], answer=f"{ESSAY} ({n})") for n in range(6))
    )
    assert sorted(r.status for r in racing) == [200] * 5 + [201]
    ids = {(await r.json())["id"] for r in racing}
    assert len(ids) == 1
    mine = await ok(await school["http"].get(
        f"/api/v1/assignments/{made['id']}/submission", headers=school["kim"]))  # fmt: skip
    assert mine["resubmissions"] == 5
    listed = await ok(await school["http"].get("/api/v1/submissions", headers=school["kim"]))
    assert listed["total"] == 1


async def test_not_yet_open_graded_and_missing_assignments_refuse_work(
    school: dict[str, Any],
) -> None:
    unit_id = await unit(school)
    future = await assignment(school, unit_id, opens=timedelta(days=1), deadline=timedelta(days=2))
    await problem(await submit(school, "stu", future["id"]), 409, "assignment_not_open")
    await problem(await submit(school, "stu", 999999), 404, "not_found")
    await problem(await submit(school, "sam", future["id"]), 403, "forbidden")
    made = await assignment(school, unit_id)
    sub = await ok(await submit(school, "stu", made["id"]), 201)
    await ok(await grade(school, "sam", sub, marks("P1 P2")))
    await problem(
        await submit(school, "stu", made["id"], answer="Changed"), 409, "submission_graded"
    )
    retried = await ok(await submit(school, "stu", made["id"]))  # the same work again: a retry
    assert retried["grade"]["overall"] == "P"
    # the criteria are fixed now; the rest of the assignment is not
    path = f"/api/v1/assignments/{made['id']}"
    await problem(await school["http"].patch(path, headers=school["sam"],
                                             json={"criteria": CRITERIA[:2]}), 409,
                  "criteria_locked")  # fmt: skip
    await ok(await school["http"].patch(path, headers=school["sam"], json={"title": "Renamed"}))
    await problem(await school["http"].delete(path, headers=school["sam"]), 409,
                  "assignment_in_use")  # fmt: skip


BAD_SUBMISSIONS = [
    ({"answer": ""}, "validation_failed"),
    ({"answer": "   "}, "validation_failed"),
    ({"answer": 42}, "validation_failed"),
    ({"answer": "nul \x00"}, "validation_failed"),
    ({"answer": "lone \ud800 surrogate"}, "validation_failed"),
    ({"answer": "x" * 100_001}, "validation_failed"),  # past BTEC_SUBMISSION_MAX_CHARS
    ({"file_ids": ["not-a-uuid"]}, "validation_failed"),
    ({"file_ids": "0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11"}, "validation_failed"),
    ({"file_ids": ["0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11"]}, "invalid_files"),
    ({"unknown": 1}, "validation_failed"),
]


@pytest.mark.parametrize(("body", "code"), BAD_SUBMISSIONS)
async def test_bad_submissions_are_422_and_keep_nothing(
    school: dict[str, Any], body: dict[str, Any], code: str
) -> None:
    made = await assignment(school, await unit(school))
    body = {"answer": ESSAY, **body}
    answer = await school["http"].put(
        f"/api/v1/assignments/{made['id']}/submission", headers=school["stu"], json=body
    )
    await problem(answer, 422, code)
    listed = await ok(await school["http"].get("/api/v1/submissions", headers=school["stu"]))
    assert listed["total"] == 0


async def test_a_body_past_the_limit_is_413_and_broken_json_400(school: dict[str, Any]) -> None:
    made = await assignment(school, await unit(school))
    path = f"/api/v1/assignments/{made['id']}/submission"
    huge = await school["http"].put(path, headers=school["stu"], json={"answer": "x" * 2_000_000})
    await problem(huge, 413, "payload_too_large")
    broken = await school["http"].put(
        path, headers={**school["stu"], "Content-Type": "application/json"}, data=b'{"answer": '
    )
    await problem(broken, 400, "malformed_body")


async def test_evidence_files_must_be_the_students_own(school: dict[str, Any]) -> None:
    http = school["http"]
    made = await assignment(school, await unit(school))
    mine = await ok(await upload(http, school["stu"], "evidence.txt", b"my evidence\n"), 201)
    theirs = await ok(await upload(http, school["kim"], "theirs.txt", b"their evidence\n"), 201)
    # an upload that is no one's evidence yet: its owner's and admins', no assessor's
    for assessor in ("sam", "ann"):
        await problem(await http.get(mine["content_url"], headers=school[assessor]), 404,
                      "not_found")  # fmt: skip
    refused = await submit(school, "stu", made["id"], file_ids=[mine["id"], theirs["id"]])
    found = await problem(refused, 422, "invalid_files")
    assert found["errors"] == [{"pointer": "#/file_ids/1", "code": "not_found",
                                "detail": "No file of yours has this id."}]  # fmt: skip
    sub = await ok(await submit(school, "stu", made["id"], answer="", file_ids=[mine["id"]]), 201)
    assert [f["filename"] for f in sub["files"]] == ["evidence.txt"]
    # the assessor reads the evidence; the student cannot delete it from under the submission
    seen = await ok(await http.get(f"/api/v1/submissions/{sub['id']}", headers=school["sam"]))
    content = await http.get(seen["files"][0]["content_url"], headers=school["sam"])
    assert await content.read() == b"my evidence\n"
    # an assessor of other assignments still cannot (the audit: any assessor read any file)
    await problem(await http.get(mine["content_url"], headers=school["ann"]), 404, "not_found")
    await problem(await http.get(f"/api/v1/files/{mine['id']}", headers=school["ann"]), 404,
                  "not_found")  # fmt: skip
    await problem(await http.delete(f"/api/v1/files/{mine['id']}", headers=school["stu"]), 409,
                  "file_in_use")  # fmt: skip
    # a resubmission without it frees it
    await ok(await submit(school, "stu", made["id"], answer=ESSAY))
    assert (await http.delete(f"/api/v1/files/{mine['id']}", headers=school["stu"])).status == 204


# -- Authorisation -------------------------------------------------------------------------


@pytest.mark.embedded
async def test_who_sees_and_grades_what(school: dict[str, Any]) -> None:
    http = school["http"]
    unit_id = await unit(school)
    sams = await assignment(school, unit_id)
    anns = await assignment(school, unit_id, who="ann")
    stu_sub = await ok(await submit(school, "stu", sams["id"]), 201)
    kim_sub = await ok(await submit(school, "kim", sams["id"], answer=OTHER_ESSAY), 201)
    await ok(await submit(school, "kim", anns["id"]), 201)
    path = f"/api/v1/submissions/{stu_sub['id']}"
    # a student cannot read another student's submission or grade: it does not exist to them
    await ok(await grade(school, "sam", stu_sub, marks("P1 P2 M1")))
    await problem(await http.get(path, headers=school["kim"]), 404, "not_found")
    await problem(await http.get(f"{path}/grade", headers=school["kim"]), 404, "not_found")
    assert (await ok(await http.get(f"{path}/grade", headers=school["stu"])))["overall"] == "M"
    # a student cannot grade, not even their own work
    await problem(await grade(school, "stu", stu_sub, marks("P1 P2 M1 D1")), 403, "forbidden")
    # an assessor grades and reads only the assignments they assess
    await problem(await grade(school, "ann", kim_sub, marks("P1")), 403, "not_assessor")
    await problem(await http.get(path, headers=school["ann"]), 403, "not_assessor")
    await problem(await http.get(f"/api/v1/assignments/{sams['id']}/grades.csv",
                                 headers=school["ann"]), 403, "not_assessor")  # fmt: skip
    await problem(await http.get(f"/api/v1/assignments/{sams['id']}/grades.csv",
                                 headers=school["stu"]), 403, "forbidden")  # fmt: skip
    # an admin reads everything but grades only when named on the assignment
    await ok(await http.get(path, headers=school["admin"]))
    await problem(await grade(school, "admin", kim_sub, marks("P1")), 403, "not_assessor")
    # lists are scoped the same way
    for who, expected in (("stu", 1), ("kim", 2), ("sam", 2), ("ann", 1), ("admin", 3)):
        listed = await ok(await http.get("/api/v1/submissions", headers=school[who]))
        assert listed["total"] == expected, who
        assert ("flags" in listed["items"][0]) is (who in ("sam", "ann", "admin"))
    listed = await ok(await http.get("/api/v1/submissions?graded=true", headers=school["sam"]))
    assert [s["id"] for s in listed["items"]] == [stu_sub["id"]]
    await problem(await http.get("/api/v1/submissions?graded=maybe", headers=school["sam"]), 422,
                  "validation_failed")  # fmt: skip


# -- Grading -------------------------------------------------------------------------------


@pytest.mark.embedded
@pytest.mark.worker
async def test_grading_computes_the_grade_and_mails_the_student(
    school: dict[str, Any], inbox: Inbox
) -> None:
    http = school["http"]
    made = await assignment(school, await unit(school))
    sub = await ok(await submit(school, "stu", made["id"]), 201)
    answer = await grade(school, "sam", sub, marks("P1 P2 M1"), feedback="Good work ✓")
    given = await ok(answer)
    assert answer.headers["ETag"] == '"1"'
    assert given["overall"] == "M"
    assert given["version"] == 1
    assert given["criteria"] == {"P1": True, "P2": True, "M1": True, "D1": False}
    [message] = await inbox.wait_for(1)
    assert message["To"] == "stu@example.org"
    assert "has been graded" in message["Subject"]
    text = message.get_body(("plain",)).get_content()
    assert "Overall grade: Merit" in text
    assert "Good work ✓" in text
    # a change is a new version, and a new mail
    changed = await ok(await grade(school, "sam", sub, marks("P1 P2 M1 D1")))
    assert changed["overall"] == "D"
    assert changed["version"] == 2
    messages = await inbox.wait_for(2)
    assert "has changed" in messages[1]["Subject"]
    # the client cannot choose the overall grade
    refused = await grade(school, "sam", sub, marks("P1"), overall="D")
    await problem(refused, 422, "validation_failed")
    shown = await ok(await http.get(f"/api/v1/submissions/{sub['id']}", headers=school["stu"]))
    assert shown["grade"]["overall"] == "D"


BAD_GRADES = [
    (
        {"criteria": {"P1": True, "P2": True, "M1": True, "D1": True, "P9": True}},
        "invalid_criteria",
    ),
    ({"criteria": {"P1": True, "P2": True, "M1": True}}, "invalid_criteria"),  # D1 unmarked
    ({"criteria": {"P1": True, "P2": True, "M1": True, "D1": True, "Z": True}}, "invalid_criteria"),
    ({"criteria": {"P1": "yes", "P2": True, "M1": True, "D1": True}}, "validation_failed"),
    ({"criteria": []}, "validation_failed"),
    ({"criteria": {}}, "validation_failed"),
    ({"assignment_id": "12"}, "validation_failed"),
    ({"assignment_id": None}, "validation_failed"),
    ({"feedback": "x" * 20001}, "validation_failed"),
    ({"feedback": "bad \x07 bell"}, "validation_failed"),
]


@pytest.mark.parametrize(("change", "code"), BAD_GRADES)
async def test_bad_grades_are_422(
    school: dict[str, Any], change: dict[str, Any], code: str
) -> None:
    made = await assignment(school, await unit(school))
    sub = await ok(await submit(school, "stu", made["id"]), 201)
    body = {"assignment_id": made["id"], "criteria": marks("P1"), **change}
    answer = await school["http"].put(
        f"/api/v1/submissions/{sub['id']}/grade", headers=school["sam"], json=body
    )
    found = await problem(answer, 422, code)
    if code == "invalid_criteria":
        assert set(places(found)) & {"#/criteria/P9", "#/criteria/D1", "#/criteria/Z"}
    graded = await school["http"].get(
        f"/api/v1/submissions/{sub['id']}/grade", headers=school["sam"]
    )
    await problem(graded, 404, "not_found")  # nothing was kept


async def test_a_grade_for_the_wrong_assignment_is_422(school: dict[str, Any]) -> None:
    unit_id = await unit(school)
    first = await assignment(school, unit_id)
    second = await assignment(school, unit_id, criteria=[{"code": "P1", "description": "x"}])
    sub = await ok(await submit(school, "stu", first["id"]), 201)
    answer = await grade(school, "sam", {**sub, "assignment_id": second["id"]}, {"P1": True})
    found = await problem(answer, 422, "wrong_assignment")
    assert str(first["id"]) in found["detail"]
    await problem(await grade(school, "sam", {**sub, "id": 999999}, marks("P1")), 404, "not_found")


@pytest.mark.embedded
async def test_concurrent_grades_end_in_one_whole_grade(school: dict[str, Any]) -> None:
    http = school["http"]
    made = await assignment(school, await unit(school))
    sub = await ok(await submit(school, "stu", made["id"]), 201)
    choices = ["", "P1 P2", "P1 P2 M1", "P1 P2 M1 D1", "P1 M1 D1", "P1 P2 D1"] * 2
    answers = await asyncio.gather(*(
        grade(school, "sam", sub, marks(c), feedback=f"feedback {i}") for i, c in enumerate(choices)
    ))  # fmt: skip
    given = [await ok(a) for a in answers]
    assert sorted(g["version"] for g in given) == list(range(1, len(choices) + 1))
    final = await ok(
        await http.get(f"/api/v1/submissions/{sub['id']}/grade", headers=school["sam"])
    )
    last = next(g for g in given if g["version"] == len(choices))
    assert final == last  # the last writer's marks, overall grade and feedback, together
    index = int(final["feedback"].split()[1])
    assert final["criteria"] == marks(choices[index])
    assert final["overall"] == overall(final["criteria"])
    # with If-Match, of several racing from one version exactly one wins
    version = f'"{final["version"]}"'
    racing = await asyncio.gather(*(
        grade(school, "sam", sub, marks(c), headers={"If-Match": version}) for c in choices[:5]
    ))  # fmt: skip
    statuses = sorted(r.status for r in racing)
    assert statuses == [200, 412, 412, 412, 412], statuses
    loser = next(r for r in racing if r.status == 412)
    await problem(loser, 412, "grade_changed")
    await problem(await grade(school, "sam", sub, marks("P1"), headers={"If-Match": "nonsense"}),
                  412, "grade_changed")  # fmt: skip


@pytest.mark.embedded
async def test_the_csv_export(school: dict[str, Any]) -> None:
    http = school["http"]
    made = await assignment(school, await unit(school))
    stu = await ok(await submit(school, "stu", made["id"]), 201)
    await ok(await submit(school, "kim", made["id"], answer=OTHER_ESSAY), 201)
    await ok(await grade(school, "sam", stu, marks("P1 P2 M1"), feedback="=1+1 is not feedback"))
    answer = await http.get(f"/api/v1/assignments/{made['id']}/grades.csv", headers=school["sam"])
    assert answer.status == 200
    assert answer.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert "attachment" in answer.headers["Content-Disposition"]
    raw = await answer.read()
    assert raw.startswith("\ufeff".encode())
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert [r["student_name"] for r in rows] == ['\'=HYPERLINK("http://x")', "Stu Student"]
    kim, stu_row = rows
    assert stu_row["overall"] == "M"
    assert stu_row["D1"] == "not achieved"
    assert stu_row["P1"] == "achieved"
    assert stu_row["assessor"] == "Sam Assessor"
    assert stu_row["feedback"] == "'=1+1 is not feedback"
    assert kim["overall"] == ""
    assert kim["P1"] == ""
    listed = await http.get(f"/api/v1/assignments/{made['id']}/grades.csv", headers=school["admin"])
    assert listed.status == 200


# -- Similarity ----------------------------------------------------------------------------


async def flags(school: dict[str, Any], submission_id: int, want: int, timeout: float = 20) -> Any:
    """The submission as its assessor sees it, once its similarity flags number `want`."""

    async def seen() -> Any:
        return await ok(await school["http"].get(
            f"/api/v1/submissions/{submission_id}", headers=school["sam"]))  # fmt: skip

    try:
        return await eventually(seen, lambda found: len(found["similarity"]) == want,
                                timeout=timeout, interval=0.1,
                                message=f"submission {submission_id} has {want} flags")  # fmt: skip
    except AssertionError as failed:  # say where its checks are: the queue's view of them
        checks = await job_states(school["http"].app, f"similarity:{submission_id}:", range(3))
        raise AssertionError(f"{failed}; its checks: {checks}") from None


@pytest.mark.embedded
@pytest.mark.worker
async def test_near_copies_are_flagged_and_different_work_is_not(school: dict[str, Any]) -> None:
    http = school["http"]
    made = await assignment(school, await unit(school))
    original = await ok(await submit(school, "stu", made["id"], answer=ESSAY), 201)
    copy = ESSAY.replace("organises", "arranges").replace("Inheritance", "Inheritance,").upper()
    copied = await ok(await submit(school, "kim", made["id"], answer=copy), 201)
    different = await ok(await submit(school, "lee", made["id"], answer=OTHER_ESSAY), 201)
    seen = await flags(school, copied["id"], 1)
    [flag] = seen["similarity"]
    assert flag["submission_id"] == original["id"]
    assert flag["score"] > 0.9
    assert (await flags(school, original["id"], 1))["similarity"][0]["submission_id"] == copied[
        "id"
    ]
    await jobs_idle(school["http"].app)
    assert (await flags(school, different["id"], 0))["similarity"] == []
    flagged = await ok(await http.get(f"/api/v1/submissions?assignment={made['id']}&flagged=true",
                                      headers=school["sam"]))  # fmt: skip
    assert sorted(s["id"] for s in flagged["items"]) == sorted([original["id"], copied["id"]])
    # the student never sees flags
    own = await ok(await http.get(f"/api/v1/submissions/{copied['id']}", headers=school["kim"]))
    assert "similarity" not in own
    # a resubmission in the student's own words clears the pair
    mine = "In my own words: " + " ".join(reversed(OTHER_ESSAY.split()))
    await ok(await submit(school, "kim", made["id"], answer=mine))
    await jobs_idle(school["http"].app)
    assert (await flags(school, original["id"], 0))["similarity"] == []


@pytest.mark.worker
async def test_short_answers_are_not_compared(school: dict[str, Any]) -> None:
    made = await assignment(school, await unit(school))
    first = await ok(
        await submit(school, "stu", made["id"], answer="See the attached report."), 201
    )
    await ok(await submit(school, "kim", made["id"], answer="See the attached report."), 201)
    await jobs_idle(school["http"].app)
    assert (await flags(school, first["id"], 0, timeout=0))["similarity"] == []


# -- Dependencies down ---------------------------------------------------------------------


async def test_with_redis_down_work_is_still_taken_and_graded(
    school: dict[str, Any],
    aiohttp_client: Callable[..., Any],
    school_settings: Settings,
    logs: io.StringIO,
    inbox: Inbox,
) -> None:
    made = await assignment(school, await unit(school))
    down = school_settings.model_copy(
        update={"redis_url": SecretStr(f"redis://127.0.0.1:{closed_port()}/0"),
                "ratelimit_enabled": False}
    )  # fmt: skip
    http = await aiohttp_client(create_app(down))
    broken = {**school, "http": http}
    listed = await ok(await http.get("/api/v1/assignments", headers=school["stu"]))
    assert listed["total"] == 1  # uncached, from PostgreSQL
    sub = await ok(await submit(broken, "stu", made["id"]), 201)  # its check waits in the outbox
    given = await ok(await grade(broken, "sam", sub, marks("P1 P2")))
    assert given["overall"] == "P"
    text = logs.getvalue()
    assert "job_kept_in_outbox" in text
    assert "check_similarity" in text
    assert "Traceback" not in text
    async with http.app[DB_POOL].acquire() as conn:
        kept = await conn.fetch("SELECT task, job_key FROM job_outbox ORDER BY created_at")
    assert [(r["task"], r["job_key"]) for r in kept] == [
        ("check_similarity", f"similarity:{sub['id']}:0"),
        ("send_email", f"grade:{sub['id']}:1"),
    ]
    # Redis is back (a worker on it): the relay queues what was kept, and each job runs once.
    relaying = school_settings.model_copy(update={"outbox_relay_seconds": 0.2})
    worker = await aiohttp_client(create_app(relaying, worker=True))
    await eventually(lambda: len(inbox.messages) >= 1, timeout=30,
                     message="the kept grade notice is relayed and sent")  # fmt: skip
    async with worker.app[DB_POOL].acquire() as conn:
        await eventually(lambda: _outbox_empty(conn), timeout=30, message="the outbox empties")
    await jobs_idle(worker.app)
    assert [m["Subject"] for m in inbox.messages].count(inbox.messages[0]["Subject"]) == 1
    assert "job_relayed" in logs.getvalue()


async def _outbox_empty(conn: Any) -> bool:
    return int(await conn.fetchval("SELECT count(*) FROM job_outbox")) == 0


# -- Operators' commands -------------------------------------------------------------------


@pytest.mark.embedded
async def test_flags_are_listed_and_rechecked_at_a_new_threshold(
    school: dict[str, Any],
    acli: Callable[..., Any],
    aiohttp_client: Callable[..., Any],
    school_settings: Settings,
) -> None:
    made = await assignment(school, await unit(school))
    original = await ok(await submit(school, "stu", made["id"], answer=ESSAY), 201)
    loose = " ".join(ESSAY.split()[:45] + OTHER_ESSAY.split()[:30])  # about 0.7 alike
    copied = await ok(await submit(school, "kim", made["id"], answer=loose), 201)
    worker = await aiohttp_client(create_app(school_settings, worker=True))
    await jobs_idle(worker.app)
    await worker.close()
    env = cli_env(school_settings, BTEC_ENV_FILE="")
    listed = await acli("assessment", "flags", "--json", env=env)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == {"flags": []}  # under the default 0.8
    # the operator lowers the threshold, restarts the workers, and queues every check again
    queued = await acli("assessment", "recheck", "--assignment", str(made["id"]), "--json",
                        env=env)  # fmt: skip
    assert queued.exit_code == 0, queued.output
    assert json.loads(queued.stdout) == {"ok": True, "queued": 2, "assignment": made["id"]}
    lower = school_settings.model_copy(update={"similarity_threshold": 0.5})
    worker = await aiohttp_client(create_app(lower, worker=True))
    await jobs_idle(worker.app)
    listed = await acli("assessment", "flags", "--assignment", str(made["id"]), "--json", env=env)
    [flag] = json.loads(listed.stdout)["flags"]
    assert {flag["submission_id"], flag["other_id"]} == {original["id"], copied["id"]}
    assert 0.5 <= flag["score"] < 0.8
    assert flag["student"] == "stu@example.org"
    table = await acli("assessment", "flags", env=env)
    assert table.exit_code == 0
    assert f"{flag['score']:.2f}" in table.stdout


async def test_the_commands_fail_cleanly_without_a_database(
    acli: Callable[..., Any], school_settings: Settings
) -> None:
    env = cli_env(
        school_settings,
        BTEC_ENV_FILE="",
        BTEC_DATABASE_URL=f"postgresql://u:hunter2@127.0.0.1:{closed_port()}/x",
    )
    for command in (("assessment", "flags", "--json"), ("assessment", "recheck", "--json")):
        answer = await acli(*command, env=env)
        assert answer.exit_code == 3, answer.output  # unreachable, as documented
        assert "hunter2" not in answer.output
        assert "Traceback" not in answer.output
        assert json.loads(answer.stdout)["ok"] is False
