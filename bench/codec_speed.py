"""Encode and decode microseconds for the paper's messages, per protocol.

Run: ``.venv/bin/python bench/codec_speed.py [--quick] [--only ospf]``.

Each protocol contributes a section: a function returning ``{name: (encode_fn,
decode_fn)}``, where ``encode_fn()`` returns bytes and ``decode_fn(bytes)`` decodes them.
To add PCEP or RSVP, write ``def pcep_cases() -> Cases`` and add it to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

Cases = dict[str, tuple[Callable[[], bytes], Callable[[bytes], object]]]


def ospf_cases() -> Cases:
    from gmpls.ospf import examples as ex
    from gmpls.ospf import lsa, packet

    def pkt(p: packet.Packet) -> tuple[Callable[[], bytes], Callable[[bytes], object]]:
        return p.encode, packet.decode

    ri = ex.ri_lsa()

    def build_ri() -> bytes:
        # originate from scratch: body encode + Fletcher checksum
        return lsa.LSA.build(10, ri.header.ls_id, ex.TN1, 1, ri.body, options=0x42).encode()

    return {
        "OSPF Hello": pkt(ex.hello()),
        "OSPF DD (3 headers)": pkt(ex.dd()),
        "OSPF LS Request": pkt(ex.ls_request()),
        "OSPF LS Update (RI 0x12 + 3 TE LSAs)": pkt(ex.ls_update()),
        "OSPF LS Ack": pkt(ex.ls_ack()),
        "OSPF RI LSA originate/decode": (build_ri, lsa.LSA.decode),
        "OSPF TE Link LSA": (ex.te_link_lsa().encode, lsa.LSA.decode),
    }


#: protocol name -> function returning its cases; PCEP/RSVP add theirs here
SECTIONS: dict[str, Callable[[], Cases]] = {
    "ospf": ospf_cases,
}


def pcep_cases() -> Cases:
    """PCEP (RFC 5440): the paper's Open, PCReq with the Fig. 8 QE metrics, PCRep with the
    Fig. 9 ERO, and the QE parameters read back from the metrics."""
    from gmpls.pcep import examples as ex
    from gmpls.pcep.messages import PCReq, decode_message
    from gmpls.pcep.qemetrics import qe_params_from_metrics

    def qe_from_pcreq(raw: bytes) -> object:
        msg = decode_message(raw)
        assert isinstance(msg, PCReq)
        return qe_params_from_metrics(msg.requests[0].metrics)

    return {
        "PCEP Open": (ex.paper_open().encode, decode_message),
        "PCEP PCReq (Fig. 8 QE metrics)": (ex.paper_pcreq().encode, decode_message),
        "PCEP PCReq -> QeParams": (ex.paper_pcreq().encode, qe_from_pcreq),
        "PCEP PCRep (Fig. 9 ERO)": (ex.paper_pcrep().encode, decode_message),
    }


SECTIONS["pcep"] = pcep_cases


def rsvp_cases() -> Cases:
    """RSVP-TE (gmpls/rsvp): the paper's Path tn1 -> tn2 and Resv, and the other messages."""
    from gmpls.rsvp import examples as ex
    from gmpls.rsvp import message

    titles = {
        "path": "RSVP Path (Fig. 9 ERO, QE session ID)",
        "resv": "RSVP Resv (SE, FLOWSPEC, LABEL, RRO)",
        "path_err": "RSVP PathErr (IF_ID ERROR_SPEC)",
        "resv_err": "RSVP ResvErr",
        "path_tear": "RSVP PathTear",
        "resv_tear": "RSVP ResvTear",
        "resv_conf": "RSVP ResvConf",
        "hello": "RSVP Hello",
        "notify": "RSVP Notify",
        "ack": "RSVP Ack (RFC 2961)",
        "srefresh": "RSVP Srefresh (ACK, MESSAGE_ID_LIST of 3)",
        "bundle": "RSVP Bundle (Resv + Ack with a NACK)",
    }
    return {
        titles.get(k, f"RSVP {k}"): (m.encode, message.decode) for k, m in ex.all_examples().items()
    }


SECTIONS["rsvp"] = rsvp_cases


def _time(fn: Callable[[], object], budget: float) -> tuple[float, int]:
    n = 0
    t0 = time.perf_counter()
    while True:
        for _ in range(50):
            fn()
        n += 50
        dt = time.perf_counter() - t0
        if dt >= budget:
            return dt / n * 1e6, n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="0.05 s per measurement")
    ap.add_argument("--only", choices=sorted(SECTIONS), help="one protocol")
    args = ap.parse_args(argv)
    budget = 0.05 if args.quick else 0.5
    print(f"{'message':44} {'bytes':>6} {'encode us':>10} {'decode us':>10}")
    for name, section in SECTIONS.items():
        if args.only and name != args.only:
            continue
        for label, (enc, dec) in section().items():
            raw = enc()
            dec(raw)  # must decode before we time it
            e_us, _ = _time(enc, budget)
            d_us, _ = _time(lambda dec=dec, raw=raw: dec(raw), budget)  # type: ignore[misc]
            print(f"{label:44} {len(raw):6d} {e_us:10.1f} {d_us:10.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
