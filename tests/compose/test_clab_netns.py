"""The containerlab node wrapper (:mod:`compose.clabnode`) in a namespace, as containerlab
would use it: the command starts first, the interfaces arrive afterwards."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.netns

NS = "qkclabt"


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


@pytest.fixture
def ns() -> Iterator[str]:
    _ip("netns", "del", NS, check=False)
    _ip("netns", "add", NS)
    try:
        yield NS
    finally:
        _ip("netns", "del", NS, check=False)


def _start(ns: str, *args: str) -> subprocess.Popen[str]:
    argv = ["ip", "netns", "exec", ns, sys.executable, "-m", "compose.clabnode", *args]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _veth(ns: str, outside: str, inside: str) -> None:
    _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", ns)


def test_addresses_then_the_command(ns: str) -> None:
    p = _start(ns, "--addr", "ctrl=10.99.0.1/24", "--", "ip", "-4", "-o", "addr", "show", "ctrl")
    assert p.poll() is None  # started before its interface exists, as under containerlab
    _veth(ns, "qkclabt0", "ctrl")
    out, err = p.communicate(timeout=60)
    assert p.returncode == 0, err
    assert "10.99.0.1/24" in out  # the command ran after the address was set
    assert re.search(r"<[^>]*\bUP\b", _ip("-n", ns, "link", "show", "ctrl").stdout)


def test_a_missing_interface_is_a_clear_error(ns: str) -> None:
    p = _start(ns, "--timeout", "0.5", "--addr", "nope=10.99.0.1/24", "--", "true")
    _, err = p.communicate(timeout=60)
    assert p.returncode == 1 and "never appeared: nope" in err


def test_switch_bridges_its_ports(ns: str) -> None:
    p = _start(ns, "--bridge", "br0", "--port", "tn1", "--port", "tn2")
    _veth(ns, "qkclabt1", "tn1")
    _veth(ns, "qkclabt2", "tn2")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ports = _ip("-n", ns, "-o", "link", "show", "master", "br0", check=False).stdout
        if "tn1" in ports and "tn2" in ports:
            break
        time.sleep(0.1)
    else:
        pytest.fail(f"ports never joined br0: {p.stderr.read() if p.poll() is not None else ''}")
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode == 0
