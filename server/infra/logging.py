"""One structlog pipeline over stdlib logging for app, access and third-party logs."""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import traceback
from contextvars import ContextVar
from typing import Any, Literal

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger

from server.infra.text import describe

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


class JobArgsFilter(logging.Filter):
    """saq logs whole jobs (`Processing Job<... kwargs ... error: Traceback ...>`): e-mail
    addresses, tokens and stack traces that must stay out of log lines. Keep task and id."""

    def filter(self, record: logging.LogRecord) -> bool:
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
) -> None:
    """Route every log record (ours and third-party) through one formatter to stderr/stdout."""
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
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.ExtraAdder()],
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            summarize_exception,
            renderer,
        ],
    )
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
    root.addHandler(handler)
    root.setLevel(level)
    # Access lines: in JSON, a handler of their own on the same stream takes them pre-rendered.
    global _access_fast
    _access_fast = not use_console
    for old in list(_access_std.handlers):
        _access_std.removeHandler(old)
    _access_std.propagate = use_console
    if _access_fast:
        access_handler = logging.StreamHandler(out)
        access_handler.setFormatter(_PreRendered())
        _access_std.addHandler(access_handler)
    # aiohttp's own access log is replaced by ours, which carries the route and request id.
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    # aiosmtpd (the development mail catcher) logs every line of every message at DEBUG:
    # reset and verification links included.
    logging.getLogger("mail.log").setLevel(max(logging.INFO, root.level))
    saq_log = logging.getLogger("saq")
    saq_log.setLevel(logging.WARNING)  # one line per job enqueued, started and finished
    if not any(isinstance(f, JobArgsFilter) for f in saq_log.filters):
        saq_log.addFilter(JobArgsFilter())


class _PreRendered(logging.Formatter):
    """Access-log records arrive as finished JSON lines."""

    def format(self, record: logging.LogRecord) -> str:
        return str(record.msg)


_access_std = logging.getLogger(ACCESS_LOGGER)
_access_fast = False  # set by configure_logging: JSON lines rendered by log_access itself
_LEVEL_NAMES = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning"}


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


def get_logger(name: str) -> structlog.stdlib.BoundLogger:
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger
