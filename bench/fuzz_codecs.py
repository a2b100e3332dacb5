"""Mutation fuzzing of the codecs: decoding must raise nothing but DecodeError.

Run: ``.venv/bin/python bench/fuzz_codecs.py [--quick] [--only ospf] [--count N]``.
Default 1,000,000 mutations per protocol (``--quick``: 20,000). Prints, per protocol, how
many inputs were tried, how many decoded, how many were rejected with DecodeError (by
field), and any other exception (which is a bug: the exit status is then 1).

Each protocol contributes a section: a list of ``(seed, decode_fn, keep)`` — a valid
encoded message, the function that decodes it, and how many leading bytes (the fixed
header) mutations mostly spare. Add PCEP/RSVP to :data:`SECTIONS`.
"""

from __future__ import annotations

import argparse
import collections
import random
import sys
import time
import traceback
from collections.abc import Callable

from gmpls.errors import DecodeError

#: (valid message to mutate, the function that decodes it, length of its fixed header that
#: mutations mostly spare) triples
Section = list[tuple[bytes, Callable[[bytes], object], int]]


def _fix_len(b: bytes) -> bytes:
    return b[:2] + len(b).to_bytes(2, "big") + b[4:] if len(b) >= 4 else b


def ospf_section() -> Section:
    from gmpls.ospf import examples as ex
    from gmpls.ospf import lsa, packet

    packets = [ex.hello(), ex.dd(), ex.ls_request(), ex.ls_update(), ex.ls_ack()]
    out: Section = []
    for p in packets:
        raw = p.encode()
        out.append((raw, lambda b: packet.decode(b, verify_checksum=False), 24))
        out.append((raw, packet.decode, 24))
        # with the header length made consistent, so insertions reach the TLV loops
        out.append((raw, lambda b: packet.decode(_fix_len(b), verify_checksum=False), 24))
    for a in ex.ls_update().body.lsas:
        # the body is decoded lazily: read it (it becomes a MalformedBody, never an error)
        out.append((a.encode(), lambda b: lsa.LSA.decode(b, verify=False).body, 20))
    return out


#: protocol name -> function returning its section
SECTIONS: dict[str, Callable[[], Section]] = {
    "ospf": ospf_section,
}


def pcep_section() -> Section:
    """PCEP (RFC 5440): the paper's Open, PCReq (Fig. 8) and PCRep (Fig. 9), plus a PCErr
    and a NO-PATH reply; the 4-byte common header is mostly spared."""
    from gmpls.pcep import examples as ex
    from gmpls.pcep.messages import PCErr, PCRep, Response, decode_message
    from gmpls.pcep.objects import RP, NoPath
    from gmpls.pcep.tlv import NoPathVectorTlv

    msgs = [
        ex.paper_open(),
        ex.paper_pcreq(),
        ex.paper_pcrep(),
        PCErr.of((6, 3), rps=(RP(9),)),
        PCRep((Response(RP(2), no_path=NoPath(tlvs=(NoPathVectorTlv(2),))),)),
    ]
    out: Section = []
    for m in msgs:
        raw = m.encode()
        out.append((raw, decode_message, 4))
        out.append((raw, lambda b: decode_message(_fix_len(b)), 4))
    return out


SECTIONS["pcep"] = pcep_section


def _rsvp_unchecked(b: bytes) -> bytes:
    """Checksum zeroed (= none, RFC 2205) and the header length made consistent, so
    mutations reach the object loops."""
    if len(b) < 8:
        return b
    return b[:2] + b"\x00\x00" + b[4:6] + len(b).to_bytes(2, "big") + b[8:]


def rsvp_section() -> Section:
    from gmpls.rsvp import examples as ex
    from gmpls.rsvp import message

    out: Section = []
    for m in ex.all_examples().values():
        raw = m.encode()
        out.append((raw, message.decode, 8))
        # twice: most mutations should get past the checksum into the objects
        out.append((raw, lambda b: message.decode(_rsvp_unchecked(b)), 8))
        out.append((raw, lambda b: message.decode(_rsvp_unchecked(b)), 8))
    return out


SECTIONS["rsvp"] = rsvp_section


def mutate(rng: random.Random, data: bytes, keep: int = 0) -> bytes:
    """Apply 1-4 random edits; most of them after the first ``keep`` bytes (the fixed
    header) so that the decoders get past it and into the TLVs."""
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        lo = keep if len(b) > keep and rng.random() < 0.85 else 0
        op = rng.randrange(6)
        if op == 0 and len(b) > lo:  # overwrite a byte
            b[rng.randrange(lo, len(b))] = rng.randrange(256)
        elif op == 1 and len(b) > lo:  # flip a bit
            i = rng.randrange(lo, len(b))
            b[i] ^= 1 << rng.randrange(8)
        elif op == 2:  # truncate
            del b[rng.randrange(lo, len(b) + 1) :]
        elif op == 3:  # insert random bytes
            i = rng.randrange(lo, len(b) + 1)
            b[i:i] = rng.randbytes(rng.randint(1, 8))
        elif op == 4 and len(b) > lo + 2:  # interesting 16-bit values (lengths, counts)
            i = rng.randrange(lo, len(b) - 1)
            b[i : i + 2] = rng.choice([0, 1, 3, 4, 0xFF, 0xFFFF, len(b), len(b) + 4]).to_bytes(
                2, "big"
            )
        elif len(b) > lo:  # delete a slice
            i = rng.randrange(lo, len(b))
            del b[i : i + rng.randint(1, 8)]
    return bytes(b)


def run(name: str, section: Section, count: int, seed: int) -> int:
    rng = random.Random(seed)
    ok = 0
    rejected: collections.Counter[str] = collections.Counter()
    bugs = 0
    t0 = time.perf_counter()
    for i in range(count):
        seed_bytes, dec, keep = section[i % len(section)]
        data = mutate(rng, seed_bytes, keep) if i % 20 else rng.randbytes(rng.randint(0, 300))
        try:
            dec(data)
            ok += 1
        except DecodeError as e:
            rejected[e.field.split("[")[0]] += 1
        except Exception:
            bugs += 1
            if bugs <= 5:
                print(f"BUG in {name} on input {data.hex()}:", file=sys.stderr)
                traceback.print_exc()
    dt = time.perf_counter() - t0
    print(
        f"{name}: {count} mutations in {dt:.1f} s ({count / dt:,.0f}/s): "
        f"{ok} decoded, {sum(rejected.values())} DecodeError, {bugs} other exceptions"
    )
    for field, n in rejected.most_common(8):
        print(f"    {n:8d}  {field}")
    return bugs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="20,000 mutations per protocol")
    ap.add_argument("--count", type=int, help="mutations per protocol")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", choices=sorted(SECTIONS))
    args = ap.parse_args(argv)
    count = args.count or (20_000 if args.quick else 1_000_000)
    bugs = 0
    for name, section in SECTIONS.items():
        if args.only and name != args.only:
            continue
        bugs += run(name, section(), count, args.seed)
    return 1 if bugs else 0


if __name__ == "__main__":
    raise SystemExit(main())
