"""The RELAY-PATH TLV (gmpls.pcep.relay, docs/pcep.md#the-relay-path-tlv): golden bytes,
where it rides (RP of a PCRep, LSP of the stateful messages), its configurable type, and
tshark decoding it with nothing malformed and no expert note of its own."""

from __future__ import annotations

import dataclasses
from ipaddress import IPv4Address as IP
from pathlib import Path

import pytest

from gmpls import qe
from gmpls.errors import DecodeError
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep.relay import RelayPathTlv, relay_of, with_relay
from gmpls.tlv import UnknownTlv
from tests.support import tshark
from tests.support.pcap import write_pcap
from tests.support.pcep_framing import conversation
from tests.support.tshark import REQUIRED, TSHARK

SITES = (IP("10.1.1.1"), IP("10.1.1.2"), IP("10.1.1.4"))
GOLDEN = bytes.fromhex("fff0000c0a0101010a0101020a010104")


def test_golden_bytes() -> None:
    assert RelayPathTlv(SITES).encode() == GOLDEN


def test_rp_of_pcrep_golden_and_round_trip() -> None:
    rep = M.PCRep((M.Response(O.RP(7, tlvs=(RelayPathTlv(SITES),))),))
    # header | RP (class 2 type 1, P set, length 4 + 8 + 16) | flags | request ID | TLV
    assert rep.encode() == bytes.fromhex("200400200212001c0000000000000007") + GOLDEN
    back = M.decode_message(rep.encode())
    assert back == rep
    assert isinstance(back, M.PCRep) and back.responses[0].relay == SITES


def test_relay_in_lsp_of_pcinitiate() -> None:
    msg = ex.relay_pcinitiate()
    back = M.decode_message(msg.encode())
    assert isinstance(back, M.PCInitiate) and back.entries[0].relay == ex.RELAY_SITES


def test_absent_is_empty() -> None:
    (resp,) = ex.paper_pcrep().responses
    assert resp.relay == ()
    assert relay_of(with_relay((), ())) == ()
    assert relay_of(with_relay((RelayPathTlv(SITES),), SITES[:2])) == SITES[:2]


@pytest.mark.parametrize(
    "value", [b"", b"\x0a\x01\x01"], ids=["no site", "not a list of addresses"]
)
def test_bad_value_refused(value: bytes) -> None:
    rep = M.PCRep((M.Response(O.RP(1, tlvs=(UnknownTlv(qe.CODEPOINTS.pcep_relay_tlv, value),))),))
    with pytest.raises(DecodeError):
        M.decode_message(rep.encode())


def test_type_is_configuration() -> None:
    old = qe.CODEPOINTS
    try:
        qe.configure(pcep_relay_tlv=65510)
        raw = RelayPathTlv(SITES).encode()
        assert raw[:2] == (65510).to_bytes(2, "big")
        rep = M.PCRep((M.Response(O.RP(1, tlvs=(RelayPathTlv(SITES),))),))
        wire = rep.encode()
        back = M.decode_message(wire)
        assert isinstance(back, M.PCRep) and back.responses[0].relay == SITES
        qe.configure(pcep_relay_tlv=65520)
        other = M.decode_message(wire)  # 65510 is now just an unknown TLV
        assert isinstance(other, M.PCRep) and other.responses[0].relay == ()
    finally:
        qe.CODEPOINTS = old


@pytest.mark.interop
def test_tshark_decodes_relay_path(tmp_path: Path) -> None:
    assert TSHARK, REQUIRED
    pcap = tmp_path / "relay.pcap"
    plain = tuple(s for s in ex.fig9_ero() if not isinstance(s, ex.QeSubobject))
    rep = ex.relay_pcrep()
    rep = M.PCRep((dataclasses.replace(rep.responses[0], paths=(M.Path(O.Ero(plain)),)),))
    write_pcap(str(pcap), conversation([(False, rep.encode()), (True, _plain_init())]))
    args = ["-o", "tcp.check_checksum:TRUE", "-Y", "pcep", "-T", "fields", "-E", "separator=|"]
    fields = ["pcep.msg", "_ws.malformed", "_ws.expert", "pcep.tlv.type", "pcep.tlv.length"]
    rows = [
        r.split("|")
        for r in tshark.run(pcap, *args, *[a for f in fields for a in ("-e", f)]).splitlines()
    ]
    assert [r[0] for r in rows] == ["4", "12"]
    for r in rows:
        assert r[1] == "" and r[2] == "", f"PCEP message {r[0]} flagged: {r}"
    assert "65520" in rows[0][3].split(",") and "12" not in rows[0][4].split(",")
    assert "16" in rows[0][4].split(",")  # four sites
    assert "65520" in rows[1][3].split(",")
    assert tshark.run(pcap, "-Y", "_ws.malformed || _ws.expert.severity >= 4194304") == ""


def _plain_init() -> bytes:
    msg = ex.relay_pcinitiate()
    (entry,) = msg.entries
    plain = tuple(s for s in entry.ero.subobjects if not isinstance(s, ex.QeSubobject))  # type: ignore[union-attr]
    return M.PCInitiate((dataclasses.replace(entry, ero=O.Ero(plain)),)).encode()
