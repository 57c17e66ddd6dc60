"""Seed a running btec with an assessment workload over its HTTP API, for the k6 scenarios
that need data (`browse`, `mixed`, ...): shared by `btecctl perf run` and
`perf/seed_assessment.py`.

Units, assignments with P/M/D criteria and the assessors named on them, assessor and
student accounts (made verified by an admin, then signed in), and existing submissions, a
share of them graded. The document it returns is what k6 reads (`open()` + SharedArray in
`perf/scenarios/lib/assessment.js`): the units with their assignment ids, each assignment's
criteria and assessors, and the students' and assessors' ids and access tokens.

Every sign-in comes from one address, so the server must let them through: SERVER_ENV is what
a server started for a seed gets (cheap argon2id, limits that never bite, hour-long tokens);
a 429 stops the seed with that hint. The seed signs in as an admin with an email and password,
or uses an admin's access token as it is (a server at a URL). Unit codes and emails carry a
random tag, `perf-<6 hex digits>` (server/store/loadtest.py finds it), so one server can be
seeded again and `btecctl perf cleanup` removes what a seed made.
"""

from __future__ import annotations

import asyncio
import json
import random
import secrets
import subprocess  # nosec B404 # runs btecctl itself, an argv list without a shell
import sys
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import aiohttp

ADMIN_EMAIL = "perf-admin@example.org"
# Throwaway accounts of a scratch server.
PASSWORD = "a long perf passphrase"  # noqa: S105  # nosec B105 # accounts of a scratch server
CHEAP = {"BTEC_ARGON2_TIME_COST": "1", "BTEC_ARGON2_MEMORY_KIB": "8192",
         "BTEC_ARGON2_PARALLELISM": "1"}  # fmt: skip
# What the scripts that start a server for the seed give it: cheap argon2id, sign-ins and
# requests never limited (the limiter still runs), hour-long access tokens, and the embedded
# mail catcher on a free port (grade notices are delivered to it, in the server's process).
# The limits a load from one address meets, that never bite (the limiter still runs):
# requests, sign-ins, refreshes and uploads.
UNLIMITED = "1000000000/1"
LIMITS_OFF = {
    "BTEC_RATELIMIT_DEFAULT": UNLIMITED,
    "BTEC_RATELIMIT_POLICIES": ",".join(
        f"{name}={UNLIMITED}:closed" for name in ("auth_login", "auth_refresh", "files_upload")
    ),
}
SERVER_ENV = {
    **CHEAP,
    **LIMITS_OFF,
    "BTEC_ACCESS_TOKEN_SECONDS": str(60 * 60),  # seeded tokens outlive the run
    "BTEC_MAIL_CATCHER_PORT": "0",
}
HINT = (
    "the server refused with 429: start it with "
    "BTEC_RATELIMIT_POLICIES=auth_login=1000000000/1:closed and "
    "BTEC_RATELIMIT_DEFAULT=1000000000/1 (or BTEC_RATELIMIT_ENABLED=false)"
)
ADMIN_HINT = (
    "give an admin's access token (an admin made with `btecctl users create-admin`, signed in "
    "with POST /api/v1/auth/login); it must outlast the seeding"
)
PROSE = (
    "the program uses classes to model each part of the system and encapsulation keeps "
    "their state private while methods expose behaviour other objects rely on inheritance "
    "lets a subclass reuse and extend the design polymorphism means one interface serves "
    "many forms testing shows the code meets the requirements evaluation compares the "
    "chosen approach with alternatives such as procedural design data structures include "
    "lists dictionaries and queues algorithms sort and search efficiently the network "
    "layer sends packets between hosts security controls protect confidentiality integrity "
    "and availability a database stores records in tables linked by keys the report "
    "explains analyses and justifies each decision with evidence from the project log"
)
VOCABULARY = PROSE.split()
VERBS = {"P": "Explain", "M": "Analyse", "D": "Evaluate"}
T = TypeVar("T")


def essay(rng: random.Random, words: int = 300) -> str:
    """A few hundred words of coursework-like prose, in paragraphs of 60 words."""
    paragraphs = []
    for start in range(0, words, 60):
        chunk = [rng.choice(VOCABULARY) for _ in range(min(60, words - start))]
        paragraphs.append(" ".join(chunk).capitalize() + ".")
    return "\n\n".join(paragraphs)


def criteria(rng: random.Random) -> list[dict[str, str]]:
    """2-4 Pass, 1-2 Merit and, two times in three, one Distinction criterion."""
    bands = {"P": rng.randint(2, 4), "M": rng.randint(1, 2), "D": rng.choice((0, 1, 1))}
    return [
        {"code": f"{band}{n}", "description": f"{VERBS[band]} aspect {n} of the unit's topic."}
        for band, count in bands.items()
        for n in range(1, count + 1)
    ]


@dataclass
class Sizes:
    units: int = 5
    assignments: int = 20  # per unit
    assessors: int = 5
    students: int = 200
    submissions: int = 2  # per student, before the run
    graded: float = 0.25  # share of those submissions graded before the run
    assessors_per_assignment: int = 2


class SeedError(Exception):
    """The server refused a request: what it said."""


@dataclass(frozen=True)
class Admin:
    """How the seed acts as an admin: an access token, or an email and password to sign in."""

    email: str = ""
    password: str = ""
    token: str = ""

    async def sign_in(self, api: Api) -> str:
        if self.token:
            me = await api.call("GET", "/api/v1/users/me", self.token, admin=True)
            if me.get("role") != "admin":
                raise SeedError(f"the token is not an admin's: {ADMIN_HINT}")
            return self.token
        return await api.login(self.email, self.password)


def new_tag() -> str:
    return f"perf-{secrets.token_hex(3)}"


class Api:
    """JSON over one aiohttp session, at most `concurrency` requests in flight."""

    def __init__(self, http: aiohttp.ClientSession, base: str, concurrency: int) -> None:
        self.http = http
        self.base = base.rstrip("/")
        self.slots = asyncio.Semaphore(concurrency)

    async def call(
        self, method: str, path: str, token: str, body: Any = None, *, admin: bool = False
    ) -> Any:
        """One request; any status but 200 or 201 is a SeedError with what the server said
        (`admin`: the admin token's own check, whose 401 or 403 says what to do)."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        url = self.base + path
        async with self.slots, self.http.request(method, url, json=body, headers=headers) as r:
            text = await r.text()
        if r.status == 429:
            raise SeedError(f"{method} {path}: {HINT}")
        if admin and r.status in (401, 403):
            raise SeedError(f"the admin token was refused (HTTP {r.status}): {ADMIN_HINT}")
        if r.status not in (200, 201):
            raise SeedError(f"{method} {path}: HTTP {r.status}: {text[:500]}")
        return json.loads(text)

    async def login(self, email: str, password: str) -> str:
        found = await self.call(
            "POST", "/api/v1/auth/login", "", {"email": email, "password": password}
        )
        return str(found["access_token"])


async def gather(items: Iterable[Awaitable[T]]) -> list[T]:
    return list(await asyncio.gather(*items))


async def accounts(
    api: Api, admin: str, role: str, count: int, tag: str, password: str
) -> list[dict[str, Any]]:
    """`count` verified accounts of `role`, each with an access token."""

    async def one(i: int) -> dict[str, Any]:
        body = {"email": f"{role}{i}.{tag}@example.org", "full_name": f"Perf {role} {i}",
                "role": role, "password": password}  # fmt: skip
        user = await api.call("POST", "/api/v1/users", admin, body)
        return {"id": user["id"], "email": user["email"],
                "token": await api.login(user["email"], password)}  # fmt: skip

    return await gather(one(i) for i in range(1, count + 1))


def assignment_bodies(
    rng: random.Random, units: list[dict[str, Any]], assessor_ids: list[int], sizes: Sizes
) -> list[dict[str, Any]]:
    """Per unit, assignments open for 30 days with deadlines a day apart (the first two
    already passed: late work is taken, flagged), their assessors named in turn."""
    now = datetime.now(UTC).replace(microsecond=0)
    bodies = []
    for u, unit in enumerate(units):
        for k in range(sizes.assignments):
            first = u * sizes.assignments + k
            named = {assessor_ids[(first + j) % len(assessor_ids)]
                     for j in range(sizes.assessors_per_assignment)}  # fmt: skip
            bodies.append({
                "unit_id": unit["id"], "title": f"Assignment {k + 1}: {unit['title']}",
                "brief": essay(rng, 80), "opens_at": (now - timedelta(days=30)).isoformat(),
                "deadline": (now + timedelta(days=k - 1)).isoformat(), "criteria": criteria(rng),
                "assessor_ids": sorted(named),
            })  # fmt: skip
    return bodies


async def existing_work(
    api: Api, rng: random.Random, students: list[dict[str, Any]],
    assessors: list[dict[str, Any]], made: list[dict[str, Any]], sizes: Sizes,
) -> tuple[int, int]:  # fmt: skip
    """Each student submits to `sizes.submissions` assignments; the first assessor named on
    each assignment grades a `sizes.graded` share of them. Returns both counts."""
    pairs = [(s, a) for s in students for a in rng.sample(made, min(sizes.submissions, len(made)))]
    submitted = await gather(
        api.call("PUT", f"/api/v1/assignments/{a['id']}/submission", s["token"],
                 {"answer": essay(rng), "file_ids": []})
        for s, a in pairs
    )  # fmt: skip
    assignment = {a["id"]: a for a in made}
    token_of = {u["id"]: u["token"] for u in assessors}

    def grade(submission: dict[str, Any]) -> Awaitable[Any]:
        target = assignment[submission["assignment_id"]]
        marks = {c["code"]: rng.random() < 0.8 for c in target["criteria"]}
        body = {"assignment_id": target["id"], "criteria": marks, "feedback": "Seeded grade."}
        token = token_of[target["assessor_ids"][0]]
        return api.call("PUT", f"/api/v1/submissions/{submission['id']}/grade", token, body)

    graded = await gather(
        grade(s) for s in rng.sample(submitted, int(len(submitted) * sizes.graded))
    )
    return len(submitted), len(graded)


async def seed_async(
    base_url: str, as_admin: Admin, sizes: Sizes, *,
    password: str = PASSWORD, concurrency: int = 8, seed: int = 2026,
) -> dict[str, Any]:  # fmt: skip
    """Seed the server; returns the document the k6 scenarios read."""
    rng = random.Random(seed)  # noqa: S311  # nosec B311 # test data, repeatable by design
    tag = new_tag()
    timeout = aiohttp.ClientTimeout(total=120)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        api = Api(http, base_url, concurrency)
        admin = await as_admin.sign_in(api)
        assessors = await accounts(api, admin, "assessor", sizes.assessors, tag, password)
        students = await accounts(api, admin, "student", sizes.students, tag, password)
        units = await gather(
            api.call("POST", "/api/v1/units", admin, {
                "code": f"PERF-{tag[5:]}/U{i:03d}", "title": f"Perf Unit {i}", "level": 1 + i % 8,
                "credits": 10 + 5 * (i % 4)})
            for i in range(1, sizes.units + 1)
        )  # fmt: skip
        bodies = assignment_bodies(rng, units, [u["id"] for u in assessors], sizes)
        made = await gather(api.call("POST", "/api/v1/assignments", admin, b) for b in bodies)
        submitted, graded = await existing_work(api, rng, students, assessors, made, sizes)
    for person in assessors:
        person["assignment_ids"] = [a["id"] for a in made if person["id"] in a["assessor_ids"]]
    return {
        "base_url": base_url,
        "tag": tag,
        "units": [
            {
                "id": u["id"],
                "code": u["code"],
                "assignment_ids": [a["id"] for a in made if a["unit"]["id"] == u["id"]],
            }
            for u in units
        ],
        "assignments": [
            {
                "id": a["id"],
                "unit_id": a["unit"]["id"],
                "assessor_ids": a["assessor_ids"],
                "criteria": [c["code"] for c in a["criteria"]],
            }
            for a in made
        ],
        "assessors": assessors,
        "students": students,
        "submissions": {"existing": submitted, "graded": graded},
    }


async def accounts_async(
    base_url: str, as_admin: Admin, count: int, *,
    password: str = PASSWORD, concurrency: int = 8,
) -> dict[str, Any]:  # fmt: skip
    """`count` verified student accounts and nothing else, never signed in (a scenario that
    measures signing in does that): the document the `auth` scenario reads."""
    tag = new_tag()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=300)) as http:
        api = Api(http, base_url, concurrency)
        admin = await as_admin.sign_in(api)
        made = await gather(
            api.call("POST", "/api/v1/users", admin,
                     {"email": f"signin{i}.{tag}@example.org", "full_name": f"Perf sign-in {i}",
                      "role": "student", "password": password})
            for i in range(1, count + 1)
        )  # fmt: skip
    return {"base_url": base_url, "tag": tag, "password": password,
            "accounts": [{"id": u["id"], "email": u["email"]} for u in made]}  # fmt: skip


def counts(document: dict[str, Any]) -> dict[str, int]:
    if "accounts" in document:
        return {"accounts": len(document["accounts"])}
    return {
        "units": len(document["units"]),
        "assignments": len(document["assignments"]),
        "assessors": len(document["assessors"]),
        "students": len(document["students"]),
        "submissions": document["submissions"]["existing"],
        "graded": document["submissions"]["graded"],
    }


def create_admin(env: dict[str, str], email: str, password: str) -> None:
    """An admin in the database of the btec that `env` (BTEC_* variables) configures, made with
    `btecctl users create-admin`; SeedError with its output when it fails."""
    done = subprocess.run(  # nosec B603 # this interpreter running btecctl, fixed arguments
        [sys.executable, "-m", "btecctl", "users", "create-admin", email, "--name", "Perf Admin",
         "--password-stdin", "--json"],
        env=env, input=password + "\n", text=True, capture_output=True, check=False, timeout=120,
    )  # fmt: skip
    if done.returncode != 0:
        raise SeedError(f"create-admin failed ({done.returncode}): {done.stdout}{done.stderr}")
