"""Submissions and grades: who may submit, see and grade what, and the rules they follow.

- A student submits to an open assignment (409 `assignment_not_open` before it opens) and may
  resubmit until it is graded (409 `submission_graded` after); each resubmission is counted.
  Work after the deadline is taken but flagged late, by the database's clock. Sending the same
  answer and files again (a client retrying) changes nothing and counts nothing.
- Evidence files must be the student's own uploads and not have failed their virus scan.
- A student sees only their own submissions and grades (another's is a 404, as if it did not
  exist); the assessors named on an assignment see all of its submissions, with similarity
  flags; admins see everything.
- Only the assessors named on the assignment grade (403 `not_assessor`). Every criterion of
  the assignment must be marked, and no other (422 `invalid_criteria`); the overall grade
  comes from the BTEC rule (server.domain.grading), never from the client.
- Grades of one submission take turns on its row lock, so concurrent grading ends in one of
  the grades given, whole (marks, overall grade and feedback together). A client that sends
  If-Match with the version it read gets 412 `grade_changed` instead of overwriting a grade
  given meanwhile.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from server.domain import grading, similarity
from server.domain.errors import (
    AssignmentNotOpen,
    FieldError,
    GradeChanged,
    InvalidCriteria,
    InvalidFiles,
    NotAssessor,
    NotFound,
    SubmissionGraded,
    ValidationFailed,
    WrongAssignment,
    field_error,
)
from server.jobs import outbox
from server.jobs.outbox import FollowUp
from server.jobs.queue import Jobs
from server.observability.metrics import Metrics
from server.services import notices
from server.services.files import public
from server.services.links import Links
from server.store import Conn, Connect
from server.store import assignments as assignments_store
from server.store import submissions as store

STAFF = frozenset({"assessor", "admin"})
Outcome = Literal["first", "resubmission", "unchanged"]
REFUSED_SCANS = frozenset({"infected", "error"})


@dataclass(frozen=True)
class Limits:
    """How much one submission may carry (BTEC_SUBMISSION_MAX_CHARS and _MAX_FILES)."""

    max_chars: int
    max_files: int

    def check(self, answer: str, file_ids: Sequence[uuid.UUID]) -> None:
        if len(answer) > self.max_chars:
            raise ValidationFailed(
                f"the answer has {len(answer)} characters; at most {self.max_chars} are taken",
                errors=[field_error("answer", f"Longer than {self.max_chars} characters.")],
            )
        if len(file_ids) > self.max_files:
            raise ValidationFailed(
                errors=[field_error("file_ids", f"At most {self.max_files} files.")]
            )


async def submit(
    *,
    db: Connect,
    jobs: Jobs,
    metrics: Metrics,
    limits: Limits,
    student: dict[str, Any],
    assignment_id: int,
    answer: str,
    file_ids: Sequence[uuid.UUID],
) -> tuple[dict[str, Any], Outcome]:
    """Submit or resubmit within the limits; new work is counted and a similarity check
    follows it. Returns the submission and what happened to it."""
    limits.check(answer, file_ids)
    document, outcome = await _save(db, student, assignment_id, answer, file_ids)
    if outcome != "unchanged":  # a client's retry of the same work: nothing to check again
        metrics.submissions.labels(outcome, "true" if document["late"] else "false").inc()
        await outbox.publish(db, jobs, [_similarity(document["id"], document["resubmissions"])])
    return document, outcome


def _similarity(submission_id: int, resubmissions: int) -> FollowUp:
    """The similarity check of a submission's version: a follow-up of its transaction."""
    return FollowUp(
        "check_similarity", f"similarity:{submission_id}:{resubmissions}",
        {"submission_id": submission_id, "resubmissions": resubmissions},
        about={"submission_id": submission_id},
    )  # fmt: skip


async def _save(
    db: Connect,
    student: dict[str, Any],
    assignment_id: int,
    answer: str,
    file_ids: Sequence[uuid.UUID],
) -> tuple[dict[str, Any], Outcome]:
    async with db() as conn, conn.transaction():
        assignment = await assignments_store.lock(conn, assignment_id, share=True)
        if assignment is None:
            raise NotFound(f"no assignment has id {assignment_id}")
        if assignment["now"] < assignment["opens_at"]:
            raise AssignmentNotOpen(
                f"assignment {assignment_id} opens at {assignment['opens_at'].isoformat()}"
            )
        before = await store.existing(conn, assignment_id, student["id"])
        if before is not None:
            if before["answer"] == answer and list(before["file_ids"]) == list(file_ids):
                return await _document(conn, before["id"], staff=False), "unchanged"
            if before["graded"]:
                raise SubmissionGraded(
                    f"submission {before['id']} has been graded; ask the assessor about a "
                    "resubmission"
                )
        files = await _check_files(conn, student["id"], file_ids)
        saved = await store.upsert(conn, assignment_id, student["id"], answer)
        if saved is None:
            raise SubmissionGraded("your submission has been graded meanwhile")
        await store.set_files(conn, saved["id"], file_ids, replace=before is not None)
        await outbox.record(conn, _similarity(saved["id"], saved["resubmissions"]))
    document = {
        "id": saved["id"],
        "assignment_id": saved["assignment_id"],
        "student_id": saved["student_id"],
        "student_name": student["full_name"],
        "answer": saved["answer"],
        "files": [public(files[f]) for f in file_ids],
        "submitted_at": saved["submitted_at"].isoformat(),
        "late": saved["late"],
        "resubmissions": saved["resubmissions"],
        "created_at": saved["created_at"].isoformat(),
        "grade": None,  # a graded submission takes no new work
    }
    return document, "first" if saved["inserted"] else "resubmission"


async def _check_files(
    conn: Conn, student_id: int, file_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, Any]:
    """The files, if each is the student's own and not refused by its scan: 422 if not."""
    found = await store.usable_files(conn, file_ids)
    errors: list[FieldError] = []
    for index, file_id in enumerate(file_ids):
        row = found.get(file_id)
        if row is None or row["owner_id"] != student_id:
            errors.append(
                field_error(("file_ids", index), "No file of yours has this id.", "not_found")
            )
        elif row["scan_status"] in REFUSED_SCANS:
            said = f"The file's virus scan says {row['scan_status']}."
            errors.append(field_error(("file_ids", index), said))
    if errors:
        raise InvalidFiles(errors=errors)
    return found


async def _document(conn: Conn, submission_id: int, *, staff: bool) -> dict[str, Any]:
    """A submission in full; similarity flags only for staff."""
    row = await store.by_id(conn, submission_id)
    if row is None:
        raise RuntimeError(f"submission {submission_id} is gone")
    document: dict[str, Any] = {
        "id": row["id"],
        "assignment_id": row["assignment_id"],
        "student_id": row["student_id"],
        "student_name": row["student_name"],
        "answer": row["answer"],
        "files": [public(f) for f in await store.files_of(conn, submission_id)],
        "submitted_at": row["submitted_at"].isoformat(),
        "late": row["late"],
        "resubmissions": row["resubmissions"],
        "created_at": row["created_at"].isoformat(),
        "grade": await store.grade_of(conn, submission_id),
    }
    if staff:
        document["similarity"] = await store.flags_of(conn, submission_id)
    return document


async def _may_see(conn: Conn, user: dict[str, Any], row: Any) -> bool:
    """The student who submitted it, the assignment's assessors, and admins."""
    if user["role"] == "admin" or row["student_id"] == user["id"]:
        return True
    if user["role"] == "assessor":
        return await assignments_store.assesses(conn, row["assignment_id"], user["id"])
    return False


async def _visible(conn: Conn, user: dict[str, Any], submission_id: int) -> Any:
    row = await store.by_id(conn, submission_id)
    if row is None or not await _may_see(conn, user, row):
        if row is not None and user["role"] == "assessor":
            raise NotAssessor(f"you do not assess assignment {row['assignment_id']}")
        raise NotFound(f"no submission of yours has id {submission_id}")
    return row


async def one(*, db: Connect, user: dict[str, Any], submission_id: int) -> dict[str, Any]:
    async with db() as conn:
        await _visible(conn, user, submission_id)
        staff = user["role"] in STAFF
        return await _document(conn, submission_id, staff=staff)


async def mine(*, db: Connect, student: dict[str, Any], assignment_id: int) -> dict[str, Any]:
    """The student's own submission to an assignment."""
    async with db() as conn:
        row = await conn.fetchval(
            "SELECT id FROM submissions WHERE assignment_id = $1 AND student_id = $2",
            assignment_id,
            student["id"],
        )
        if row is None:
            raise NotFound(f"you have not submitted to assignment {assignment_id}")
        return await _document(conn, row, staff=False)


async def listing(
    *, db: Connect, user: dict[str, Any], filters: dict[str, Any], limit: int, offset: int
) -> tuple[list[dict[str, Any]], int]:
    """Students list their own; assessors those of the assignments they assess; admins all.
    Flags are counted for staff only."""
    role = user["role"]
    async with db() as conn:
        items, total = await store.page(
            conn,
            student_id=user["id"] if role == "student" else None,
            assessor_id=user["id"] if role == "assessor" else None,
            assignment_id=filters.get("assignment"),
            late=filters.get("late"),
            graded=filters.get("graded"),
            flagged=filters.get("flagged") if role in STAFF else None,
            limit=limit,
            offset=offset,
        )
    if role not in STAFF:
        for item in items:
            item.pop("flags")
    return items, total


async def grade_of(*, db: Connect, user: dict[str, Any], submission_id: int) -> dict[str, Any]:
    async with db() as conn:
        await _visible(conn, user, submission_id)
        found = await store.grade_of(conn, submission_id)
    if found is None:
        raise NotFound(f"submission {submission_id} has not been graded yet")
    return found


def check_marks(codes: Sequence[str], marks: dict[str, bool]) -> None:
    """Every criterion of the assignment marked, and no other: 422 `invalid_criteria`."""
    errors = [
        field_error(("criteria", code), "No such criterion in this assignment.", "unknown_field")
        for code in sorted(set(marks) - set(codes), key=_code_order)
    ] + [
        field_error(("criteria", code), "Not marked.", "required")
        for code in sorted(set(codes) - set(marks), key=_code_order)
    ]
    if errors:
        raise InvalidCriteria(
            f"the assignment's criteria are {', '.join(sorted(codes, key=_code_order))}",
            errors=errors,
        )


def _code_order(code: str) -> tuple[int, int, str]:
    try:
        return (*grading.sort_key(code), "")
    except ValueError:
        return (9, 0, code)


async def give_grade(
    *,
    db: Connect,
    jobs: Jobs,
    metrics: Metrics,
    links: Links,
    assessor: dict[str, Any],
    submission_id: int,
    assignment_id: int,
    marks: dict[str, bool],
    feedback: str,
    if_match: int | None,
) -> dict[str, Any]:
    """Grade a submission (or change its grade): the rules in this module's docstring. The
    grade is counted and the student told by mail (the mail commits with the grade, in the
    job outbox). Returns the grade."""
    async with db() as conn, conn.transaction():
        row = await _lock_for_grading(conn, assessor, submission_id, assignment_id, marks)
        current = await store.grade_version(conn, submission_id) or 0
        if if_match is not None and if_match != current:
            raise GradeChanged(f"the grade is at version {current}, not {if_match}; read it again")
        given = await store.put_grade(
            conn,
            submission_id,
            assessor_id=assessor["id"],
            criteria=marks,
            overall=grading.overall(marks),
            feedback=feedback,
        )
        facts = {k: row[k] for k in ("email", "full_name", "title", "unit_code")}
        notice = notices.grade_released(given, facts, links)
        await outbox.record(conn, notice)
    metrics.grades.labels(given["overall"]).inc()
    await outbox.publish(db, jobs, [notice])
    return given


async def _lock_for_grading(
    conn: Conn,
    assessor: dict[str, Any],
    submission_id: int,
    assignment_id: int,
    marks: dict[str, bool],
) -> Any:
    """Lock the assignment, then the submission (the lock order of every transaction here,
    so that none can deadlock another), after checking the submission is the assignment's,
    the caller assesses it and the marks fit its criteria. Returns the submission's row."""
    actual = await store.assignment_of(conn, submission_id)
    if actual is None:
        raise NotFound(f"no submission has id {submission_id}")
    if actual != assignment_id:
        raise WrongAssignment(
            f"submission {submission_id} is for assignment {actual}, not {assignment_id}"
        )
    assignment = await assignments_store.lock_for_grading(conn, assignment_id, assessor["id"])
    if assignment is None:
        raise NotFound(f"no assignment has id {assignment_id}")
    if not assignment["assesses"]:
        raise NotAssessor(f"you do not assess assignment {assignment_id}")
    check_marks(assignment["codes"], marks)
    row = await store.lock_for_grading(conn, submission_id)
    if row is None:
        raise NotFound(f"no submission has id {submission_id}")
    return row


async def export(
    *, db: Connect, user: dict[str, Any], assignment_id: int
) -> tuple[list[str], AsyncIterator[list[Any]]]:
    """The CSV header for the assignment's grades and its rows, after checking the caller
    may see them (the assignment's assessors and admins)."""
    async with db() as conn:
        if not await store.assignment_exists(conn, assignment_id):
            raise NotFound(f"no assignment has id {assignment_id}")
        if user["role"] != "admin" and not await assignments_store.assesses(
            conn, assignment_id, user["id"]
        ):
            raise NotAssessor(f"you do not assess assignment {assignment_id}")
        codes = sorted(await store.criteria_of(conn, assignment_id), key=grading.sort_key)
    header = [
        "submission_id", "student_id", "student_name", "student_email", "submitted_at",
        "late", "resubmissions", "overall", *codes, "feedback", "assessor", "graded_at",
        "grade_version", "similarity_flags",
    ]  # fmt: skip

    async def rows() -> AsyncIterator[list[Any]]:
        async with db() as conn, conn.transaction():
            async for r in store.export_rows(conn, assignment_id):
                marks = store.marks(r["criteria"])
                yield [
                    r["id"], r["student_id"], r["full_name"], r["email"],
                    r["submitted_at"].isoformat(), "yes" if r["late"] else "no",
                    r["resubmissions"], r["overall"] or "",
                    *(_mark(marks.get(code)) for code in codes),
                    r["feedback"] or "", r["assessor_name"] or "",
                    r["updated_at"].isoformat() if r["updated_at"] else "",
                    r["version"] or "", r["flags"],
                ]  # fmt: skip

    return header, rows()


def _mark(value: bool | None) -> str:
    return "" if value is None else ("achieved" if value else "not achieved")


async def check_similarity(
    *, db: Connect, submission_id: int, resubmissions: int, threshold: float, min_words: int
) -> dict[str, Any]:
    """Compare the submission's answer with the others to its assignment and record the
    pairs at or over `threshold` in place of its earlier flags. A check of an answer that
    has been resubmitted since records nothing: the resubmission's own check follows."""
    async with db() as conn:
        answer, others = await store.answers(conn, submission_id)
    if answer is None:
        return {"skipped": "the submission was deleted"}
    result = await asyncio.to_thread(
        similarity.alike, answer, others, threshold=threshold, min_words=min_words
    )
    async with db() as conn, conn.transaction():
        now = await conn.fetchval(
            "SELECT resubmissions FROM submissions WHERE id = $1 FOR NO KEY UPDATE", submission_id
        )
        if now != resubmissions:
            return {"skipped": "resubmitted since; its own check follows"}
        await store.replace_flags(conn, submission_id, result.pairs)
    return {
        "compared": result.compared,
        "flagged": [{"submission_id": o, "score": s} for o, s in result.pairs],
        "too_short": result.skipped,
    }


async def flagged_pairs(
    *, db: Connect, assignment_id: int | None, limit: int
) -> list[dict[str, Any]]:
    """Pairs of submissions flagged as alike (of one assignment, or all), most alike first,
    with both students' addresses: for review."""
    async with db() as conn:
        rows = await store.flagged_pairs(conn, assignment_id, limit)
    return [
        {**r, "score": round(float(r["score"]), 4), "checked_at": r["checked_at"].isoformat()}
        for r in rows
    ]


async def recheck(
    *, db: Connect, jobs: Jobs, assignment_id: int | None, tick: Callable[[str], None]
) -> int:
    """Queue a similarity check of every submission (of one assignment) again; how many.
    `tick` hears each submission's id as its check is queued."""
    async with db() as conn:
        found = await store.versions(conn, assignment_id)
    stamp = int(time.time())  # a new key: checks done before are not "already done"
    for submission_id, resubmissions in found:
        await jobs.enqueue(
            "check_similarity", key=f"similarity:{submission_id}:{resubmissions}:recheck-{stamp}",
            submission_id=submission_id, resubmissions=resubmissions,
        )  # fmt: skip
        tick(str(submission_id))
    return len(found)
