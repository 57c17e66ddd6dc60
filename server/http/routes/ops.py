"""Operator endpoints: send a test message through the job queue, and read any job's state."""

from __future__ import annotations

import re
import uuid

from aiohttp import web
from aiohttp_apigami import request_schema
from marshmallow import Schema, fields, validate

from server.domain.errors import NotFound, ValidationFailed, field_error
from server.domain.fields import MailAddress
from server.http import deps
from server.http.guard import operator
from server.http.openapi import (
    json_response,
    operation,
)
from server.http.ratelimit import limited
from server.jobs.admin import describe
from server.services import notices

routes = web.RouteTableDef()
IDEMPOTENCY_KEY = re.compile(r"[A-Za-z0-9._-]{1,100}")


class MailTestSchema(Schema):
    to = MailAddress(required=True, metadata={"example": "assessor@college.example.ac.uk"})
    note = fields.Str(
        load_default="",
        validate=validate.Length(max=500),
        metadata={"example": "checking the relay after the DNS change"},
    )


def _job_key(request: web.Request) -> str:
    given = request.headers.get("Idempotency-Key")
    if given is None:
        return f"mail-test:{uuid.uuid4().hex}"
    if not IDEMPOTENCY_KEY.fullmatch(given):
        raise ValidationFailed(
            errors=[field_error("Idempotency-Key", "1-100 of A-Z a-z 0-9 . _ -", location="header")]
        )
    return f"mail-test:{given}"


JOB_EXAMPLE = {
    "id": "mail-test:3f2a9c1e",
    "task": "send_email",
    "status": "complete",
    "attempts": 1,
    "retries": 6,
    "queued_at": "2026-11-27T16:00:00+00:00",
    "started_at": "2026-11-27T16:00:00+00:00",
    "completed_at": "2026-11-27T16:00:01+00:00",
    "result": {"to": "assessor@college.example.ac.uk", "smtp_reply": "250 OK"},
    "error": None,
}


@operation(
    "operations",
    ok={
        202: json_response(
            "Queued",
            {"job_id": "mail-test:3f2a9c1e", "status_url": "/api/v1/ops/jobs/mail-test:3f2a9c1e"},
        )
    },
    problems="payload_too_large queue_unavailable ratelimit_unavailable",
    parameters=[
        {
            "in": "header",
            "name": "Idempotency-Key",
            "schema": {"type": "string", "pattern": "^[A-Za-z0-9._-]{1,100}$"},
            "required": False,
        }
    ],
)
@request_schema(MailTestSchema, example={"to": "assessor@college.example.ac.uk", "note": "hi"})
@limited("ops_mail", "20/3600:closed")
@operator("ops_token")
@routes.post("/api/v1/ops/mail/test", name="ops_mail_test")
async def mail_test(request: web.Request) -> web.Response:
    """Send a test message through the job queue and SMTP

    Queues a `send_email` job and answers 202 at once; follow `status_url`. An `Idempotency-Key`
    header makes retries of this request send one message. Needs BTEC_OPS_TOKEN as a bearer token,
    wherever the caller is.
    """
    body, key = deps.body(request), _job_key(request)
    await notices.test_message(
        deps.jobs(request), key=key, to=body["to"], note=body["note"],
        requested_by=request.remote or "an operator",
        public_url=deps.settings(request).base_url,
    )  # fmt: skip
    status_url = str(request.app.router["ops_job"].url_for(job_id=key))
    return web.json_response({"job_id": key, "status_url": status_url}, status=202)


@operation(
    "operations",
    ok={200: json_response("The job", JOB_EXAMPLE)},
    problems="not_found queue_unavailable",
)
@operator("ops_token")
@routes.get("/api/v1/ops/jobs/{job_id}", name="ops_job")
async def job_status(request: web.Request) -> web.Response:
    """A job's status, attempts, result or error

    Any job by id: queued, active, complete, failed (with the error's last line), aborted. Finished
    jobs are kept for three days.
    """
    job = await deps.jobs(request).job(request.match_info["job_id"])
    if job is None:
        raise NotFound("no such job (finished jobs are kept for three days)")
    return web.json_response(describe(job))
