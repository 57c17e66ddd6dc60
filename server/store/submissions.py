"""Every query of submissions, their evidence files, grades and similarity flags."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Sequence
from typing import Any

from server.domain.grading import sort_key
from server.store import Conn
from server.store import files as files_store

SUBMISSION = (
    "s.id, s.assignment_id, s.student_id, u.full_name AS student_name, s.answer, "
    "s.submitted_at, s.late, s.resubmissions, s.created_at"
)
GRADE = (
    "g.submission_id, g.assessor_id, g.criteria, g.overall, g.feedback, g.version, "
    "g.graded_at, g.updated_at"
)


def _iso(value: Any) -> str | None:
    return None if value is None else value.isoformat()


async def existing(conn: Conn, assignment_id: int, student_id: int) -> Any:
    """The student's submission to the assignment, locked, with its answer and files and
    whether it has a grade."""
    return await conn.fetchrow(
        "SELECT s.id, s.answer, EXISTS (SELECT 1 FROM grades g WHERE g.submission_id = s.id) "
        "AS graded, ARRAY(SELECT sf.file_id FROM submission_files sf "
        "WHERE sf.submission_id = s.id ORDER BY sf.position) AS file_ids "
        "FROM submissions s WHERE s.assignment_id = $1 AND s.student_id = $2 "
        "FOR NO KEY UPDATE OF s",
        assignment_id, student_id,
    )  # fmt: skip


async def upsert(conn: Conn, assignment_id: int, student_id: int, answer: str) -> Any:
    """Submit, or resubmit (counted): submitted now, late by the database's clock. Returns
    the row and whether it was inserted; None if a submission made meanwhile (by the same
    student, racing) has been graded."""
    return await conn.fetchrow(
        "INSERT INTO submissions (assignment_id, student_id, answer, late) "
        "SELECT a.id, $2, $3, now() > a.deadline FROM assignments a WHERE a.id = $1 "
        "ON CONFLICT (assignment_id, student_id) DO UPDATE SET answer = EXCLUDED.answer, "
        "late = EXCLUDED.late, submitted_at = now(), "
        "resubmissions = submissions.resubmissions + 1 "
        "WHERE NOT EXISTS (SELECT 1 FROM grades g WHERE g.submission_id = submissions.id) "
        "RETURNING id, assignment_id, student_id, answer, submitted_at, late, resubmissions, "
        "created_at, (xmax = 0) AS inserted",
        assignment_id, student_id, answer,
    )  # fmt: skip


async def usable_files(conn: Conn, file_ids: Sequence[uuid.UUID]) -> dict[uuid.UUID, Any]:
    if not file_ids:
        return {}
    rows = await conn.fetch(
        f"SELECT {files_store.COLUMNS} FROM files WHERE id = ANY($1::uuid[])",  # nosec B608 # only the constant COLUMNS; values are $n args
        list(file_ids),
    )
    return {r["id"]: dict(r) for r in rows}


async def set_files(
    conn: Conn, submission_id: int, file_ids: Sequence[uuid.UUID], *, replace: bool
) -> None:
    """Link the files, in order; `replace`: unlink the ones linked before."""
    if replace:
        await conn.execute("DELETE FROM submission_files WHERE submission_id = $1", submission_id)
    if file_ids:
        await conn.execute(
            "INSERT INTO submission_files (submission_id, file_id, position) "
            "SELECT $1, f, p - 1 FROM unnest($2::uuid[]) WITH ORDINALITY AS t(f, p)",
            submission_id, list(file_ids),
        )  # fmt: skip


async def by_id(conn: Conn, submission_id: int) -> Any:
    return await conn.fetchrow(
        f"SELECT {SUBMISSION} FROM submissions s JOIN users u ON u.id = s.student_id "  # nosec B608 # only the constant SUBMISSION; values are $n args
        "WHERE s.id = $1",
        submission_id,
    )


async def files_of(conn: Conn, submission_id: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {files_store.COLUMNS} FROM files f JOIN submission_files sf ON sf.file_id = f.id "  # nosec B608 # only the constant COLUMNS; values are $n args
        "WHERE sf.submission_id = $1 ORDER BY sf.position",
        submission_id,
    )
    return [dict(r) for r in rows]


async def grade_of(conn: Conn, submission_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {GRADE}, s.assignment_id FROM grades g "  # nosec B608 # only the constant GRADE; values are $n args
        "JOIN submissions s ON s.id = g.submission_id WHERE g.submission_id = $1",
        submission_id,
    )
    return grade(row) if row else None


async def flags_of(conn: Conn, submission_id: int) -> list[dict[str, Any]]:
    """The submissions flagged as alike this one, most alike first."""
    rows = await conn.fetch(
        "SELECT o.id, o.student_id, u.full_name, f.score, f.checked_at FROM similarity_flags f "
        "JOIN submissions o ON o.id = CASE WHEN f.submission_id = $1 THEN f.other_id "
        "ELSE f.submission_id END JOIN users u ON u.id = o.student_id "
        "WHERE f.submission_id = $1 OR f.other_id = $1 ORDER BY f.score DESC, o.id",
        submission_id,
    )
    return [
        {
            "submission_id": r["id"],
            "student_id": r["student_id"],
            "student_name": r["full_name"],
            "score": round(float(r["score"]), 4),
            "checked_at": _iso(r["checked_at"]),
        }
        for r in rows
    ]


LIST_FILTER = (
    "($1::bigint IS NULL OR s.student_id = $1) "
    "AND ($2::bigint IS NULL OR EXISTS (SELECT 1 FROM assignment_assessors aa "
    "WHERE aa.assignment_id = s.assignment_id AND aa.assessor_id = $2)) "
    "AND ($3::bigint IS NULL OR s.assignment_id = $3) "
    "AND ($4::boolean IS NULL OR s.late = $4) "
    "AND ($5::boolean IS NULL OR (g.submission_id IS NOT NULL) = $5) "
    "AND ($6::boolean IS NULL OR EXISTS (SELECT 1 FROM similarity_flags f "
    "WHERE f.submission_id = s.id OR f.other_id = s.id) = $6)"
)


async def page(
    conn: Conn,
    *,
    student_id: int | None,
    assessor_id: int | None,
    assignment_id: int | None,
    late: bool | None,
    graded: bool | None,
    flagged: bool | None,
    limit: int,
    offset: int,
) -> tuple[list[dict[str, Any]], int]:
    """Submissions, newest first, within a scope (a student's own, an assessor's
    assignments) and filters; and how many match in all."""
    args = (student_id, assessor_id, assignment_id, late, graded, flagged)
    rows = await conn.fetch(
        "SELECT s.id, s.assignment_id, s.student_id, u.full_name AS student_name, "  # nosec B608 # only the constant LIST_FILTER; values are $n args
        "s.submitted_at, s.late, s.resubmissions, g.overall, g.version AS grade_version, "
        "(SELECT count(*) FROM submission_files sf WHERE sf.submission_id = s.id) AS files, "
        "(SELECT count(*) FROM similarity_flags f WHERE f.submission_id = s.id "
        "OR f.other_id = s.id) AS flags, count(*) OVER () AS total "
        "FROM submissions s JOIN users u ON u.id = s.student_id "
        f"LEFT JOIN grades g ON g.submission_id = s.id WHERE {LIST_FILTER} "
        "ORDER BY s.submitted_at DESC, s.id DESC LIMIT $7 OFFSET $8",
        *args, limit, offset,
    )  # fmt: skip
    items = [
        {
            "id": r["id"],
            "assignment_id": r["assignment_id"],
            "student_id": r["student_id"],
            "student_name": r["student_name"],
            "submitted_at": _iso(r["submitted_at"]),
            "late": r["late"],
            "resubmissions": r["resubmissions"],
            "files": r["files"],
            "overall": r["overall"],
            "grade_version": r["grade_version"],
            "flags": r["flags"],
        }
        for r in rows
    ]
    if rows:
        return items, int(rows[0]["total"])
    if offset == 0:
        return [], 0
    total = await conn.fetchval(
        "SELECT count(*) FROM submissions s LEFT JOIN grades g ON g.submission_id = s.id "  # nosec B608 # only the constant LIST_FILTER; values are $n args
        f"WHERE {LIST_FILTER}",
        *args,
    )
    return [], int(total)


async def lock_for_grading(conn: Conn, submission_id: int) -> Any:
    """The submission's row, locked for this transaction, with what the grade notice says
    (the student's address and name, the assignment's title, its unit's code). Grades and
    resubmissions of one submission take turns on this lock; NO KEY UPDATE, so rows that only
    refer to it (flags, files) are not held up. Take the assignment's lock first
    (server.store.assignments): every transaction locks in that order, so none can deadlock
    another. Read the grade after this returns (grade_version): a statement that waited for
    the lock sees other rows as they were when it started."""
    return await conn.fetchrow(
        "SELECT s.id, u.email, u.full_name, a.title, un.code AS unit_code "
        "FROM submissions s JOIN users u ON u.id = s.student_id "
        "JOIN assignments a ON a.id = s.assignment_id JOIN units un ON un.id = a.unit_id "
        "WHERE s.id = $1 FOR NO KEY UPDATE OF s",
        submission_id,
    )


async def grade_version(conn: Conn, submission_id: int) -> int | None:
    found: int | None = await conn.fetchval(
        "SELECT version FROM grades WHERE submission_id = $1", submission_id
    )
    return found


async def assignment_of(conn: Conn, submission_id: int) -> int | None:
    """The assignment a submission is for (it never changes): read before any lock."""
    found: int | None = await conn.fetchval(
        "SELECT assignment_id FROM submissions WHERE id = $1", submission_id
    )
    return found


async def assignment_exists(conn: Conn, assignment_id: int) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM assignments WHERE id = $1)", assignment_id
        )
    )


async def criteria_of(conn: Conn, assignment_id: int) -> list[str]:
    rows = await conn.fetch(
        "SELECT code FROM assignment_criteria WHERE assignment_id = $1", assignment_id
    )
    return [r["code"] for r in rows]


async def put_grade(
    conn: Conn,
    submission_id: int,
    *,
    assessor_id: int,
    criteria: dict[str, bool],
    overall: str,
    feedback: str,
) -> dict[str, Any]:
    """Give or replace the grade: marks, overall grade and feedback change together."""
    row = await conn.fetchrow(
        "INSERT INTO grades (submission_id, assessor_id, criteria, overall, feedback) "  # nosec B608 # only the constant GRADE; values are $n args
        "VALUES ($1, $2, $3::jsonb, $4, $5) ON CONFLICT (submission_id) DO UPDATE SET "
        "assessor_id = EXCLUDED.assessor_id, criteria = EXCLUDED.criteria, "
        "overall = EXCLUDED.overall, feedback = EXCLUDED.feedback, "
        "version = grades.version + 1, updated_at = now() "
        f"RETURNING {GRADE.replace('g.', '')}",
        submission_id, assessor_id, json.dumps(criteria, sort_keys=True), overall, feedback,
    )  # fmt: skip
    return grade(row)


async def answers(conn: Conn, submission_id: int) -> tuple[str | None, dict[int, str]]:
    """The submission's answer, and the answers of the others to the same assignment."""
    rows = await conn.fetch(
        "SELECT o.id, o.answer FROM submissions s JOIN submissions o "
        "ON o.assignment_id = s.assignment_id WHERE s.id = $1",
        submission_id,
    )
    mine = next((r["answer"] for r in rows if r["id"] == submission_id), None)
    return mine, {r["id"]: r["answer"] for r in rows if r["id"] != submission_id}


async def replace_flags(conn: Conn, submission_id: int, pairs: Sequence[tuple[int, float]]) -> None:
    """The submission's flags become `pairs` (other submission, score): flags of an
    earlier version of its answer go."""
    await conn.execute(
        "DELETE FROM similarity_flags WHERE submission_id = $1 OR other_id = $1", submission_id
    )
    if pairs:
        await conn.execute(
            "INSERT INTO similarity_flags (submission_id, other_id, score) "
            "SELECT least($1, o), greatest($1, o), sc FROM unnest($2::bigint[], $3::real[]) "
            "AS t(o, sc) JOIN submissions x ON x.id = t.o "
            "ON CONFLICT (submission_id, other_id) DO UPDATE SET score = EXCLUDED.score, "
            "checked_at = now()",
            submission_id, [p[0] for p in pairs], [p[1] for p in pairs],
        )  # fmt: skip


async def export_rows(conn: Conn, assignment_id: int) -> AsyncIterator[Any]:
    """Every submission to the assignment with its student and grade, by student name;
    a cursor, so a large class streams (call within a transaction)."""
    query = (
        "SELECT s.id, u.id AS student_id, u.full_name, u.email, s.submitted_at, s.late, "
        "s.resubmissions, g.overall, g.criteria, g.feedback, g.version, g.updated_at, "
        "au.full_name AS assessor_name, "
        "(SELECT count(*) FROM similarity_flags f WHERE f.submission_id = s.id "
        "OR f.other_id = s.id) AS flags "
        "FROM submissions s JOIN users u ON u.id = s.student_id "
        "LEFT JOIN grades g ON g.submission_id = s.id "
        "LEFT JOIN users au ON au.id = g.assessor_id "
        "WHERE s.assignment_id = $1 ORDER BY u.full_name, s.id"
    )
    async for row in conn.cursor(query, assignment_id, prefetch=500):
        yield row


def marks(value: Any) -> dict[str, bool]:
    """A grade's per-criterion marks from its jsonb column (text without a codec)."""
    if value is None:
        return {}
    found = json.loads(value) if isinstance(value, str) else value
    return dict(sorted(found.items(), key=lambda kv: sort_key(kv[0])))


def grade(row: Any) -> dict[str, Any]:
    return {
        "submission_id": row["submission_id"],
        "assessor_id": row["assessor_id"],
        "criteria": marks(row["criteria"]),
        "overall": row["overall"],
        "feedback": row["feedback"],
        "version": row["version"],
        "graded_at": _iso(row["graded_at"]),
        "updated_at": _iso(row["updated_at"]),
    }


async def flagged_pairs(conn: Conn, assignment_id: int | None, limit: int) -> list[dict[str, Any]]:
    """Flagged pairs with both students' addresses (of one assignment, or all), most alike
    first."""
    rows = await conn.fetch(
        "SELECT s.assignment_id, f.submission_id, su.email AS student, f.other_id, "
        "ou.email AS other_student, f.score, f.checked_at FROM similarity_flags f "
        "JOIN submissions s ON s.id = f.submission_id JOIN users su ON su.id = s.student_id "
        "JOIN submissions o ON o.id = f.other_id JOIN users ou ON ou.id = o.student_id "
        "WHERE ($1::bigint IS NULL OR s.assignment_id = $1) "
        "ORDER BY f.score DESC, f.submission_id, f.other_id LIMIT $2",
        assignment_id, limit,
    )  # fmt: skip
    return [dict(r) for r in rows]


async def versions(conn: Conn, assignment_id: int | None) -> list[tuple[int, int]]:
    """(id, resubmissions) of every submission (of one assignment, or all), by id."""
    rows = await conn.fetch(
        "SELECT id, resubmissions FROM submissions "
        "WHERE ($1::bigint IS NULL OR assignment_id = $1) ORDER BY id",
        assignment_id,
    )
    return [(r["id"], r["resubmissions"]) for r in rows]
