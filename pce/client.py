"""``python -m pce.client --pce ADDR --src A --dst B [--qe] [--json]``: one path request.

Opens a PCEP session to the PCE with :class:`daemonkit.pcep.PcepClient`, sends one PCReq
(with the QE METRIC objects when ``--qe`` or ``--algorithm`` is given) and prints the ERO
one subobject per line, or NO-PATH with the PCE's reason; ``--json`` prints one object
(``ok``, ``ero``, ``ero_hex``, ``reason``). Exit status 0 for a path, 1 for NO-PATH, 2 when
the PCE cannot be reached or answers with an error.
"""

from __future__ import annotations

import asyncio
import json
import sys

from daemonkit import reach
from daemonkit.daemon import command_parser
from daemonkit.pcep import PcepClient, PcepError, Reply
from gmpls import qe
from gmpls.ero import (
    Ipv4Prefix,
    Label,
    QeSubobject,
    Subobject,
    Unnumbered,
    encode_subobjects,
    lambda_channel,
)
from gmpls.pcep.constants import PORT


def _subobject_text(s: Subobject) -> str:
    if isinstance(s, Unnumbered):
        return f"{s.router_id}:{s.interface_id}"
    if isinstance(s, Label):
        return f"label 0x{s.label:08x} (n={lambda_channel(s.label)})"
    if isinstance(s, Ipv4Prefix):
        return f"{s.address}/{s.prefix_len}"
    if isinstance(s, QeSubobject):
        sid = "zero" if not s.has_session else s.session_id.hex()[:16] + "..."
        return (
            f"QE(layer={s.enc_layer}, alg={s.algorithm}, key={s.key_length}B, "
            f"refresh={s.refresh_value}/{s.refresh_type}, session {sid})"
        )
    return type(s).__name__


def main(argv: list[str] | None = None) -> int:
    """One PCReq to the PCE; print its answer (see the module docstring)."""
    p = command_parser("pce.client", __doc__)
    p.add_argument("--pce", required=True, help="PCE address")
    p.add_argument("--port", type=int, default=PORT)
    p.add_argument("--src", required=True)
    p.add_argument("--dst", required=True)
    p.add_argument("--qe", action="store_true", help="QE service with the paper's parameters")
    p.add_argument("--algorithm", type=int, help="QE algorithm code (gmpls.qe.Algorithm)")
    p.add_argument("--bandwidth", type=float, default=0.0, help="bytes per second")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=10.0)
    p.add_argument("--any-route", action="store_true", help="send even by the default route")
    a = p.parse_args(argv)
    far = None if a.any_route else reach.not_local(a.pce)
    if far is not None:
        print(f"pce.client: {far}{reach.TESTBED_HINT}", file=sys.stderr)
        return 2
    params = None
    if a.qe or a.algorithm is not None:
        params = qe.QeParams() if a.algorithm is None else qe.QeParams(algorithm=a.algorithm)

    async def go() -> Reply:
        client = PcepClient(a.pce, a.port, reconnect=False)
        await client.start()
        try:
            await client.wait_up(a.timeout)
            return await client.request(a.src, a.dst, params, a.bandwidth, timeout=a.timeout)
        finally:
            await client.close()

    try:
        reply = asyncio.run(go())
    except PcepError as e:
        print(f"pcc: {e}", file=sys.stderr)
        return 2
    ero = [_subobject_text(s) for s in reply.ero]
    if a.json:
        print(
            json.dumps(
                {
                    "ok": reply.ok,
                    "ero": ero,
                    "ero_hex": encode_subobjects(reply.ero).hex(),
                    "reason": reply.reason,
                }
            )
        )
    elif reply.ok:
        print("\n".join(ero))
    else:
        print(f"NO-PATH: {reply.reason}")
    return 0 if reply.ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
