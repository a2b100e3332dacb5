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
- the stateful messages (RFC 8231, 8281, 8408) about the same LSP: :func:`stateful_open`,
  :func:`paper_pcrpt`, :func:`end_of_sync`, :func:`paper_pcupd`, :func:`paper_pcinitiate`,
  :func:`paper_release`.
"""

from __future__ import annotations

from dataclasses import replace
from ipaddress import IPv4Address
from typing import Any

from gmpls import qe
from gmpls.ero import Ipv4Prefix, Label, QeSubobject, Subobject, Unnumbered, lambda_label
from gmpls.pcep.constants import (
    SRP_FLAG_R,
    STATEFUL_FLAG_I,
    STATEFUL_FLAG_U,
    LspState,
    PathSetupType,
)
from gmpls.pcep.messages import (
    Attributes,
    LspEntry,
    Open,
    Path,
    PCInitiate,
    PCRep,
    PCReq,
    PCRpt,
    PCUpd,
    Request,
    Response,
)
from gmpls.pcep.objects import (
    RP,
    EndPointsIpv4,
    Ero,
    LspObject,
    OpenObject,
    Rro,
    Srp,
    lsp_flags,
)
from gmpls.pcep.qemetrics import qe_metrics
from gmpls.pcep.relay import RelayPathTlv
from gmpls.pcep.tlv import (
    Ipv4LspIdentifiersTlv,
    PathSetupTypeCapabilityTlv,
    StatefulCapabilityTlv,
    SymbolicPathNameTlv,
)

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


# stateful PCE (RFC 8231, 8281, 8408) ------------------------------------------------------

#: the symbolic name of the paper's QE LSP in the stateful examples
PAPER_LSP_NAME = b"qe-tn1-tn5"


def stateful_open(sid: int = 1, instantiation: bool = True) -> Open:
    """An Open with STATEFUL-PCE-CAPABILITY (U, and I when ``instantiation``) and
    PATH-SETUP-TYPE-CAPABILITY listing PST 0 (RSVP-TE) only: what this project's PCE sends."""
    flags = STATEFUL_FLAG_U | (STATEFUL_FLAG_I if instantiation else 0)
    tlvs = (
        StatefulCapabilityTlv(flags),
        PathSetupTypeCapabilityTlv((PathSetupType.RSVP_TE,)),
    )
    return Open(OpenObject(keepalive=30, deadtimer=120, sid=sid, tlvs=tlvs))


def paper_lsp(plsp_id: int = 1, **flags: Any) -> LspObject:
    """The LSP object of the paper's QE LSP tn1 -> tn5 (tunnel 1, LSP 1), ``flags`` as
    :func:`~gmpls.pcep.objects.lsp_flags` takes them."""
    ids = Ipv4LspIdentifiersTlv(TN1, 1, 1, TN1, TN5)
    tlvs = (SymbolicPathNameTlv(PAPER_LSP_NAME), ids)
    return LspObject(plsp_id, lsp_flags(**flags), tlvs)


def paper_pcrpt(plsp_id: int = 1, sync: bool = False) -> PCRpt:
    """tn1 reports the paper's QE LSP up and delegated, on the Fig. 9 path (ERO and RRO)."""
    route = Ero(fig9_ero())
    lsp = paper_lsp(plsp_id, delegate=True, sync=sync, admin=True, state=LspState.UP)
    rro = Rro(tuple(s for s in route.subobjects if not isinstance(s, QeSubobject)))
    return PCRpt((LspEntry(lsp, ero=route, rro=rro),))


def end_of_sync() -> PCRpt:
    """RFC 8231 §5.6: the end-of-synchronisation marker (PLSP-ID 0, S clear, empty ERO)."""
    return PCRpt((LspEntry(LspObject(0), ero=Ero()),))


def paper_pcupd(srp_id: int = 1, plsp_id: int = 1) -> PCUpd:
    """The PCE moves the paper's LSP onto the Fig. 9 route on channel 2."""
    lsp = paper_lsp(plsp_id, delegate=True, admin=True, state=LspState.UP)
    return PCUpd((LspEntry(lsp, Srp(srp_id), Ero(fig9_ero(channel=2))),))


def paper_pcinitiate(srp_id: int = 1) -> PCInitiate:
    """The PCE asks tn1 to set up the paper's QE service to tn5 (RFC 8281 §5.1)."""
    lsp = LspObject(0, lsp_flags(delegate=True, admin=True, create=True),
                    (SymbolicPathNameTlv(PAPER_LSP_NAME),))  # fmt: skip
    entry = LspEntry(
        lsp,
        Srp(srp_id),
        Ero(fig9_ero()),
        Attributes(metrics=qe_metrics(PAPER_QE)),
        endpoints=EndPointsIpv4(TN1, TN5),
    )
    return PCInitiate((entry,))


def paper_release(srp_id: int = 2, plsp_id: int = 1) -> PCInitiate:
    """RFC 8281 §5.4: the PCE removes the LSP it initiated (SRP R flag, no ERO)."""
    return PCInitiate((LspEntry(LspObject(plsp_id), Srp(srp_id, SRP_FLAG_R)),))


# key relay path (docs/pcep.md#the-relay-path-tlv) ----------------------------------------

#: a relay path from site 10.1.1.1 to site 10.1.1.4 through two trusted sites
RELAY_SITES = tuple(IPv4Address(f"10.1.1.{n}") for n in (1, 2, 3, 4))


def relay_pcrep(request_id: int = 1) -> PCRep:
    """The paper's PCRep with a key relay path in its RP object."""
    rp = RP(request_id, tlvs=(RelayPathTlv(RELAY_SITES),))
    return PCRep((Response(rp, paths=(Path(Ero(fig9_ero())),)),))


def relay_pcinitiate(srp_id: int = 1) -> PCInitiate:
    """The paper's PCInitiate with a key relay path in its LSP object."""
    (entry,) = paper_pcinitiate(srp_id).entries
    lsp = replace(entry.lsp, tlvs=(*entry.lsp.tlvs, RelayPathTlv(RELAY_SITES)))
    return PCInitiate((replace(entry, lsp=lsp),))
