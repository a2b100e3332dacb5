"""The plugin on a real capture: ``qkdnet demo --capture DIR --json`` in network namespaces
(prefix ``wsh``), then the tshark commands it prints, run as printed plus ``-T fields``.

The key handle the plugin shows in tn5's QE subobject (tn1's Path on the control LAN) is
the one tn1 reports (its prefix), the one tn1's proxy gave tn1 in its QKD_OPEN reply and the
one tn5 opened at its own proxy (both decoded by the plugin), and the one our own RSVP codec
reads; nothing in any domain's capture is malformed or has an expert error.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from ipaddress import IPv4Address
from typing import Any

import pytest

from gmpls.qkd import etsi004 as etsi
from tests.support.captures import qe_session_ids, rsvp_messages
from tests.support.e2elab import PAPER

pytestmark = [pytest.mark.netns, pytest.mark.interop, pytest.mark.slow]

PREFIX = "wsh"
TN1, TN5 = "10.1.1.1", "10.1.1.5"
PI_ERROR = 8388608  # expert severity "error" (_ws.expert.severity)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    if os.geteuid() != 0:
        pytest.skip("network namespace tests need root")
    from compose.netns import leftovers, teardown

    tmp = tmp_path_factory.mktemp("wsh")
    index = tmp / "index"
    index.mkdir()
    env = {**os.environ, "QKDNET_INDEX": str(index)}
    quiet = lambda _line: None  # noqa: E731
    teardown(PREFIX, progress=quiet)
    argv = [sys.executable, "-m", "compose.cli", "demo", str(PAPER), "--prefix", PREFIX]
    argv += ["--json", "--capture", str(tmp / "caps"), "--run-dir", str(tmp / "run")]
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=240, cwd=tmp, env=env)
    finally:
        teardown(PREFIX, progress=quiet)
    assert r.returncode == 0, r.stderr[-3000:]
    assert leftovers(PREFIX) == []
    out: dict[str, Any] = json.loads(r.stdout)
    return out


def run(demo: dict[str, Any], domain: str, *args: str) -> list[list[str]]:
    """The demo's tshark command for ``domain``, with ``args`` (fields, one row a frame)."""
    argv = [*demo["tshark"][domain], "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    r = subprocess.run([*argv, *args], capture_output=True, text=True, check=False)
    assert r.returncode == 0 and "Lua" not in r.stderr, r.stderr
    return [line.split("|") for line in r.stdout.splitlines()]


def opened(demo: dict[str, Any], domain: str) -> list[str]:
    """Key handles of the successful QKD_OPEN replies in a node-to-proxy domain (its one
    node's), plugin-decoded."""
    flt = "qkdnet.etsi004.type == 0x81 && qkdnet.etsi004.status == 0"
    return [r[0] for r in run(demo, domain, "-Y", flt, "-e", "qkdnet.etsi004.key_handle")]


def test_the_demo_prints_a_command_per_capture(demo: dict[str, Any]) -> None:
    domains = {"ctrl", "qa", "qb", "ka", "kb", "sync", "ea", "eb"}  # ea, eb: ha and hb
    assert set(demo["tshark"]) == set(demo["captures"]) == domains
    for domain, argv in demo["tshark"].items():
        assert argv[0] == "tshark" and argv[1] == "-X" and argv[2].startswith("lua_script:")
        assert argv[2].endswith("wireshark/qkdnet.lua") and demo["captures"][domain] in argv


def test_key_handle_in_tn5s_qe_subobject_is_the_one_tn1_reports(demo: dict[str, Any]) -> None:
    flt = f"ip.src == {TN1} && rsvp.msg == 1 && qkdnet.ero.hop == {TN5}"
    rows = run(demo, "ctrl", "-Y", flt, "-e", "qkdnet.ero.hop", "-e", "qkdnet.ero.key_handle")
    assert rows, "no Path from tn1 with a QE subobject for tn5"
    hops, handles = rows[0][0].split(","), rows[0][1].split(",")
    handle = handles[hops.index(TN5)]
    assert handle != "00" * 64
    # tn1 reports the handle's first 4 bytes (qe-service show json)
    assert handle.startswith(demo["service"]["key_handle_prefix"])
    # tn1's proxy gave tn1 this handle; tn5 opened the same one at its proxy
    assert handle in opened(demo, "qa")
    assert handle in opened(demo, "qb")
    # and our own codec reads the same bytes in the first Path tn1 sent
    for p, msg in rsvp_messages(demo["captures"]["ctrl"]):
        if str(p.src) == TN1 and msg.msg_type == 1:
            assert qe_session_ids(msg)[IPv4Address(TN5)].hex() == handle
            break


def test_etsi_status_names_and_the_qkd_domains_decode(demo: dict[str, Any]) -> None:
    for domain in ("qa", "qb"):
        rows = run(demo, domain, "-Y", "qkdnet.etsi004.status", "-e", "qkdnet.etsi004.status")
        statuses = {int(s) for r in rows for s in r[0].split(",")}
        assert etsi.Status.SUCCESSFUL in statuses and statuses <= set(etsi.Status)
    assert run(demo, "sync", "-Y", "qkdnet.sync.type == 4", "-e", "qkdnet.sync.key_id")
    keys = run(demo, "ka", "-Y", "qkdnet.idq3p.type == 0x81", "-e", "qkdnet.idq3p.key_id")
    assert keys and all(r[0] for r in keys)


def test_no_capture_has_malformed_frames_or_expert_errors(demo: dict[str, Any]) -> None:
    for domain in demo["tshark"]:
        rows = run(
            demo,
            domain,
            "-e",
            "frame.number",
            "-e",
            "_ws.malformed",
            "-e",
            "_ws.expert.severity",
            "-e",
            "_ws.expert.message",
        )
        assert rows, domain
        for number, malformed, severities, messages in rows:
            assert malformed == "", (domain, number)
            assert str(PI_ERROR) not in severities.split(","), (domain, number, messages)
