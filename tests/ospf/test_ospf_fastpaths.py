"""The per-packet shortcuts of the OSPF codec and core (docs/performance.md) change
nothing on the wire: decode errors name the same field with the same reason, a Hello
sent again is the bytes a fresh encode gives (the LSDB age scan skipped on most Ticks:
tests/ospf/test_ospf_core.py ages LSAs out and refreshes them), the LS Updates, LS Acks
and DDs built from the LSAs' bytes are what the message classes encode, and an LSA
decoded again (the process-wide cache) is checked like a first one."""

from __future__ import annotations

import struct

import pytest

from gmpls.checksum import inet_checksum
from gmpls.core import Tick
from gmpls.errors import DecodeError
from gmpls.ospf import examples as ex
from gmpls.ospf import packet as P
from gmpls.ospf.events import AuthConfig, Send
from gmpls.ospf.lsa import LSA
from gmpls.ospf.router import OspfRouter
from tests.ospf.test_ospf_core import converged_lan, iface
from tests.support.ospf_lab import Lab


def _cut(raw: bytes, cut: int) -> bytes:
    """The first ``cut`` bytes, the header's length and checksum made to agree with them
    (so that only the content is short)."""
    data = bytearray(raw[:cut])
    if cut >= 4:
        data[2:4] = struct.pack("!H", cut)
    if cut >= 24:
        data[12:14] = b"\x00\x00"
        data[12:14] = struct.pack("!H", inet_checksum(bytes(data[:16] + data[24:])))
    return bytes(data)


# recorded from the field-by-field decoder the header fast path replaced
ERRORS = [
    (0, "ospf.header.version", "truncated: needs 1 bytes, 0 left"),
    (1, "ospf.header.type", "truncated: needs 1 bytes, 0 left"),
    (3, "ospf.header.length", "truncated: needs 2 bytes, 1 left"),
    (4, "ospf.header.length", "4 with 4 bytes received"),
    (23, "ospf.header.length", "23 with 23 bytes received"),
    (27, "ospf.LSUpdate.count", "truncated: needs 4 bytes, 3 left"),
    (40, "ospf.LSUpdate.count", "4 LSAs cannot fit in 12 bytes"),
    (200, "ospf.LSUpdate.lsa[10/1.0.0.1/10.1.1.1]", "truncated: needs 148 bytes, 96 left"),
    (427, "ospf.LSUpdate.lsa[10/1.0.0.2/10.1.1.1]", "truncated: needs 156 bytes, 155 left"),
]


@pytest.mark.parametrize(("cut", "field", "reason"), ERRORS)
def test_decode_errors_name_the_same_field(cut: int, field: str, reason: str) -> None:
    with pytest.raises(DecodeError) as e:
        P.decode(_cut(ex.ls_update().encode(), cut))
    assert (e.value.field, e.value.reason) == (field, reason)


def test_a_short_packet_with_a_wrong_version_says_so() -> None:
    with pytest.raises(DecodeError) as e:
        P.decode(b"\x03\x01")
    assert e.value.field == "ospf.header.version"


def _hellos(actions: list[object]) -> list[bytes]:
    return [a.data for a in actions if isinstance(a, Send) and a.data[1] == 1]


def _hello_now(lab: Lab, r: OspfRouter) -> bytes:
    """Make the Hello of ``r`` due and return what the Tick sends."""
    iface(r).hello_at = lab.now
    (data,) = _hellos(r.handle(Tick(), lab.now))
    return data


def test_an_unchanged_hello_is_the_same_bytes_a_fresh_encode_gives() -> None:
    lab, rs = converged_lan(3)
    r = rs[0]
    first, again = _hello_now(lab, r), _hello_now(lab, r)
    assert again is first  # not encoded again
    body = iface(r).hello_sent[0]  # type: ignore[index]
    assert first == P.Packet(r.router_id, r.area, body).encode()
    # a neighbour fewer: a new Hello, with the remaining neighbours only
    lab.kill(rs[2])
    lab.sim.run(10)
    changed = _hello_now(lab, r)
    assert changed != first and rs[2].router_id.packed not in changed[44:]
    assert changed == P.Packet(r.router_id, r.area, iface(r).hello_sent[0]).encode()  # type: ignore[index]


def test_md5_hellos_are_signed_each_time() -> None:
    lab, rs = converged_lan(2, auth=AuthConfig(autype=2, key=b"quantum", key_id=7))
    a, b = _hello_now(lab, rs[0]), _hello_now(lab, rs[0])
    assert a != b and P.verify_md5(a, b"quantum") and P.verify_md5(b, b"quantum")
    assert P.decode(b).auth.crypto_seq > P.decode(a).auth.crypto_seq


def _sent(lab: Lab, rs: list[OspfRouter]) -> list[bytes]:
    """Every packet the routers send from the start until they are synchronised, with
    each router originating an opaque LSA once its LAN has elected."""
    from tests.ospf.test_ospf_core import _ri

    lab.record = True
    lab.start()
    lab.sim.run(6)
    for r in rs:
        lab.feed(r, _ri(te=True))
    lab.run_until_converged(60)
    return [s.data for _, _, s in lab.sent]


def test_packets_built_from_lsa_bytes_are_what_the_message_classes_encode() -> None:
    from tests.ospf.test_ospf_core import lan_lab

    lab, rs = lan_lab(4)
    by_type: dict[int, int] = {}
    for data in _sent(lab, rs):
        pkt = P.decode(data)
        by_type[pkt.type] = by_type.get(pkt.type, 0) + 1
        if isinstance(pkt.body, P.LSUpdate):
            for a in pkt.body.lsas:
                # each LSA as sent: a fresh build of its body at the age it was sent with
                h = a.header
                fresh = LSA.build(
                    h.ls_type, h.ls_id, h.adv_router, h.seq, a.body, options=h.options, age=h.age
                )
                assert a.checksum_ok and a.encode() == fresh.encode(), h
            continue
        # DDs and Acks: the headers encoded again field by field give the same packet
        assert P.Packet(pkt.router_id, pkt.area_id, pkt.body).encode() == data, pkt
    assert by_type.keys() >= {2, 3, 4, 5}, by_type  # DDs, requests, updates and acks seen


def test_an_lsa_decoded_again_is_the_same_object_and_checked_the_same() -> None:
    raw = ex.te_link_lsa().encode()
    first = LSA.decode(raw)
    assert LSA.decode(raw) is first and first.encode() == raw and first.body.encode_body()
    bad = raw[:-1] + bytes([raw[-1] ^ 0x01])
    # an LS Update frames it without checking (the router drops it each time it comes);
    # while that copy is held, a checking decode finds it and still refuses it, twice
    held = LSA.decode(bad, verify=False)
    assert not held.checksum_ok and LSA.decode(bad, verify=False) is held
    for _ in range(2):
        with pytest.raises(DecodeError, match="checksum"):
            LSA.decode(bad)
