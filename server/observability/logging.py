"""One structlog pipeline over stdlib logging for app, access and third-party logs: JSON lines
(or a console format on a TTY) to stdout, optionally also to a size-rotated file, every line
passed through the redactor, levels per logger."""

from __future__ import annotations

import datetime as dt
import json
import logging
import logging.handlers
import os
import sys
import traceback
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from server.config.parsers import parse_levels
from server.domain.text import describe
from server.observability.redact import redact

if TYPE_CHECKING:
    from server.config.settings import Settings

ACCESS_LOGGER = "btec.access"

# The current request's id; each aiohttp request runs in its own task, so it never leaks.
request_id_var: ContextVar[str | None] = ContextVar("btec_request_id", default=None)


def _add_request_id(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    rid = request_id_var.get()
    if rid is not None:
        event_dict.setdefault("request_id", rid)
    return event_dict


def _rename_level(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event_dict.setdefault("level", "info")
    return event_dict


def redact_secrets(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Secrets out of every line, ours and third-party (see server.observability.redact)."""
    redacted: EventDict = redact(event_dict)
    return redacted


class JobArgsFilter(logging.Filter):
    """saq logs whole jobs (`Processing Job<... kwargs ... error: Traceback ...>`): e-mail
    addresses, tokens and stack traces that must stay out of log lines. Keep task and id.

    saq also logs every failed attempt at error; an attempt that will be retried is a warning
    here (a mail while SMTP is down), and only the last one, which fails the job, an error."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and isinstance(record.args, tuple):
            job = next((a for a in record.args if _is_job(a)), None)
            if job is not None and getattr(job, "retryable", False):
                record.levelno, record.levelname = logging.WARNING, "WARNING"
        if isinstance(record.args, tuple) and any(_is_job(a) for a in record.args):
            record.args = tuple(_job_label(a) if _is_job(a) else a for a in record.args)
        return True


def _is_job(value: object) -> bool:
    return type(value).__name__ == "Job" and hasattr(value, "function") and hasattr(value, "key")


def _job_label(job: Any) -> str:
    return f"{job.function} job {job.key} (attempt {job.attempts})"


def summarize_exception(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    """Replace a traceback with the exception's type, first line and innermost frame: stack
    traces stay out of log lines (they go to Sentry), and messages are cut short."""
    exc_info = event_dict.pop("exc_info", None)
    if not exc_info:
        return event_dict
    if exc_info is True:
        exc_info = sys.exc_info()
    elif isinstance(exc_info, BaseException):
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    _, exc, tb = exc_info
    if exc is None:
        return event_dict
    event_dict["exception"] = describe(exc, limit=300)
    frames = traceback.extract_tb(tb) if tb is not None else []
    if frames:
        event_dict.setdefault("where", f"{frames[-1].filename}:{frames[-1].lineno}")
    return event_dict


def _shared_processors() -> list[Processor]:
    return [
        structlog.contextvars.merge_contextvars,
        _add_request_id,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _rename_level,
    ]


def configure_logging(
    level: str = "INFO",
    fmt: Literal["auto", "json", "console"] = "auto",
    stream: Any = None,
    *,
    levels: str = "",
    file: os.PathLike[str] | str | None = None,
    file_max_bytes: int = 50 * 1024 * 1024,
    file_backups: int = 5,
) -> None:
    """Route every log record (ours and third-party) through one formatter to stdout (or
    `stream`), and to `file` as JSON lines rotated at `file_max_bytes` keeping `file_backups`
    old files. `levels`: per-logger overrides, `name=LEVEL,...`."""
    out = stream if stream is not None else sys.stdout
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Processor = (
        structlog.dev.ConsoleRenderer(colors=out.isatty())
        if use_console
        else structlog.processors.JSONRenderer()
    )
    shared = _shared_processors()
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            summarize_exception,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )

    def formatter_for(render: Processor) -> logging.Formatter:
        return _AccessAware(
            foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                summarize_exception,
                redact_secrets,
                render,
            ],
        )

    formatter = formatter_for(renderer)
    # What no line of ours shows: the logging HOWTO's "Optimization" switches (about 4 µs
    # of each access-log line).
    logging._srcfile = None  # caller file and line
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(out)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
        if isinstance(old, logging.FileHandler):
            old.close()
    root.addHandler(handler)
    root.setLevel(level)
    rotating = _rotating_file(file, file_max_bytes, file_backups) if file else None
    if rotating is not None:
        rotating.setFormatter(formatter_for(structlog.processors.JSONRenderer()))
        root.addHandler(rotating)
    # Access lines: in JSON, handlers of their own on the same outputs take them pre-rendered.
    global _access_fast
    _access_fast = not use_console
    for old in list(_access_std.handlers):
        _access_std.removeHandler(old)
    _access_std.propagate = use_console
    if _access_fast:
        access_handler = logging.StreamHandler(out)
        access_handler.setFormatter(_PreRendered())
        _access_std.addHandler(access_handler)
        if rotating is not None:
            _access_std.addHandler(rotating)  # _AccessAware passes pre-rendered lines through
    # aiohttp's own access log is replaced by ours, which carries the route and request id.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosmtpd (the development mail catcher) logs every line of every message at DEBUG,
    # reset and verification links included, and 8 INFO lines for each connection: every
    # /health probe of SMTP would add them. Its warnings still show.
    logging.getLogger("mail.log").setLevel(max(logging.WARNING, root.level))
    saq_log = logging.getLogger("saq")
    saq_log.setLevel(logging.WARNING)  # one line per job enqueued, started and finished
    if not any(isinstance(f, JobArgsFilter) for f in saq_log.filters):
        saq_log.addFilter(JobArgsFilter())
    for name, number in parse_levels(levels).items():  # the operator's word is last
        logging.getLogger(name).setLevel(number)


def _rotating_file(
    path: os.PathLike[str] | str, max_bytes: int, backups: int
) -> logging.handlers.RotatingFileHandler:
    """A size-rotated log file. Safe for one process; several processes share a file through
    logrotate's copytruncate or journald instead (runbooks/observability.md)."""
    return _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """Each file it opens (the first, and each after a rotation) is readable by its owner
    only: lines can carry email addresses and client IPs."""

    def _open(self) -> Any:
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        return os.fdopen(fd, "a", encoding=self.encoding, errors=self.errors)


class _AccessAware(structlog.stdlib.ProcessorFormatter):
    """The pipeline's formatter, passing the access log's pre-rendered JSON lines through
    unchanged (a handler shared by both, such as the log file)."""

    def format(self, record: logging.LogRecord) -> str:
        if record.name == ACCESS_LOGGER and isinstance(record.msg, str):
            return record.msg
        return super().format(record)


class _PreRendered(logging.Formatter):
    """Access-log records arrive as finished JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


_access_std = logging.getLogger(ACCESS_LOGGER)
_access_fast = False  # set by configure_logging: JSON lines rendered by log_access itself
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


def access_wanted(level: int) -> bool:
    """Whether an access line at `level` would be written (check before building one)."""
    return _access_std.isEnabledFor(level)


def log_access(level: int, fields: dict[str, Any]) -> None:
    """One access-log line. In JSON format it is rendered here in one json.dumps, with the
    fields and order the structlog pipeline gives every other line (event, request_id, level,
    logger, ts), at about a third of that pipeline's cost: this runs on every request."""
    if not _access_std.isEnabledFor(level):
        return
    if not _access_fast:
        get_logger(ACCESS_LOGGER).log(level, "request", **fields)
        return
    fields["event"] = "request"
    rid = request_id_var.get()
    if rid is not None:
        fields["request_id"] = rid
    fields["level"] = _LEVEL_NAMES.get(level) or logging.getLevelName(level).lower()
    fields["logger"] = ACCESS_LOGGER
    fields["ts"] = dt.datetime.now(dt.UTC).isoformat().replace("+00:00", "Z")
    _access_std.log(level, json.dumps(fields))


def configure_from(settings: Settings, as_json: bool = False) -> None:
    """configure_logging with the BTEC_LOG_* settings (JSON whatever the format when
    `as_json`)."""
    configure_logging(
        settings.log_level, "json" if as_json else settings.log_format, levels=settings.log_levels,
        file=settings.log_file, file_max_bytes=settings.log_file_max_bytes,
        file_backups=settings.log_file_backups,
    )  # fmt: skip


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
