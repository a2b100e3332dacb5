"""JSON-lines logging for every daemon (node agent, PCE, ETSI 004 proxy, IDQ3P emulator).

One JSON object per line: ``ts`` (Unix time), ``level``, ``logger``, ``msg``, then the
record's ``extra`` fields as given (``node``/``host``, ``peer``, ``event`` ...; values
JSON cannot hold are written with ``str``), and ``exc`` with the traceback of
``log.exception``. Callers never pass key bytes (docs/design.md#where-keys-live): the formatter
writes what
it is given.

Pure: stdlib :mod:`logging` and :mod:`json` only, so it sits in ``gmpls/`` below the
daemons; the daemon skeleton (:mod:`daemonkit.daemon`) sets it up for all four.
"""

from __future__ import annotations

import json
import logging
from typing import Any

#: attributes every LogRecord has: anything else on a record came in through ``extra``
_STD = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message and the record's extras."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": round(record.created, 6),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for k, v in vars(record).items():
            if k not in _STD and not k.startswith("_"):
                out[k] = v
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(log_file: str | None, level: int = logging.INFO) -> None:
    """Send every logger's records, as JSON lines, to ``log_file`` (default: stderr)."""
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler()
    )
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
