"""Assignments: the cached catalogue, and changes by admins and the assessors named on them.

Who may do what:
- anyone signed in reads assignments (students browse them to submit);
- admins and assessors create them; the creating assessor is named on it unless the
  request names its assessors itself;
- admins, and the assessors named on an assignment, change and delete it;
- only the assessors named on an assignment see its submissions and grade them (an admin
  who names themselves on it may too).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from server.cache.core import Cache, EncodedJSON, cached
from server.domain.errors import (
    AssessorRequired,
    AssignmentInUse,
    CriteriaLocked,
    FieldError,
    NotAssessor,
    NotFound,
    ValidationFailed,
    field_error,
)
from server.services import catalogue as catalogue_read
from server.services.units import ASSIGNMENTS_TAG
from server.store import Conn, Connect
from server.store import assignments as store
from server.store import units as units_store

TTL = 300.0  # changes are rare and invalidate by tag at once
UNIT_GONE = field_error("unit_id", "No unit has this id.", "not_found")  # a race with its deletion


@cached("assignments.page", ttl=TTL, key="{unit_id}:{q}:{limit}:{offset}", tags=(ASSIGNMENTS_TAG,))
async def catalogue(
    *, db: Connect, cache: Cache | None, unit_id: int | None, q: str | None, limit: int, offset: int
) -> EncodedJSON:
    """One page of assignments by deadline, as the JSON document the API serves."""
    return await catalogue_read.listed(
        db, store.page, unit_id=unit_id, q=q, limit=limit, offset=offset
    )


@cached("assignments.one", ttl=TTL, key="{assignment_id}", tags=(ASSIGNMENTS_TAG,))
async def assignment(*, db: Connect, cache: Cache | None, assignment_id: int) -> EncodedJSON:
    """One assignment with its criteria and assessors, as the JSON document the API serves."""
    return await catalogue_read.one(db, store.by_id, "assignment", assignment_id)


async def _invalidate(cache: Cache | None) -> None:
    if cache is not None:
        await cache.invalidate(ASSIGNMENTS_TAG)


async def _check_refs(conn: Conn, data: dict[str, Any]) -> None:
    """The unit and the assessors a body names exist: 422 naming the field if not."""
    errors: list[FieldError] = []
    if "unit_id" in data and await units_store.by_id(conn, data["unit_id"]) is None:
        errors.append(field_error("unit_id", f"No unit has id {data['unit_id']}.", "not_found"))
    if data.get("assessor_ids"):
        wrong = set(await store.not_assessors(conn, data["assessor_ids"]))
        errors += [
            field_error(
                ("assessor_ids", i), "No active assessor or admin has this id.", "not_found"
            )
            for i, uid in enumerate(data["assessor_ids"])
            if uid in wrong
        ]
    if errors:
        raise ValidationFailed(errors=errors)


async def create(
    *, db: Connect, cache: Cache | None, user: dict[str, Any], data: dict[str, Any]
) -> dict[str, Any]:
    """A new assignment with its criteria and assessors, in one transaction."""
    assessors = data.get("assessor_ids")
    if assessors is None:
        assessors = [user["id"]] if user["role"] == "assessor" else []
    if not assessors:
        raise AssessorRequired(
            "name its assessors in assessor_ids: nobody could grade it",
            errors=[field_error("assessor_ids", "Name at least one assessor.", "required")],
        )
    async with db() as conn, conn.transaction():
        await _check_refs(conn, {**data, "assessor_ids": assessors})
        try:
            new_id = await store.insert(conn, data, user["id"])
        except asyncpg.ForeignKeyViolationError:  # the unit went meanwhile
            raise ValidationFailed(errors=[UNIT_GONE]) from None
        await store.set_criteria(conn, new_id, data["criteria"])
        await store.set_assessors(conn, new_id, assessors)
        made = await store.by_id(conn, new_id)
    await _invalidate(cache)
    if made is None:
        raise RuntimeError(f"assignment {new_id} is gone right after its insert")
    return made


async def may_manage(conn: Conn, user: dict[str, Any], assignment_id: int) -> None:
    """Admins, and assessors named on the assignment; 403 `not_assessor` for others."""
    if user["role"] == "admin":
        return
    if user["role"] != "assessor" or not await store.assesses(conn, assignment_id, user["id"]):
        raise NotAssessor(f"you do not assess assignment {assignment_id}")


async def update(
    *,
    db: Connect,
    cache: Cache | None,
    user: dict[str, Any],
    assignment_id: int,
    changes: dict[str, Any],
) -> dict[str, Any]:
    """Change an assignment. Its criteria are fixed once any submission is graded (409
    `criteria_locked`); a new deadline re-flags each submission as late or not."""
    async with db() as conn, conn.transaction():
        current = await store.lock(conn, assignment_id)
        if current is None:
            raise NotFound(f"no assignment has id {assignment_id}")
        await may_manage(conn, user, assignment_id)
        opens = changes.get("opens_at", current["opens_at"])
        deadline = changes.get("deadline", current["deadline"])
        if deadline <= opens:
            raise ValidationFailed(errors=[field_error("deadline", "Must be after opens_at.")])
        await _check_refs(conn, changes)
        if "criteria" in changes:
            if count := await store.graded(conn, assignment_id):
                raise CriteriaLocked(f"assignment {assignment_id} has {count} graded submissions")
            await store.set_criteria(conn, assignment_id, changes["criteria"])
        if "assessor_ids" in changes:
            if not changes["assessor_ids"]:
                raise AssessorRequired(
                    "an assignment keeps at least one assessor",
                    errors=[field_error("assessor_ids", "Name at least one assessor.", "required")],
                )
            await store.set_assessors(conn, assignment_id, changes["assessor_ids"])
        try:
            await store.update(conn, assignment_id, changes)
        except asyncpg.ForeignKeyViolationError:  # the unit went meanwhile
            raise ValidationFailed(errors=[UNIT_GONE]) from None
        if "deadline" in changes:
            await store.relate_late(conn, assignment_id)
        changed = await store.by_id(conn, assignment_id)
    await _invalidate(cache)
    if changed is None:
        raise RuntimeError(f"assignment {assignment_id} is gone right after its update")
    return changed


async def delete(
    *, db: Connect, cache: Cache | None, user: dict[str, Any], assignment_id: int
) -> None:
    """Remove an assignment with no submissions; 409 `assignment_in_use` once it has any."""
    async with db() as conn, conn.transaction():
        if await store.lock(conn, assignment_id) is None:
            raise NotFound(f"no assignment has id {assignment_id}")
        await may_manage(conn, user, assignment_id)
        if count := await store.submitted(conn, assignment_id):
            raise AssignmentInUse(
                f"assignment {assignment_id} has {count} submissions; it cannot be deleted"
            )
        await store.delete(conn, assignment_id)
    await _invalidate(cache)
