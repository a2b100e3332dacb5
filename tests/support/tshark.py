"""tshark, the independent decoder, for the interop tests: run it on a pcap and walk its
``-T json`` output.

tshark repeats keys in one JSON object (two LSAs of the same type and length have the same
title, an ERO several subobjects of one kind), which a dict would collapse: its objects are
read as :class:`Pairs`, and :func:`collect` finds every value of a key in document order.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

TSHARK = shutil.which("tshark")
REQUIRED = "tshark is required for the interop tests (make setup installs it)"


class Pairs(list):  # type: ignore[type-arg]
    """A JSON object as its (key, value) pairs."""


def collect(obj: Any, key: str, out: list[Any] | None = None) -> list[Any]:
    """Every value of ``key`` anywhere in ``obj``, in document order; a repeated field (a
    JSON array of values) counts as its values, a ``*_raw`` field as one value."""
    out = [] if out is None else out
    if isinstance(obj, Pairs):
        for k, v in obj:
            if k == key:
                raw = key.endswith("_raw")
                many = isinstance(v, list) and not isinstance(v, Pairs) and not raw
                out.extend(v if many else [v])
            collect(v, key, out)
    elif isinstance(obj, list):
        for v in obj:
            collect(v, key, out)
    return out


def run(pcap: Path, *args: str) -> str:
    """What tshark prints reading ``pcap`` with ``args``."""
    assert TSHARK, REQUIRED
    return subprocess.run(
        [TSHARK, "-r", str(pcap), *args], capture_output=True, text=True, check=True
    ).stdout


def frames(pcap: Path, *args: str) -> list[Any]:
    """Every frame of ``pcap`` as tshark's ``-T json`` (objects as :class:`Pairs`)."""
    decoded: list[Any] = json.loads(run(pcap, "-T", "json", *args), object_pairs_hook=Pairs)
    return decoded


def layers(pcap: Path, *args: str) -> list[Any]:
    """The protocol layers of every frame of ``pcap`` (:func:`frames`), IP checksums
    checked."""
    return [
        dict(dict(f)["_source"])["layers"]
        for f in frames(pcap, *args, "-o", "ip.check_checksum:TRUE")
    ]


def tcpdump(
    tb: Any, host: str, args: list[str], pcap: Path, timeout: float = 20.0
) -> subprocess.Popen[bytes]:
    """``tcpdump -U --immediate-mode -w PCAP ARGS`` in ``host``'s namespace (``tb.popen``),
    returned once it listens (its ``listening on`` line), so that no frame sent after this
    returns is missed.

    ``--immediate-mode``: without it libpcap hands packets over a block at a time, when the
    block fills or its timeout (1 s) passes, and a tcpdump stopped (SIGTERM) before that
    never writes the last block: the KM relay test lost every frame of its relay that way
    in a full run. ``-U`` writes each packet out as it comes."""
    err = pcap.with_name(pcap.name + ".tcpdump.err")
    argv = ["tcpdump", "-U", "--immediate-mode", "-w", str(pcap), *args]
    with open(err, "wb") as errf:
        dump: subprocess.Popen[bytes] = tb.popen(host, argv, stdout=subprocess.DEVNULL, stderr=errf)
    deadline = time.monotonic() + timeout
    while b"listening on" not in err.read_bytes():
        if dump.poll() is not None:
            raise RuntimeError(f"tcpdump on {host} exited: {err.read_text(errors='replace')}")
        if time.monotonic() > deadline:
            dump.kill()
            raise TimeoutError(f"tcpdump on {host} not listening within {timeout} s")
        time.sleep(0.05)
    return dump
