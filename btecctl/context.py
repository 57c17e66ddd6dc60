"""btecctl's session: what a command needs (its settings, the embedded servers, a database
connection, a Redis client, the job queue), and the one table that turns failures into the
documented exit codes and messages.

Every command runs inside `session(...)`, so a configuration error, an unreachable database
and a refused action end the same way in every command: a message on stderr and, with --json,
`{"ok": false, "error": ...}` on stdout.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from pydantic import SecretStr

from btecctl.output import CONFIG, FAILED, UNREACHABLE, USAGE, cli_logging, fail
from server.config.settings import Settings, load_settings
from server.domain.text import describe
from server.platform.embedded import embedded_services

if TYPE_CHECKING:
    from server.cache.core import Cache
    from server.domain.errors import FieldError
    from server.jobs.queue import Jobs
    from server.platform.passwords import Passwords

T = TypeVar("T")


@dataclass(frozen=True)
class Rule:
    """What an exception of one class means: its exit code and the message. The class is
    named, "module:Name", and looked up only among modules already imported: an exception of
    a module never imported cannot have been raised, so the table costs no import."""

    cls: str
    code: int
    say: Callable[[Any], str] = describe
    exact: bool = False  # only the class itself: a subclass is a bug to show in full
    when: Callable[[Any], bool] = lambda exc: True

    def matches(self, exc: BaseException) -> bool:
        module, _, name = self.cls.partition(":")
        found = getattr(sys.modules.get(module), name, None)
        if not isinstance(found, type):
            return False
        kind = type(exc) is found if self.exact else isinstance(exc, found)
        return kind and self.when(exc)


def _fields(exc: Any) -> str:
    """A ValidationFailed for people: `field: message; ...` (a message of the whole alone)."""
    said = (f"{e.name}: {e.message}" if e.field else e.message for e in exc.errors or ())
    return "; ".join(said) or exc.detail


def field_errors_json(errors: Iterable[FieldError]) -> list[dict[str, str]]:
    """A ValidationFailed's errors for --json: each field (dotted), its code and message."""
    return [{"field": ".".join(map(str, e.field)), "code": e.code, "detail": e.message}
            for e in errors]  # fmt: skip


# The first rule that matches decides, so a subclass comes before its base.
RULES = (
    Rule("server.config.settings:SettingsError", CONFIG, str),
    Rule("typer:BadParameter", USAGE, lambda e: e.format_message()),
    Rule("server.domain.errors:ValidationFailed", USAGE, _fields),
    # The database, the job queue or storage could not be reached (the services' own words).
    Rule("server.domain.errors:ServiceUnavailable", UNREACHABLE, lambda e: e.detail),
    Rule("server.domain.errors:DomainError", FAILED, lambda e: e.detail),
    # btecctl starts the embedded servers itself: one that cannot start (a stale pid, the data
    # dir's permissions) is a local failure to fix, often with `btecctl dev stop`, not a peer
    # that is down.
    Rule("server.platform.embedded:EmbeddedError", FAILED, lambda e: f"embedded server: {e}"),
    Rule("asyncpg:UndefinedTableError", FAILED,
         lambda e: f"the database is not migrated ({e}): run btecctl db migrate first"),
    *(Rule(f"asyncpg:{name}", UNREACHABLE, lambda e: f"database unreachable: {describe(e)}")
      for name in ("PostgresConnectionError", "CannotConnectNowError", "TooManyConnectionsError",
                   "InvalidAuthorizationSpecificationError", "InvalidCatalogNameError")),
    Rule("asyncpg:PostgresError", FAILED, lambda e: f"database error: {type(e).__name__}"),
    Rule("asyncpg:InterfaceError", FAILED, lambda e: f"database error: {type(e).__name__}"),
    Rule("psycopg:OperationalError", UNREACHABLE, lambda e: f"database unreachable: {describe(e)}"),
    Rule("psycopg:Error", FAILED, lambda e: f"database error: {describe(e)}"),
    Rule("redis.exceptions:ConnectionError", UNREACHABLE,
         lambda e: f"Redis unreachable: {type(e).__name__}"),
    Rule("redis.exceptions:TimeoutError", UNREACHABLE,
         lambda e: f"Redis unreachable: {type(e).__name__}"),
    Rule("yoyo.exceptions:LockTimeout", FAILED,
         lambda e: f"another process holds the migration lock: {e}"),
    Rule("server.backup.core:BackupCorrupt", FAILED,
         lambda e: f"refused, the backup is damaged: {e}. Nothing was touched."),
    Rule("server.backup.core:BackupError", FAILED, str),
    Rule("btecctl.context:Terminated", FAILED, str),
    Rule("server.schema.lint.squawk:SquawkError", CONFIG, str),  # the linter is not installed
    Rule("server.app.runner:ListenError", FAILED, str),  # a port the operator must free
    Rule("server.app.processes:ProcessFailed", FAILED, str),  # see its output above
    # `perf run`: k6 not installed, a thresholds file it cannot judge by, its own server that
    # would not start or be seeded.
    Rule("btecctl.loadtest.k6:K6Missing", CONFIG, str),
    Rule("btecctl.loadtest.thresholds:ThresholdsError", USAGE, str),
    Rule("btecctl.loadtest.target:TargetError", FAILED, str),
    Rule("btecctl.loadtest.seed:SeedError", FAILED, lambda e: f"seeding failed: {e}"),
    Rule("aiohttp:ClientError", FAILED, lambda e: f"seeding failed: {describe(e)}"),
    Rule("builtins:OSError", FAILED, describe, when=lambda e: e.filename is not None),  # a file
    Rule("builtins:OSError", UNREACHABLE, lambda e: f"unreachable: {describe(e)}"),  # a socket
    # What the code we call refuses as such: input it cannot take, or something not there.
    Rule("builtins:ValueError", USAGE, str, exact=True),
    Rule("builtins:LookupError", FAILED, str, exact=True),
)  # fmt: skip


def _extra(exc: BaseException) -> dict[str, Any]:
    """What --json adds for a refusal of the services: its stable code, its field errors."""
    code = getattr(exc, "code", None)
    if not isinstance(code, str) or not hasattr(exc, "detail"):
        return {}
    errors = getattr(exc, "errors", None)
    return {"problem": code, **({"errors": field_errors_json(errors)} if errors else {})}


class Terminated(Exception):
    """SIGTERM reached btecctl during a command. Raised in the main thread, so that the command
    stops as on an error: what it started is undone (a restore's database, a backup's partial
    directory, pg_dump or pg_restore) and it exits 1 with a message, not 143 in silence."""


def _terminate(signum: int, frame: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM ends it at once
    raise Terminated("stopped by SIGTERM before it finished")


@contextlib.contextmanager
def terminable() -> Iterator[None]:
    """SIGTERM raises Terminated for the command's life, unless something else already
    handles SIGTERM (`perf run`'s own interruption, a server's drain)."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):  # fmt: skip
        yield
        return
    signal.signal(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def failures(as_json: bool, note: str = "") -> Iterator[None]:
    """Turn an exception of RULES into its exit, `note` added to the message (say, that
    nothing was written); any other exception is a bug and shows in full."""
    try:
        yield
    except Exception as exc:
        rule = next((r for r in RULES if r.matches(exc)), None)
        if rule is None:
            raise
        message = rule.say(exc) + (f"; {note}" if note else "")
        fail(message, code=rule.code, as_json=as_json, **_extra(exc))


def settings_of(ctx: typer.Context) -> Settings:
    """The settings, loaded on first use, once per run: `--help` and bad usage need no valid
    configuration, and a bad one is reported inside the command's session (as JSON with
    --json)."""
    root = ctx.find_root()
    if not isinstance(root.obj, Settings):
        root.obj = load_settings()
    return root.obj


def given(ctx: typer.Context, option: str) -> bool:
    """Whether the operator passed `option` (its parameter name), not left its default."""
    source = ctx.get_parameter_source(option)
    return source is not None and source.name != "DEFAULT"


class Session:
    """One command run: its settings (the embedded servers' URLs filled in) and the
    connections it asks for, each made on first use and closed when the run ends."""

    def __init__(self, settings: Settings, as_json: bool, stack: contextlib.ExitStack) -> None:
        self.settings = settings
        self.as_json = as_json
        self._stack = stack
        self._closers: list[Callable[[], Awaitable[Any]]] = []  # for the run's event loop

    @property
    def database_url(self) -> str:
        if self.settings.database_url is None:
            raise RuntimeError("session(..., postgres=True)")
        return self.settings.database_url.get_secret_value()

    @property
    def redis_url(self) -> str:
        if self.settings.redis_url is None:
            raise RuntimeError("session(..., redis=True)")
        return self.settings.redis_url.get_secret_value()

    def secret(self, name: str) -> SecretStr | None:
        """An operator token or key as the server sees it: the setting, or (outside
        production) the data dir's own."""
        from server.platform.localsecrets import secret

        return secret(self.settings, name)

    @contextlib.asynccontextmanager
    async def db(self) -> AsyncIterator[Any]:
        """One plain connection a call: the `db=` factory the services take. Failing to
        connect says that it was the database that could not be reached."""
        from server.domain.errors import DatabaseUnavailable
        from server.platform.postgres import connect_once

        async with contextlib.AsyncExitStack() as stack:
            try:
                conn = await stack.enter_async_context(connect_once(self.database_url))
            except OSError as exc:
                raise DatabaseUnavailable(f"database unreachable: {describe(exc)}") from None
            yield conn

    def reach_database(self) -> None:
        """Exit 3 now if the database does not answer, before yoyo or pg_dump try it."""
        import psycopg

        psycopg.connect(self.database_url, connect_timeout=5).close()

    @cached_property
    def redis(self) -> Any:
        """A blocking Redis client that has answered a ping."""
        import redis

        client = redis.Redis.from_url(self.redis_url, socket_timeout=5, socket_connect_timeout=2)
        self._stack.callback(client.close)
        client.ping()
        return client

    @cached_property
    def passwords(self) -> Passwords:
        """Password hashing (argon2, off the event loop), for the user commands."""
        from server.platform.passwords import Passwords

        passwords = Passwords(self.settings)
        self._stack.callback(passwords.close)
        return passwords

    @cached_property
    def jobs(self) -> Jobs:
        """The job catalogue on the queue: for commands that queue or inspect jobs."""
        from server.jobs.queue import Jobs, create_queue
        from server.worker.handlers import specs

        jobs = Jobs(create_queue(self.redis_url), specs(self.settings), None)
        self._closers.append(jobs.queue.disconnect)
        return jobs

    @cached_property
    def cache(self) -> Cache:
        """The read cache, to invalidate what a command changed."""
        import redis.asyncio as aioredis

        from server import __version__
        from server.cache.core import Cache
        from server.observability.metrics import Metrics

        client = aioredis.Redis.from_url(self.redis_url, socket_timeout=2,
                                         socket_connect_timeout=2)  # fmt: skip
        self._closers.append(client.aclose)
        return Cache(
            client, self.settings, Metrics(version=__version__, release=self.settings.release)
        )

    def run(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` in an event loop; the queue and Redis clients it used close in that loop."""
        return asyncio.run(self._closing(work))

    async def _closing(self, work: Coroutine[Any, Any, T]) -> T:
        try:
            return await work
        finally:
            for close in reversed(self._closers):
                # Best effort: a client of an unreachable Redis fails to close as well, and
                # must not hide what the command itself met.
                with contextlib.suppress(Exception):
                    await close()
            self._closers.clear()
            for name in ("jobs", "cache"):  # a second run makes its own
                self.__dict__.pop(name, None)


@contextlib.contextmanager
def session(
    ctx: typer.Context,
    as_json: bool,
    *,
    postgres: bool = False,
    redis: bool = False,
    note: str = "",
    prepare: Callable[[Settings], None] | None = None,
) -> Iterator[Session]:
    """The command's session: settings, the embedded PostgreSQL and Redis it asks for when
    their URLs are unset, and RULES for whatever fails. `prepare` runs on the settings before
    any server starts (the server commands set up their logging there)."""
    with failures(as_json, note), terminable(), contextlib.ExitStack() as stack:
        settings = settings_of(ctx)
        if prepare is not None:
            prepare(settings)
        resolved = stack.enter_context(embedded_services(settings, postgres=postgres, redis=redis))
        yield Session(resolved, as_json, stack)


def library_warnings(as_json: bool) -> Callable[[Settings], None]:
    """A `prepare` for the commands that drive yoyo and pg_dump: their libraries' warnings go
    to stderr, as JSON lines with --json."""
    return lambda _: cli_logging(as_json)


@contextlib.contextmanager
def database(ctx: typer.Context, as_json: bool) -> Iterator[Session]:
    """A session with a database that answers: for yoyo's and pg_dump's commands."""
    with session(ctx, as_json, postgres=True, prepare=library_warnings(as_json)) as s:
        s.reach_database()
        yield s
