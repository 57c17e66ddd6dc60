"""Submissions and grades over HTTP (rules in server.services.submissions): students submit
and read their own; the assessors named on an assignment read, grade and export its work."""

from __future__ import annotations

import csv
import io
from typing import Any

from aiohttp import web
from aiohttp_apigami import match_info_schema, querystring_schema, request_schema
from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from server.domain.errors import GradeChanged
from server.domain.fields import TEXT, StrictBool, free_text
from server.domain.pages import page
from server.http import deps
from server.http.guard import roles
from server.http.openapi import (
    json_response,
    operation,
    page_example,
)
from server.http.responses import NO_STORE, answer, start_stream
from server.http.schemas import ID, IdPath, page_fields
from server.services import submissions
from server.services.links import Links

routes = web.RouteTableDef()
CSV_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


class SubmissionBody(Schema):
    answer = fields.Str(
        load_default="",
        validate=[validate.Length(max=200_000), free_text],
        metadata={"description": "The answer text (at most BTEC_SUBMISSION_MAX_CHARS).",
                  "example": "Object-oriented programming organises a program around..."},
    )  # fmt: skip
    file_ids = fields.List(
        fields.UUID(),
        load_default=list,
        validate=validate.Length(max=100),
        metadata={"description": "Uploaded files (POST /api/v1/files) given as evidence; "
                  "at most BTEC_SUBMISSION_MAX_FILES.",
                  "example": ["0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11"], "uniqueItems": True},
    )  # fmt: skip

    @validates_schema
    def _something(self, data: dict[str, Any], **_: Any) -> None:
        if not data.get("answer", "").strip() and not data.get("file_ids"):
            raise ValidationError("Give an answer, files, or both.")
        ids = data.get("file_ids", [])
        if len(set(ids)) != len(ids):
            raise ValidationError({"file_ids": ["A file is given more than once."]})


class GradeBody(Schema):
    assignment_id = fields.Int(
        required=True,
        strict=True,
        validate=ID,
        metadata={"description": "The assignment whose criteria are marked: it must be the "
                  "submission's (422 `wrong_assignment` if not).", "example": 12},
    )  # fmt: skip
    criteria = fields.Dict(
        keys=fields.Str(validate=validate.Length(min=1, max=10)),
        values=StrictBool(),
        required=True,
        validate=validate.Length(min=1, max=200),
        metadata={"description": "Every criterion of the assignment, achieved or not.",
                  "example": {"P1": True, "P2": True, "M1": True, "D1": False}},
    )  # fmt: skip
    feedback = fields.Str(
        load_default="",
        validate=[validate.Length(max=20000), free_text],
        metadata={
            "example": "A clear explanation of encapsulation; for D1, compare designs.",
            TEXT: "prose",
        },
    )


class ListQuery(Schema):
    assignment = fields.Int(validate=ID, metadata={"example": 12})
    late = fields.Bool(metadata={"example": True})
    graded = fields.Bool(metadata={"example": False})
    flagged = fields.Bool(
        metadata={"description": "Only (or never) submissions with similarity flags; staff "
                  "only.", "example": True}
    )  # fmt: skip
    limit, offset = page_fields(50)


GRADE_EXAMPLE = {
    "submission_id": 88,
    "assessor_id": 5,
    "criteria": {"P1": True, "P2": True, "M1": True, "D1": False},
    "overall": "M",
    "feedback": "A clear explanation of encapsulation; for D1, compare designs.",
    "version": 1,
    "graded_at": "2026-10-20T10:02:11+00:00",
    "updated_at": "2026-10-20T10:02:11+00:00",
}
SUBMISSION_EXAMPLE = {
    "id": 88,
    "assignment_id": 12,
    "student_id": 42,
    "student_name": "Alex Student",
    "answer": "Object-oriented programming organises a program around...",
    "files": [
        {
            "id": "0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11",
            "owner_id": 42,
            "filename": "evidence.pdf",
            "kind": "pdf",
            "content_type": "application/pdf",
            "size_bytes": 182044,
            "sha256": "9f2c6a1b0e0f1c2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f809",
            "scan_status": "clean",
            "scan_detail": None,
            "scanned_at": "2026-10-15T09:14:05+00:00",
            "created_at": "2026-10-15T09:14:03+00:00",
            "content_url": "/api/v1/files/0b8f8f5e-5d7c-4d83-9a43-3a6f0d0f6d11/content",
        }
    ],
    "submitted_at": "2026-10-15T09:15:00+00:00",
    "late": False,
    "resubmissions": 1,
    "created_at": "2026-10-14T18:40:00+00:00",
    "grade": GRADE_EXAMPLE,
    "similarity": [
        {
            "submission_id": 91,
            "student_id": 57,
            "student_name": "Sam Student",
            "score": 0.9412,
            "checked_at": "2026-10-15T09:15:02+00:00",
        }
    ],
}
LIST_EXAMPLE = page_example(
    {
        "id": 88,
        "assignment_id": 12,
        "student_id": 42,
        "student_name": "Alex Student",
        "submitted_at": "2026-10-15T09:15:00+00:00",
        "late": False,
        "resubmissions": 1,
        "files": 1,
        "overall": "M",
        "grade_version": 1,
        "flags": 1,
    },
    50,
)
IF_MATCH = {
    "in": "header",
    "name": "If-Match",
    "required": False,
    "schema": {"type": "string"},
    "description": 'The grade\'s ETag as read (`"3"`), or `"0"` for "not graded yet": 412 '
    "`grade_changed` if someone graded it since.",
}
VERSION_HEADER = {
    "ETag": {"schema": {"type": "string"}, "description": 'The grade version: `"3"`.'}
}


@operation(
    "submissions",
    ok={
        200: json_response("Resubmitted", SUBMISSION_EXAMPLE | {"grade": None}),
        201: json_response("Submitted", SUBMISSION_EXAMPLE | {"grade": None, "resubmissions": 0}),
    },
    problems="not_found assignment_not_open submission_graded invalid_files payload_too_large",
)
@match_info_schema(IdPath)
@request_schema(SubmissionBody)
@roles("student")
@routes.put("/api/v1/assignments/{id}/submission", name="submission_put")
async def submit(request: web.Request) -> web.Response:
    """Submit or resubmit your work (students)

    Your answer text and uploaded files (your own, not infected) for an open assignment: 201 the
    first time, 200 for a resubmission, which replaces the answer and files and is counted (the same
    answer and files again, such as a retry, change nothing). After the deadline the work is still
    taken, flagged `late`. Once graded, 409 `submission_graded`; before it opens, 409
    `assignment_not_open`. A similarity check with the other submissions runs in the background.
    """
    body, settings = deps.body(request), deps.settings(request)
    document, outcome = await submissions.submit(
        db=deps.db(request), jobs=deps.jobs(request), metrics=deps.metrics(request),
        limits=submissions.Limits(settings.submission_max_chars, settings.submission_max_files),
        student=deps.user(request), assignment_id=deps.path(request)["id"],
        answer=body["answer"], file_ids=body["file_ids"],
    )  # fmt: skip
    location = f"/api/v1/submissions/{document['id']}"
    return answer(document, 201 if outcome == "first" else 200, location=location)


@operation(
    "submissions",
    ok={200: json_response("Your submission", SUBMISSION_EXAMPLE | {"similarity": None})},
    problems="not_found",
)
@match_info_schema(IdPath)
@roles("student")
@routes.get("/api/v1/assignments/{id}/submission", name="submission_mine")
async def mine(request: web.Request) -> web.Response:
    """Your submission to an assignment (students)

    404 until you have submitted. Similarity flags are for assessors only.
    """
    found = await submissions.mine(
        db=deps.db(request), student=deps.user(request), assignment_id=deps.path(request)["id"]
    )
    return answer(found)


@operation("submissions", ok={200: json_response("A page of submissions", LIST_EXAMPLE)})
@querystring_schema(ListQuery)
@routes.get("/api/v1/submissions", name="submissions_list")
async def listing(request: web.Request) -> web.Response:
    """List submissions (students: their own; assessors: their assignments')

    Newest first. Students see their own; assessors the submissions to the assignments they assess;
    admins all. Filter by assignment, late, graded and (staff) flagged for similarity.
    """
    q = deps.query(request)
    items, total = await submissions.listing(
        db=deps.db(request), user=deps.user(request), filters=q, limit=q["limit"],
        offset=q["offset"],
    )  # fmt: skip
    return answer(page(items, total=total, limit=q["limit"], offset=q["offset"]))


@operation(
    "submissions",
    ok={200: json_response("The submission", SUBMISSION_EXAMPLE)},
    problems="not_assessor not_found",
)
@match_info_schema(IdPath)
@routes.get("/api/v1/submissions/{id}", name="submission")
async def one(request: web.Request) -> web.Response:
    """A submission with its files, grade and (staff) similarity flags

    The student who submitted it, the assignment's assessors and admins. To other students it does
    not exist (404); other assessors get 403 `not_assessor`.
    """
    found = await submissions.one(
        db=deps.db(request), user=deps.user(request), submission_id=deps.path(request)["id"]
    )
    return answer(found)


def _if_match(request: web.Request) -> int | None:
    """The version an If-Match names; one that names none of ours can never match."""
    raw = request.headers.get("If-Match")
    if raw is None:
        return None
    value = raw.strip().removeprefix("W/").strip('"')
    if not value.isdigit() or len(value) > 9:
        raise GradeChanged(f'If-Match {raw[:40]!r} is not a grade version such as "3"')
    return int(value)


@operation(
    "grades",
    ok={200: json_response("The grade", GRADE_EXAMPLE) | {"headers": VERSION_HEADER}},
    problems="not_assessor not_found grade_changed invalid_criteria wrong_assignment",
    parameters=[IF_MATCH],
)
@match_info_schema(IdPath)
@request_schema(GradeBody)
@roles("assessor", "admin")
@routes.put("/api/v1/submissions/{id}/grade", name="grade_put")
async def grade(request: web.Request) -> web.Response:
    """Grade a submission, or change its grade (the assignment's assessors)

    Mark every criterion of the assignment achieved or not; the overall grade follows the BTEC rule
    (D: every P, M and D; M: every P and M; P: every P; else U; a band the assignment lacks cannot
    be awarded) and is never taken from the request. 422 `invalid_criteria` for unknown or unmarked
    codes, 422 `wrong_assignment` when `assignment_id` is not the submission's, 403 `not_assessor`
    for anyone not named on the assignment. Concurrent grades of one submission take turns; send
    If-Match to be told (412 `grade_changed`) instead of replacing a grade given meanwhile. The
    student is told by mail.
    """
    body = deps.body(request)
    given = await submissions.give_grade(
        db=deps.db(request), jobs=deps.jobs(request), metrics=deps.metrics(request),
        links=Links.of(deps.settings(request)), assessor=deps.user(request),
        submission_id=deps.path(request)["id"], assignment_id=body["assignment_id"],
        marks=body["criteria"], feedback=body["feedback"], if_match=_if_match(request),
    )  # fmt: skip
    return answer(given, ETag=f'"{given["version"]}"')


@operation(
    "grades",
    ok={200: json_response("The grade", GRADE_EXAMPLE) | {"headers": VERSION_HEADER}},
    problems="not_assessor not_found",
)
@match_info_schema(IdPath)
@routes.get("/api/v1/submissions/{id}/grade", name="grade_get")
async def read_grade(request: web.Request) -> web.Response:
    """A submission's grade

    For the student who submitted it, the assignment's assessors and admins; 404 until graded. The
    ETag is the grade's version, for If-Match when changing it.
    """
    found = await submissions.grade_of(
        db=deps.db(request), user=deps.user(request), submission_id=deps.path(request)["id"]
    )
    return answer(found, ETag=f'"{found["version"]}"')


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet shows as text: one starting like a formula is quoted
    with a leading apostrophe (OWASP CSV injection)."""
    if isinstance(value, str) and value.startswith(CSV_FORMULA_START):
        return "'" + value
    return value


@operation(
    "grades",
    ok={
        200: {
            "description": "The grades",
            "content": {
                "text/csv": {
                    "example": "submission_id,student_id,student_name,student_email,"
                    "submitted_at,late,resubmissions,overall,P1,M1,D1,feedback,assessor,"
                    "graded_at,grade_version,similarity_flags\r\n88,42,Alex Student,"
                    "alex@college.example.ac.uk,2026-10-15T09:15:00+00:00,no,1,M,achieved,"
                    "achieved,not achieved,Well argued.,Sam Assessor,"
                    "2026-10-20T10:02:11+00:00,1,0\r\n"
                }
            },
        }
    },
    problems="not_assessor not_found",
)
@match_info_schema(IdPath)
@roles("assessor", "admin")
@routes.get("/api/v1/assignments/{id}/grades.csv", name="grades_export")
async def export(request: web.Request) -> web.StreamResponse:
    """Export an assignment's grades as CSV (its assessors and admins)

    One row per submission, by student name: submission, student, submitted at, late, resubmissions,
    overall grade, each criterion (`achieved`, `not achieved`, or empty when ungraded), feedback,
    assessor, when graded, grade version and similarity flags. UTF-8 with a byte order mark so
    spreadsheets read names correctly; cells that start like a formula get a leading apostrophe.
    """
    assignment_id = deps.path(request)["id"]
    header, rows = await submissions.export(
        db=deps.db(request), user=deps.user(request), assignment_id=assignment_id
    )
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/csv; charset=utf-8",
            "Content-Disposition": f'attachment; filename="assignment-{assignment_id}-grades.csv"',
            **NO_STORE,
        }
    )
    if not await start_stream(request, response):
        return response
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    buffer.write("\ufeff")
    writer.writerow(header)
    async for row in rows:
        writer.writerow([_cell(v) for v in row])
        if buffer.tell() > 64 * 1024:
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
    await response.write(buffer.getvalue().encode())
    await response.write_eof()
    return response
