"""What the OSPF tests in namespaces share: polling a testbed until a condition holds, and
reading fields out of a capture with tshark."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from compose.cliclient import CliError


def until(what: str, cond: Callable[[], Any], timeout: float, step: float = 0.25) -> Any:
    """Poll ``cond`` every ``step`` s until it returns something true, and return that;
    an AssertionError naming ``what`` and the last value after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {v!r})")
        time.sleep(step)


def wait_for(
    pred: Callable[[], Any], timeout: float, what: str, extra: Callable[[], Any] = lambda: ""
) -> None:
    """Poll ``pred`` every 0.5 s until it returns True; what it returned last (a value or
    an error from a CLI/subprocess call) goes into the failure message with ``extra()``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            r = pred()
            if r is True:
                return
            last = r
        except (OSError, ValueError, KeyError, CliError, subprocess.SubprocessError) as e:
            last = e
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}: {last} {extra()}")


def tshark_fields(pcap: Path, display_filter: str, field: str) -> list[str]:
    """The values of ``field`` in the packets of ``pcap`` that ``display_filter`` matches."""
    return subprocess.run(
        ["tshark", "-r", str(pcap), "-Y", display_filter, "-T", "fields", "-e", field],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
