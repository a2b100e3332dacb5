"""The plugin's ``qkdnet.dataplane`` dissector (wireshark/qkdnet.lua) on frames the data
plane core wrote: every field as encoded, nothing malformed, and the plugin's expert
infos on broken frames (never a Lua error)."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

from compose import wireshark
from gmpls.dataplane import events as E
from gmpls.dataplane.core import DataplaneEnd
from gmpls.dataplane.frame import Header, eth_header
from tests.support.pcap import write_pcap
from tests.support.tshark import REQUIRED, TSHARK

#: an empty HOME: a plugin installed in the personal folder (``qkdnet wireshark install``)
#: would load first and this checkout's would step aside
_HOME = tempfile.mkdtemp(prefix="w-home-")


def tshark(pcap: Path, *args: str) -> subprocess.CompletedProcess[str]:
    r = subprocess.run(
        wireshark.tshark_command(pcap, *args),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "HOME": _HOME},
    )
    assert r.returncode == 0, r.stderr
    assert "Lua" not in r.stderr and "Lua Error" not in r.stdout, r.stderr + r.stdout[:2000]
    return r


def fields(pcap: Path, flt: str, *names: str) -> list[list[str]]:
    args = ["-Y", flt, "-T", "fields", "-E", "separator=|", "-E", "occurrence=a"]
    for n in names:
        args += ["-e", n]
    return [line.split("|") for line in tshark(pcap, *args).stdout.splitlines()]


pytestmark = pytest.mark.interop

MARKER = b"qkdnet-plaintext-marker"
CLIENT = bytes.fromhex("02000000000202000000000108004500") + MARKER * 4
ETH = eth_header(b"\xff" * 6, bytes.fromhex("020000000005"))


def _good() -> tuple[list[bytes], list[tuple[int, int, int, int, int, int]]]:
    """Frames of both ends under three algorithms: (dir, announce, alg, key, rx, pn) each."""
    frames: list[bytes] = []
    want = []
    for alg in (10, 11, 12):
        head = DataplaneEnd(service_id="1", head=True, algorithm=alg)
        tail = DataplaneEnd(service_id="1", head=False, algorithm=alg)
        for end in (head, tail):
            (ann,) = end.handle(E.InstallKey(0, bytes(range(32))), 0.0)
            assert isinstance(ann, E.Send)
            frames.append(ETH + ann.pdu)
            want.append((end.direction, 1, alg, 0, 0, 1))
            frames.append(ETH + end.seal(CLIENT))
            want.append((end.direction, 0, alg, 0, 0, 2))
    return frames, want


@pytest.fixture(scope="module")
def pcap(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    assert TSHARK, REQUIRED
    frames, want = _good()
    path = tmp_path_factory.mktemp("dataplane") / "dataplane.pcap"
    write_pcap(str(path), frames)
    return path, want


def test_fields_as_encoded_nothing_malformed(pcap: tuple[Path, list]) -> None:
    path, want = pcap
    rows = fields(
        path,
        "",
        "qkdnet.dataplane.direction",
        "qkdnet.dataplane.announce",
        "qkdnet.dataplane.algorithm",
        "qkdnet.dataplane.key_index",
        "qkdnet.dataplane.rx_index",
        "qkdnet.dataplane.pn",
        "qkdnet.dataplane.tag",
        "_ws.malformed",
        "_ws.expert",
    )
    got = [
        (int(r[0]), int(r[1] in ("1", "True")), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
        for r in rows
    ]
    assert got == want
    for r in rows:
        assert len(bytes.fromhex(r[6].replace(":", ""))) == 16
        assert r[7] == "" and r[8] == "", r
    # the ciphertext never shows the client's bytes
    text = tshark(path, "-x").stdout
    assert MARKER.hex()[:16] not in text.replace(" ", "")


def test_info_column(pcap: tuple[Path, list]) -> None:
    path, _ = pcap
    info = tshark(path, "-T", "fields", "-e", "_ws.col.Info").stdout.splitlines()
    assert info[0].startswith("Announce head>tail key=0 rx=0 pn=1 len=0")
    assert info[3].startswith(f"Data tail>head key=0 rx=0 pn=2 len={len(CLIENT)}")


BROKEN = [
    (b"\x10\x0a\x00", "qkdnet.dataplane.short"),
    (
        bytes([0x13]) + Header(0, 10, 0, 0, 1).encode()[1:] + bytes(16),
        "qkdnet.dataplane.bad_length",
    ),
    (Header(0, 10, 0, 0, 1).encode()[:10] + bytes(8) + bytes(16), "qkdnet.dataplane.bad_length"),
    (bytes([0x20]) + Header(0, 10, 0, 0, 1).encode()[1:] + bytes(16), "qkdnet.dataplane.unknown"),
    (Header(0, 3, 0, 0, 1).encode() + bytes(16), "qkdnet.dataplane.unknown"),
    (Header(0, 10, 0, 0, 1, announce=True).encode() + bytes(20), "qkdnet.dataplane.bad_length"),
]


def test_broken_frames_raise_the_plugins_expert_info(tmp_path: Path) -> None:
    path = tmp_path / "broken.pcap"
    write_pcap(str(path), [ETH + pdu for pdu, _ in BROKEN])
    rows = fields(path, "", "_ws.expert.message", *sorted({a for _, a in BROKEN}))
    assert len(rows) == len(BROKEN)
    abbrevs = sorted({a for _, a in BROKEN})
    for row, (_pdu, abbrev) in zip(rows, BROKEN, strict=True):
        assert row[0], row
        assert row[1 + abbrevs.index(abbrev)] != "", (abbrev, row)
