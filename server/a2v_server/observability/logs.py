"""Log format: plain text (the default) or one JSON object per line, with trace ids.

JSON records carry ``timestamp`` (UTC, ISO 8601), ``level``, ``logger``, ``message``, and, when
known, ``trace_id``/``span_id`` of the current span and the ``request_id`` of the Generate call,
so a log line can be joined to its trace. Only the rendered message and these fields are
written: the server never logs prompts, transcripts, media bytes or API keys, and this module
adds no request data of its own (no ``extra`` dict is copied out).
"""

from __future__ import annotations

import contextvars
import datetime
import json
import logging
import sys

from opentelemetry import trace

#: the request id of the Generate call being served (set by the servicer once it is known);
#: a context variable, so each call's task and the tasks it starts see their own
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "a2v_request_id", default=None
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record; ids from the current span and the request context."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "timestamp": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            entry["trace_id"] = format(span_context.trace_id, "032x")
            entry["span_id"] = format(span_context.span_id, "016x")
        request_id = request_id_var.get()
        if request_id is not None:
            entry["request_id"] = request_id
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    """Install one stderr handler on the root logger in the chosen format ("text" | "json")."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
