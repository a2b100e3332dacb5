"""The daemons' JSON-lines log format (gmpls/logfmt.py)."""

from __future__ import annotations

import json
import logging
import sys
from ipaddress import IPv4Address
from pathlib import Path

from gmpls.logfmt import JsonFormatter, setup_logging


def _line(record: logging.LogRecord) -> dict[str, object]:
    out = JsonFormatter().format(record)
    assert "\n" not in out
    return dict(json.loads(out))


def test_message_level_and_extras() -> None:
    r = logging.makeLogRecord(
        {
            "name": "qkd_proxy",
            "levelno": logging.WARNING,
            "levelname": "WARNING",
            "msg": "refused %s",
            "args": ("twice",),
            "created": 1700000000.1234567,
            "host": "etsiA",
            "peer": IPv4Address("10.2.1.1"),
            "counters": {"rx": 3},
            "_private": 1,
        }
    )
    assert _line(r) == {
        "ts": 1700000000.123457,
        "level": "warning",
        "logger": "qkd_proxy",
        "msg": "refused twice",
        "host": "etsiA",
        "peer": "10.2.1.1",
        "counters": {"rx": 3},
    }


def test_traceback_of_log_exception() -> None:
    try:
        raise ValueError("bad field")
    except ValueError:
        r = logging.getLogger("pce").makeRecord(
            "pce", logging.ERROR, __file__, 1, "failed", (), exc_info=sys.exc_info()
        )
    line = _line(r)
    assert line["msg"] == "failed" and "ValueError: bad field" in str(line["exc"])


def test_setup_logging_writes_json_lines(tmp_path: Path) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        setup_logging(str(tmp_path / "d.log"), logging.DEBUG)
        logging.getLogger("node_agent").debug("up", extra={"node": "tn1", "event": "start"})
        for h in root.handlers:
            h.flush()
            h.close()
    finally:
        root.handlers[:] = handlers
        root.setLevel(level)
    (line,) = (tmp_path / "d.log").read_text().splitlines()
    d = json.loads(line)
    assert (d["level"], d["logger"], d["msg"], d["node"], d["event"]) == (
        "debug",
        "node_agent",
        "up",
        "tn1",
        "start",
    )
