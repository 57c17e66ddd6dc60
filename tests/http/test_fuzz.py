"""Schemathesis over the whole OpenAPI document the server serves, with positive and negative
data, anonymous and as each role: no request may get a server error (the security audit).

The app serves on loopback TCP in the test's event loop while schemathesis, which sends with
`requests`, runs in a thread. Every operation is fuzzed as each of four identities, a test
each (so that pytest-xdist spreads them over the cores), each on a server of its own with
freshly made accounts and objects (a unit, an assignment with criteria and an assessor, a
submission with an uploaded file) whose ids are path parameters half the time, so routes
reach real rows and not only 404. Nothing is left out: the operator routes (/metrics,
/api/v1/ops/*) are fuzzed as every identity too, and refuse them all. Every schemathesis
check runs, so any answer the document does not describe fails the test too, with a
reproduction of each distinct failure (docs/api-contract.md). Not marked `embedded`: CI runs
it in the pass on the machine's servers only.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import hypothesis
import pytest
import requests
import schemathesis
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from server.app import create_app
from server.config.settings import Settings
from server.domain.fields import PRINTABLE_FORMAT, REFUSED_CATEGORIES
from server.http.ratelimit import POLICY_ATTR
from server.observability.logging import configure_logging
from tests.support.accounts import CHEAP, PASSWORD, make_admin
from tests.support.mail import Inbox
from tests.support.uploads import MULTIPART, multipart, part

# One identity over the whole document takes about 30 s on two cores busy with another test
# run; pyproject's 120 s is for ordinary tests.
pytestmark = [pytest.mark.timeout(300), pytest.mark.slow]

ROOT = "root@example.org"  # the admin that seeds; never an identity under test
IDENTITIES = ("anonymous", "student", "assessor", "admin")
MAX_EXAMPLES = int(os.environ.get("BTEC_TEST_FUZZ_EXAMPLES", "15"))  # per operation and mode
# Every schemathesis check besides server errors (the spec against the server), unless
# BTEC_TEST_FUZZ_ALL_CHECKS=0 (server errors only: while finding one). The full run
# (docs/api-contract.md): `BTEC_TEST_FUZZ_EXAMPLES=100 pytest -s tests/http/test_fuzz.py`.
ALL_CHECKS = os.environ.get("BTEC_TEST_FUZZ_ALL_CHECKS", "1") != "0"
MODES = (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
SETTINGS = hypothesis.settings(
    max_examples=MAX_EXAMPLES,
    derandomize=True,  # the same cases on every run: a failure reproduces
    database=None,
    deadline=None,
    phases=[hypothesis.Phase.explicit, hypothesis.Phase.generate],  # no shrinking
    suppress_health_check=list(hypothesis.HealthCheck),
)
# Operations that end the caller's sessions when they succeed (or, for a password change,
# sign-ins with the old password): each case gets a sign-in of its own, and they run last,
# so the identity's token stays valid for every other operation.
SESSION_ENDING = frozenset({
    "POST /api/v1/auth/logout",
    "POST /api/v1/auth/logout-all",
    "POST /api/v1/auth/password/change",
})  # fmt: skip
# An admin changing or deactivating an account by id: positive cases name the run's spare
# account only, so the seeding admin and the identity under test stay usable. Negative
# cases are refused before they change anything (a bad id, body or token) and keep
# generated ids. The admin's run comes last besides, so nothing it breaks is used again.
ACCOUNT_CHANGES = frozenset({"PATCH /api/v1/users/{id}", "POST /api/v1/users/{id}/deactivate"})
CRITERIA = [
    {"code": "P1", "description": "Explain the principles of OOP."},
    {"code": "M1", "description": "Analyse how the design supports change."},
    {"code": "D1", "description": "Evaluate the design against alternatives."},
]


@pytest.fixture
def errors_logged() -> Iterator[io.StringIO]:
    """The server's warnings and errors during the test (JSON lines), to name exceptions:
    conftest's `logs` keeps DEBUG, too much for the 7,000 requests sent here."""
    buf = io.StringIO()
    configure_logging("WARNING", "json", stream=buf)
    try:
        yield buf
    finally:
        configure_logging("INFO", "json")


@pytest.fixture
def fuzz_settings(make_settings: Callable[..., Settings], inbox: Inbox) -> Settings:
    """Cheap hashing, mail to `inbox`, and rate limits far above what the fuzzing sends: the
    limiter still decides every request, but 429s would hide the routes behind it."""
    roomy = "1000000/60:open"
    policies = ",".join(f"{name}={roomy}" for name in _policy_names(make_settings()))
    return make_settings(**CHEAP, smtp_url=SecretStr(inbox.url), ratelimit_default=roomy,
                         ratelimit_policies=policies)  # fmt: skip


def _policy_names(settings: Settings) -> set[str]:
    """The named rate-limit policies the routes declare."""
    routes = create_app(settings).router.routes()
    return {getattr(r.handler, POLICY_ATTR).name for r in routes if hasattr(r.handler, POLICY_ATTR)}


# -- Requests the harness makes (checked, never fuzzed) ----------------------------------


class Api:
    """The server under test as the harness calls it: each answer must have its status."""

    def __init__(self, base: str, headers: dict[str, str] | None = None) -> None:
        self.base, self.headers = base, headers or {}
        self.http = requests.Session()

    def call(self, method: str, path: str, status: int, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        answer = self.http.request(method, self.base + path, headers=headers, timeout=30, **kwargs)
        assert answer.status_code == status, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json() if answer.content else None


def sign_in(base: str, email: str) -> dict[str, str] | None:
    """Bearer headers of a fresh sign-in, or None when the account cannot sign in."""
    body = {"email": email, "password": PASSWORD}
    answer = requests.post(f"{base}/api/v1/auth/login", json=body, timeout=30)
    if answer.status_code != 200:
        return None
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


@dataclass
class Identity:
    """Who a run sends as: no one, or an account of a role that the root admin replaces when
    the fuzzing has made it unusable (deactivated, or its password changed)."""

    name: str
    root: Api
    run: int
    email: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    made: int = 0

    def account(self) -> int:
        """Make a new account of this identity's role and sign it in; its id."""
        self.made += 1
        self.email = f"{self.name}-{self.run}-{self.made}@example.org"
        body = {"email": self.email, "full_name": f"Fuzz {self.name}", "role": self.name,
                "password": PASSWORD}  # fmt: skip
        made = self.root.call("POST", "/api/v1/users", 201, json=body)
        self.headers = sign_in(self.root.base, self.email) or {}
        return int(made["id"])

    def fresh(self) -> dict[str, str]:
        """Headers of a new session: for operations that end sessions."""
        if self.name == "anonymous":
            return {}
        found = sign_in(self.root.base, self.email)
        if found is None:
            self.account()
            return self.headers
        return found

    def ensure(self) -> None:
        """Sign in again if an earlier operation ended the session."""
        if self.name == "anonymous":
            return
        probe = requests.get(f"{self.root.base}/api/v1/users/me", headers=self.headers, timeout=30)
        if probe.status_code != 200:
            self.headers = self.fresh()


@dataclass
class World:
    """What one run seeds: its identities (by role) and the ids of the rows they reach."""

    people: dict[str, Identity]
    ids: dict[str, Any]  # path prefix -> an id that exists


def seed(root: Api, run: int) -> World:
    """Fresh accounts of each role, a spare account, a unit, an assignment the assessor
    assesses, and the student's submission with an uploaded file."""
    people = {role: Identity(role, root, run) for role in ("student", "assessor", "admin")}
    ids = {role: person.account() for role, person in people.items()}
    spare = Identity("student", root, run + 100)
    unit = {"code": f"FUZZ/{run}", "title": "Programming", "level": 3, "credits": 60}
    unit_id = root.call("POST", "/api/v1/units", 201, json=unit)["id"]
    made = root.call("POST", "/api/v1/assignments", 201, json={
        "unit_id": unit_id, "title": "Assignment 1", "brief": "Write a report.",
        "opens_at": "2020-01-01T00:00:00+00:00", "deadline": "2099-01-01T00:00:00+00:00",
        "criteria": CRITERIA, "assessor_ids": [ids["assessor"]],
    })  # fmt: skip
    student = Api(root.base, people["student"].headers)
    upload = multipart(part("evidence.txt", b"my evidence\n"))
    file = student.call("POST", "/api/v1/files", 201, data=upload,
                        headers={"Content-Type": MULTIPART})  # fmt: skip
    submission = student.call("PUT", f"/api/v1/assignments/{made['id']}/submission", 201,
                              json={"answer": "My report.", "file_ids": [file["id"]]})  # fmt: skip
    return World(people, {
        "/api/v1/units/": unit_id, "/api/v1/assignments/": made["id"],
        "/api/v1/submissions/": submission["id"], "/api/v1/files/": file["id"],
        "/api/v1/users/": spare.account(),
    })  # fmt: skip


# -- Fuzzing ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class ServerError:
    """One distinct server error: where, what the server logged, and how to send it again."""

    method: str
    path: str
    status: int | str
    logged: str
    who: str
    curl: str

    def key(self) -> tuple[str, str, int | str, str]:
        return self.method, self.path, self.status, self.logged

    def __str__(self) -> str:
        return (f"{self.method} {self.path} -> {self.status} ({self.logged}) as {self.who}\n"
                f"    {self.curl}")  # fmt: skip


@dataclass
class Run:
    """One identity's pass over the document: cases sent, server errors, ungenerated."""

    who: str
    cases: int = 0
    errors: list[ServerError] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    statuses: Counter[str] = field(default_factory=Counter)  # by class: 2xx, 4xx...
    # With BTEC_TEST_FUZZ_ALL_CHECKS: every other check's failures, by check and operation.
    conformance: Counter[str] = field(default_factory=Counter)
    reproductions: dict[str, str] = field(default_factory=dict)  # the first case of each
    accounts: int = 0  # the identity's accounts: more than one if the fuzzing broke one

    def __str__(self) -> str:
        statuses = " ".join(f"{k} {v}" for k, v in sorted(self.statuses.items()))
        return f"{self.who}: {self.cases} cases ({statuses}), {self.accounts} account(s)"


# The document's own string format for text `printable` checks (server.domain.fields), which
# its pattern states over the BMP only: what schemathesis draws for it, from the same rule.
schemathesis.openapi.format(
    PRINTABLE_FORMAT, st.text(st.characters(exclude_categories=REFUSED_CATEGORIES))
)


def load_schema(base: str) -> Any:
    """The document as the running server serves it, with each operation's checks configured
    (`checks_config`). schemathesis 4.32 loads it as it is (it ignores the Swagger-2
    `produces` keys apigami adds)."""
    document = requests.get(f"{base}/api/docs/openapi.json", timeout=30).json()
    config = schemathesis.config.SchemathesisConfig.from_dict(checks_config(document))
    return schemathesis.openapi.from_dict(document, config=config)


# The problems that say a request is malformed: a schema-valid one must never get them. Every
# other problem an operation documents is a refusal that no schema can state (an unknown or
# expired token, a wrong current password, an address or a code already taken, a file whose
# content is not of an accepted type, an assignment not open yet, a body over the size limit,
# which a valid one can be once its text is JSON-escaped): positive_data_acceptance takes
# its status as a right answer to valid data, on that operation only.
MALFORMED = frozenset({
    "validation_failed", "malformed_body", "body_too_complex", "unsupported_media_type",
    "malformed_upload", "request_timeout",
})  # fmt: skip
# Operations whose 422 `validation_failed` also states rules across fields, or across the
# items of a list, that OpenAPI 3.0 cannot: an assignment's deadline after its opening (the
# stored one, for a change), criteria codes not repeated and at least one Pass criterion.
ACROSS_FIELDS = frozenset({"createAssignment", "updateAssignment"})


def checks_config(document: dict[str, Any]) -> dict[str, Any]:
    """schemathesis configuration: per operation, the statuses positive_data_acceptance
    takes besides its defaults (the documented refusals, see MALFORMED) and those
    negative_data_rejection takes besides its defaults (413, where documented)."""
    operations = []
    for item in document["paths"].values():
        for op in item.values():
            if not isinstance(op, dict) or "operationId" not in op:
                continue
            refusals = sorted(_refusals(op) | ({"422"} if op["operationId"] in ACROSS_FIELDS
                                               else set()))  # fmt: skip
            too_large = ["413"] if "413" in op["responses"] else []
            operations.append({
                "include-operation-id": op["operationId"],
                "checks": {
                    "positive_data_acceptance": {"expected-statuses": [*POSITIVE, *refusals]},
                    "negative_data_rejection": {"expected-statuses": [*NEGATIVE, *too_large]},
                },
            })  # fmt: skip
    return {"operations": operations}


POSITIVE = ["2xx", "3xx", "401", "403", "404", "409", "429", "5xx"]  # schemathesis's defaults
NEGATIVE = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]


def _refusals(op: dict[str, Any]) -> set[str]:
    """The statuses of an operation's documented problems that are not MALFORMED."""
    found = set()
    for status, answer in op["responses"].items():
        problem = answer.get("content", {}).get("application/problem+json", {})
        if set(problem.get("examples", {})) - MALFORMED:
            found.add(status)
    return found


def operations(schema: Any) -> list[Any]:
    """Every operation, those that end sessions last."""
    found = [result.ok() for result in schema.get_all_operations()]
    return sorted(found, key=lambda op: op.label in SESSION_ENDING)


def strategy(op: Any, mode: GenerationMode, world: World) -> Any:
    """Generated cases, and half of them (where the path has an id) with an id that exists."""
    generated = op.as_strategy(generation_mode=mode)
    pinned = next((v for k, v in world.ids.items() if op.path.startswith(k + "{")), None)
    if pinned is None or mode is GenerationMode.NEGATIVE:
        return generated
    name = op.path.split("{", 1)[1].split("}", 1)[0]
    existing = op.as_strategy(generation_mode=mode, path_parameters={name: pinned})
    return existing if op.label in ACCOUNT_CHANGES else st.one_of(generated, existing)


def fuzz(base: str, schema: Any, world: World, who: str, logged: io.StringIO) -> Run:
    """Every operation, positive and negative, as `who`."""
    run = Run(who)
    identity = world.people.get(who) or Identity("anonymous", Api(base), 0)
    with requests.Session() as session:
        for op in operations(schema):
            identity.ensure()
            for mode in MODES:
                send = _sender(base, op, identity, run, session, logged)
                try:
                    SETTINGS(hypothesis.given(strategy(op, mode, world))(send))()
                except Unsatisfiable:  # nothing to negate: a route without parameters
                    run.skipped.append(f"{op.label} {mode.value}")
    run.accounts = identity.made
    return run


def _sender(
    base: str, op: Any, identity: Identity, run: Run, session: requests.Session,
    logged: io.StringIO,
) -> Callable[[Any], None]:  # fmt: skip
    """The body of one operation's hypothesis test: send a case and record a server error
    instead of raising, so every case runs and every error is listed."""

    def send(case: Any) -> None:
        headers = identity.fresh() if op.label in SESSION_ENDING else identity.headers
        run.cases += 1
        try:
            response = case.call(base_url=base, session=session, headers=headers, timeout=30)
        except requests.RequestException as exc:
            run.errors.append(_error(case, headers, type(exc).__name__, "no answer", run.who, base))
            return
        run.statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 500:
            try:
                case.validate_response(response, checks=[not_a_server_error], headers=headers)
            except schemathesis.errors.FailureGroup:
                what = _logged_for(logged, response)
                run.errors.append(_error(case, headers, response.status_code, what, run.who, base))
        if ALL_CHECKS:
            try:
                case.validate_response(response, headers=headers)
            except schemathesis.errors.FailureGroup as group:
                for failure in group.exceptions:
                    key = f"{failure.title} | {op.label}"
                    run.conformance[key] += 1
                    if key not in run.reproductions:
                        curl = case.as_curl_command(headers=headers, base_url=base)
                        run.reproductions[key] = (
                            f"as {run.who}: {response.status_code} {response.text[:300]}\n"
                            f"    {curl[:600]}"
                        )

    return send


def _error(
    case: Any, headers: dict[str, str], status: int | str, logged: str, who: str, base: str
) -> ServerError:
    curl = case.as_curl_command(headers=headers, base_url=base)  # the token shows as [Filtered]
    return ServerError(case.method.upper(), case.path, status, logged, who, curl)


def _logged_for(logged: io.StringIO, response: Any) -> str:
    """What the server logged, with the type of exception, for this answer's request id."""
    request_id = (response.headers.get("x-request-id") or [None])[0]
    if request_id is None:
        return "no X-Request-ID in the answer"
    for line in logged.getvalue().splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("request_id") == request_id and "error_type" in entry:
            return f"{entry['error_type']} at {entry.get('where')}"
    return "no exception logged"


def distinct(runs: list[Run]) -> list[ServerError]:
    """One of each server error (method, path, status and exception), the first seen."""
    seen: dict[tuple[str, str, int | str, str], ServerError] = {}
    for run in runs:
        for error in run.errors:
            seen.setdefault(error.key(), error)
    return list(seen.values())


def fuzz_as(base: str, who: str, logged: io.StringIO) -> Run:
    """One identity, on a world of its own."""
    root = Api(base, sign_in(base, ROOT))
    return fuzz(base, load_schema(base), seed(root, IDENTITIES.index(who)), who, logged)


@pytest.mark.parametrize("who", IDENTITIES)
async def test_no_request_gets_a_server_error(
    who: str,
    aiohttp_server: Callable[..., Any],
    acli: Callable[..., Any],
    fuzz_settings: Settings,
    errors_logged: io.StringIO,
) -> None:
    server = await aiohttp_server(create_app(fuzz_settings, worker=True))
    await make_admin(acli, fuzz_settings, ROOT)
    started = time.monotonic()
    base = str(server.make_url("")).rstrip("/")
    runs = [await asyncio.to_thread(fuzz_as, base, who, errors_logged)]
    took = time.monotonic() - started
    summary = "; ".join(map(str, runs)) + f"; in {took:.0f} s"
    skipped = sorted({s for r in runs for s in r.skipped})
    print(summary, "Not generated: " + ", ".join(skipped), sep="\n")
    if ALL_CHECKS:
        found = Counter[str]()
        for run in runs:
            found.update(run.conformance)
        print(f"{len(found)} distinct conformance failures:")
        print("\n".join(f"{n:5} {what}" for what, n in found.most_common()))
        repro: dict[str, str] = {}
        for run in runs:
            for k, v in run.reproductions.items():
                repro.setdefault(k, v)
        print("\n".join(f"{k}\n  {v}" for k, v in repro.items()))
    if errors := distinct(runs):
        listed = "\n".join(map(str, errors))
        pytest.fail(f"{len(errors)} distinct server errors ({summary}):\n{listed}", pytrace=False)
    conformance = sorted({k for run in runs for k in run.reproductions})
    if conformance:
        pytest.fail(f"{len(conformance)} distinct answers the document does not describe "
                    f"({summary}):\n" + "\n".join(conformance), pytrace=False)  # fmt: skip
