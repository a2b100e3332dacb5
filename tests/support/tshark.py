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
