"""Stateful PCEP codec (RFC 8231, 8281, 8408): golden bytes, grammars, mandatory objects.

The golden bytes are written out field by field from the RFCs' figures; the tshark test
(tests/pcep/test_pcep_tshark.py) decodes the same messages independently.
"""

from __future__ import annotations

import ipaddress

import pytest

from gmpls.errors import DecodeError
from gmpls.pcep import constants as C
from gmpls.pcep import examples as ex
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.tlv import decode_tlvs
from gmpls.wire import Reader

IP = ipaddress.IPv4Address


def _frame(mtype: int, body: bytes) -> bytes:
    return bytes([0x20, mtype]) + (4 + len(body)).to_bytes(2, "big") + body


# golden bytes ----------------------------------------------------------------------------


def test_stateful_open_golden() -> None:
    """RFC 8231 §7.1.1 (U = 0x1), RFC 8281 §4.1 (I = 0x4), RFC 8408 §3 (one PST, padded)."""
    expected = (
        "2001 0020"  # Open, 32 bytes
        "0110 001c 201e7801"  # OPEN object: version 1, keepalive 30, deadtimer 120, SID 1
        "0010 0004 00000005"  # STATEFUL-PCE-CAPABILITY: U | I
        "0022 0008 000000 01 00 000000"  # PATH-SETUP-TYPE-CAPABILITY: 1 PST: 0, padding
    )
    assert ex.stateful_open(1).encode() == bytes.fromhex(expected.replace(" ", ""))


def test_pst_capability_with_sr_sub_tlv_golden() -> None:
    """RFC 8408 §3 with RFC 8664 §4.1.2's SR-PCE-CAPABILITY sub-TLV (what pathd sends)."""
    t = T.PathSetupTypeCapabilityTlv((0, 1), (T.SrPceCapabilityTlv(0, 10),))
    raw = bytes.fromhex("0022 0010 000000 02 0001 0000 001a 0004 0000 00 0a".replace(" ", ""))
    assert t.encode() == raw
    assert decode_tlvs(Reader(raw, "t"), T.TLVS) == (t,)


def test_lsp_object_golden() -> None:
    """RFC 8231 §7.3: PLSP-ID(20) flags(12: O=1 A D), SYMBOLIC-PATH-NAME padded to four,
    IPV4-LSP-IDENTIFIERS."""
    lsp = ex.paper_lsp(1, delegate=True, admin=True, state=C.LspState.UP)
    expected = (
        "2010 002c"  # class 32, type 1, 44 bytes
        "00001 019"  # PLSP-ID 1, flags O=1 (UP), A, D
        "0011 000a 71652d746e312d746e35 0000"  # "qe-tn1-tn5" + 2 bytes of padding
        "0012 0010 0a010101 0001 0001 0a010101 0a010105"  # sender, LSP ID, tunnel, ext, end
    )
    assert lsp.encode() == bytes.fromhex(expected.replace(" ", ""))
    assert lsp.delegated and not lsp.sync and lsp.state is C.LspState.UP
    assert lsp.name == "qe-tn1-tn5" and lsp.identifiers is not None
    assert lsp.identifiers.endpoint == IP("10.1.1.5")


def test_end_of_sync_golden() -> None:
    """RFC 8231 §5.6: PCRpt, LSP with PLSP-ID 0 and S clear, an empty ERO."""
    raw = bytes.fromhex("200a0010201000080000000007100004")
    assert ex.end_of_sync().encode() == raw
    msg = M.decode_message(raw)
    assert isinstance(msg, M.PCRpt) and msg.entries[0].lsp.end_of_sync


def test_release_golden() -> None:
    """RFC 8281 §5.4: PCInitiate, SRP with R (remove), LSP naming the PLSP-ID, no ERO."""
    raw = bytes.fromhex("200c00182110000c00000001000000022010000800001000")
    assert ex.paper_release(2, 1).encode() == raw
    msg = M.decode_message(raw)
    assert isinstance(msg, M.PCInitiate)
    assert msg.entries[0].srp is not None and msg.entries[0].srp.remove
    assert msg.entries[0].ero is None


def test_srp_with_path_setup_type_golden() -> None:
    srp = O.Srp(7, tlvs=(T.PathSetupTypeTlv(C.PathSetupType.SR),))
    assert srp.encode() == bytes.fromhex("211000140000000000000007001c000400000001")
    assert srp.pst == 1 and O.Srp(1).pst == 0


# grammars --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "msg",
    [
        ex.paper_pcrpt(),
        ex.paper_pcrpt(sync=True),
        ex.end_of_sync(),
        ex.paper_pcupd(),
        ex.paper_pcinitiate(),
        ex.paper_release(),
    ],
)
def test_stateful_messages_round_trip(msg: M.AnyMessage) -> None:
    raw = msg.encode()
    assert M.decode_message(raw) == msg and M.decode_message(raw).encode() == raw


def test_report_parts() -> None:
    rpt = M.decode_message(ex.paper_pcrpt().encode())
    assert isinstance(rpt, M.PCRpt)
    (e,) = rpt.entries
    assert e.srp is None and e.ero is not None and e.rro is not None
    assert e.ero.subobjects == ex.fig9_ero()


def test_several_reports_split_at_srp_and_lsp() -> None:
    """An SRP opens a report, so does an LSP that does not follow its SRP."""
    a = M.LspEntry(O.LspObject(1), O.Srp(5), O.Ero())
    b = M.LspEntry(O.LspObject(2), None, O.Ero(), rro=O.Rro())
    c = M.LspEntry(O.LspObject(3), O.Srp(6), O.Ero(), M.Attributes(bandwidth=O.Bandwidth(1.0)))
    msg = M.decode_message(M.PCRpt((a, b, c)).encode())
    assert isinstance(msg, M.PCRpt) and msg.entries == (a, b, c)


@pytest.mark.parametrize(
    ("mtype", "objs", "code"),
    [
        (10, [O.Srp(1), O.Ero()], C.ERR_LSP_MISSING),
        (10, [O.LspObject(1)], C.ERR_ERO_MISSING),
        (11, [O.LspObject(1), O.Ero()], C.ERR_SRP_MISSING),
        (11, [O.Srp(1), O.LspObject(1)], C.ERR_ERO_MISSING),
        (12, [O.LspObject(0), O.Ero()], C.ERR_SRP_MISSING),
        (12, [O.Srp(1), O.LspObject(0)], C.ERR_ERO_MISSING),
        (12, [O.Srp(1)], C.ERR_LSP_MISSING),
        (10, [O.Ero()], C.ERR_LSP_MISSING),
    ],
)
def test_mandatory_objects(mtype: int, objs: list[O.PcepObject], code: tuple[int, int]) -> None:
    """RFC 8231 §8.5: a missing LSP is (6, 8), ERO (6, 9), SRP (6, 10)."""
    with pytest.raises(DecodeError) as e:
        M.decode_message(_frame(mtype, b"".join(o.encode() for o in objs)))
    assert e.value.code == code


def test_pcerr_names_srps() -> None:
    """RFC 8231 §6.3: a PCErr about a PCUpd names it by its SRP."""
    err = M.PCErr((M.ErrorBlock((O.ErrorObject(*C.ERR_UPDATE_UNKNOWN_PLSP),), (O.Srp(9),)),))
    back = M.decode_message(err.encode())
    assert back == err and isinstance(back, M.PCErr) and back.codes == [(19, 3)]


def test_plsp_id_and_flags_bounds() -> None:
    from gmpls.errors import EncodeError

    with pytest.raises(EncodeError):
        O.LspObject(1 << 20).encode()
    with pytest.raises(EncodeError):
        O.LspObject(1, 0x1000).encode()


def test_empty_symbolic_name_and_pst_list_refused() -> None:
    for raw in (bytes.fromhex("00110000"), bytes.fromhex("0022000400000000")):
        with pytest.raises(DecodeError):
            decode_tlvs(Reader(raw, "t"), T.TLVS)
