"""The paper's PCEP messages (Aguado et al. 2017, Figs. 8 and 9), built once for tests,
benchmarks and the demo's documentation.

- :func:`paper_pcreq` — tn1 (10.1.1.1) asks for a QE service to tn5 (10.1.1.5) with the
  four QE metrics of Fig. 8: key length 32 (255), layer 2 Ethernet (254), algorithm 10
  AES-256-GCM (253), refresh value 1000 (252; refresh type absent = time, ms).
- :func:`fig9_ero` — the ERO of Fig. 9 (docs/design.md#the-qe-ero-subobject): each hop's
  outgoing unnumbered
  interface followed by the label subobject of the lambda used on that link (RFC 6205,
  channel 1 on the 100 GHz grid: the first fit on the paper's eight free lambdas), the
  destination as 10.1.1.5/32, and a QE subobject (session ID zero) right after the source's
  first subobject and right after the destination's prefix.
- :func:`paper_pcrep` — the PCRep carrying that ERO.
"""

from __future__ import annotations

from ipaddress import IPv4Address

from gmpls import qe
from gmpls.ero import Ipv4Prefix, Label, QeSubobject, Subobject, Unnumbered, lambda_label
from gmpls.pcep.messages import Open, Path, PCRep, PCReq, Request, Response
from gmpls.pcep.objects import RP, EndPointsIpv4, Ero, OpenObject
from gmpls.pcep.qemetrics import qe_metrics

TN1 = IPv4Address("10.1.1.1")
TN5 = IPv4Address("10.1.1.5")

#: the service of Fig. 8
PAPER_QE = qe.QeParams(
    key_length=32,
    enc_layer=qe.EncLayer.ETHERNET,
    algorithm=qe.Algorithm.AES_256_GCM,
    refresh_value=1000,
    refresh_type=qe.RefreshType.TIME_MS,
)

#: (router, outgoing interface) per hop of Fig. 9
FIG9_HOPS = ((1, 1), (2, 1), (3, 3), (4, 3))


def fig9_ero(params: qe.QeParams = PAPER_QE, channel: int = 1) -> tuple[Subobject, ...]:
    qe_sub = QeSubobject.from_params(params)
    label = Label(lambda_label(channel))
    out: list[Subobject] = []
    for i, (node, ifid) in enumerate(FIG9_HOPS):
        out.append(Unnumbered(IPv4Address(f"10.1.1.{node}"), ifid))
        if i == 0:
            out.append(qe_sub)
        out.append(label)
    out.append(Ipv4Prefix(TN5, 32))
    out.append(qe_sub)
    return tuple(out)


def paper_open(sid: int = 1) -> Open:
    return Open(OpenObject(keepalive=30, deadtimer=120, sid=sid))


def paper_pcreq(request_id: int = 1) -> PCReq:
    return PCReq((Request(RP(request_id), EndPointsIpv4(TN1, TN5), metrics=qe_metrics(PAPER_QE)),))


def paper_pcrep(request_id: int = 1) -> PCRep:
    return PCRep((Response(RP(request_id), paths=(Path(Ero(fig9_ero())),)),))
