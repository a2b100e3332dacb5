"""FRR-style views of an :class:`~gmpls.ospf.router.OspfRouter`: JSON-ready dicts and the
text tables of ``show ip ospf neighbor|interface|database|route`` (pure functions; the
CLIs of the node agent and the PCE render them).

The JSON keys follow FRR's ``show ip ospf ... json`` where FRR has an equivalent
(``neighbors``, ``interfaces``, ``routerLinkStates``, ``nexthops`` ...), so scripts
written against FRR read ours with few changes.
"""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from gmpls.ospf.constants import MAX_AGE, LsType, OpaqueType
from gmpls.ospf.fsm import IF_STATE_NAMES, NBR_STATE_NAMES, IfState
from gmpls.ospf.lsa import LSA, MalformedBody, RouterLSA, UnknownBody
from gmpls.ospf.qkdlink import QkdLinkTlv
from gmpls.ospf.ri import FunctionalCapabilities, InformationalCapabilities, RouterInfoLSA
from gmpls.ospf.router import COUNTERS, Interface, Neighbor, OspfRouter
from gmpls.ospf.te import (
    AdminGroup,
    AvailableLabels,
    Link,
    LinkId,
    LinkLocalRemoteIds,
    LinkProtection,
    LinkType,
    LocalAddresses,
    MaxBandwidth,
    MaxReservableBandwidth,
    RemoteAddresses,
    RouterAddress,
    Srlg,
    SwitchingCapability,
    TeLSA,
    TeMetric,
    UnreservedBandwidth,
)
from gmpls.rsvp.constants import SwitchingType
from gmpls.tlv import UnknownTlv

#: switching capability names as FRR shows them ("PSC-1", "LSC")
SWITCHING = {int(t): t.name.replace("PSC", "PSC-") for t in SwitchingType}
LINK_TYPES = {1: "p2p", 2: "transit", 3: "stub", 4: "virtual"}


def _dur(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h:02d}:{m:02d}:{s:02d}"


def _role(iface: Interface, n: Neighbor) -> str:
    if iface.p2p:
        return "-"
    if n.address == iface.dr:
        return "DR"
    if n.address == iface.bdr:
        return "Backup"
    return "DROther"


def neighbors(r: OspfRouter, now: float) -> dict[str, Any]:
    out: dict[str, list[dict[str, Any]]] = {}
    for iface, n in sorted(r.neighbors(), key=lambda x: int(x[1].router_id)):
        state = NBR_STATE_NAMES[n.state]
        out.setdefault(str(n.router_id), []).append(
            {
                "priority": n.priority,
                "state": f"{state}/{_role(iface, n)}",
                "nbrState": state,
                "role": _role(iface, n),
                "upTimeInMsec": int((now - n.last_change) * 1000),
                "deadTimeMsecs": int(max(0.0, (n.inactivity_at or now) - now) * 1000),
                "ifaceAddress": str(n.address),
                "ifaceName": f"{iface.name}:{iface.ip}",
                "retransmitCounter": len(n.rxmt),
                "requestCounter": len(n.requests),
                "dbSummaryCounter": len(n.summary),
            }
        )
    return {"neighbors": out}


def neighbors_text(data: dict[str, Any]) -> str:
    lines = [
        f"{'Neighbor ID':<16}{'Pri':>3} {'State':<16}{'Up Time':>9} {'Dead Time':>10} "
        f"{'Address':<16}{'Interface':<24}{'RXmtL':>6}{'RqstL':>6}{'DBsmL':>6}"
    ]
    for rid, entries in data["neighbors"].items():
        for e in entries:
            lines.append(
                f"{rid:<16}{e['priority']:>3} {e['state']:<16}"
                f"{_dur(e['upTimeInMsec'] / 1000):>9} {e['deadTimeMsecs'] / 1000:>9.3f}s "
                f"{e['ifaceAddress']:<16}{e['ifaceName']:<24}"
                f"{e['retransmitCounter']:>6}{e['requestCounter']:>6}{e['dbSummaryCounter']:>6}"
            )
    return "\n".join(lines)


def interfaces(r: OspfRouter, now: float) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for iface in r.interfaces.values():
        c = iface.config

        def rid_of(addr: IPv4Address, iface: Interface = iface) -> str:
            if addr == iface.ip:
                return str(r.router_id)
            for n in iface.neighbors.values():
                if n.address == addr:
                    return str(n.router_id)
            return "0.0.0.0"

        out[iface.name] = {
            "ifUp": iface.state != IfState.DOWN,
            "ipAddress": str(c.address.ip),
            "ipAddressPrefixlen": c.address.network.prefixlen,
            "area": str(r.area),
            "routerId": str(r.router_id),
            "networkType": "POINTOPOINT" if iface.p2p else "BROADCAST",
            "passive": c.passive,
            "cost": c.cost,
            "mtuBytes": c.mtu,
            "state": IF_STATE_NAMES[iface.state],
            "priority": c.priority,
            "drId": rid_of(iface.dr) if iface.dr != IPv4Address(0) else "0.0.0.0",
            "drAddress": str(iface.dr),
            "bdrId": rid_of(iface.bdr) if iface.bdr != IPv4Address(0) else "0.0.0.0",
            "bdrAddress": str(iface.bdr),
            "authType": ["null", "simple", "md5"][c.auth.autype] if c.auth.autype < 3 else "?",
            "timerMsecs": c.hello_interval * 1000,
            "timerDeadSecs": c.dead_interval,
            "timerRetransmitSecs": c.rxmt_interval,
            "transmitDelaySecs": c.transmit_delay,
            "nbrCount": len(iface.neighbors),
            "nbrAdjacentCount": sum(1 for n in iface.neighbors.values() if n.state == 7),
            "counters": {k: iface.counters.get(k, 0) for k in COUNTERS},
        }
    return {"interfaces": out}


def interfaces_text(data: dict[str, Any]) -> str:
    lines = []
    for name, i in data["interfaces"].items():
        c = i["counters"]
        lines += [
            f"{name} is {'up' if i['ifUp'] else 'down'}",
            f"  Internet Address {i['ipAddress']}/{i['ipAddressPrefixlen']}, Area {i['area']}",
            f"  Router ID {i['routerId']}, Network Type {i['networkType']}, Cost: {i['cost']}",
            f"  State {i['state']}, Priority {i['priority']}, MTU {i['mtuBytes']}",
            f"  Designated Router (ID) {i['drId']} Interface Address {i['drAddress']}",
            f"  Backup Designated Router (ID) {i['bdrId']}, Interface Address {i['bdrAddress']}",
            f"  Timer intervals configured, Hello {i['timerMsecs']}ms, "
            f"Dead {i['timerDeadSecs']}s, Retransmit {i['timerRetransmitSecs']}",
            f"  Neighbor Count is {i['nbrCount']}, Adjacent neighbor count is "
            f"{i['nbrAdjacentCount']}",
            f"  Packets: {c['rx_packets']} received, {c['tx_packets']} sent",
            "  Dropped: "
            + ", ".join(
                f"{k.replace('_', ' ')} {v}"
                for k, v in c.items()
                if k not in ("rx_packets", "tx_packets")
            ),
        ]
    return "\n".join(lines)


def _hdr(a: LSA) -> dict[str, Any]:
    h = a.header
    return {
        "lsId": str(h.ls_id),
        "advertisedRouter": str(h.adv_router),
        "lsaAge": h.age,
        "options": f"0x{h.options:02x}",
        "sequenceNumber": f"{h.seq & 0xFFFFFFFF:08x}",
        "checksum": f"{h.checksum:04x}",
        "length": h.length,
    }


_SECTIONS: dict[int, str] = {
    LsType.ROUTER: "routerLinkStates",
    LsType.NETWORK: "networkLinkStates",
    LsType.SUMMARY_NETWORK: "summaryLinkStates",
    LsType.SUMMARY_ASBR: "asbrSummaryLinkStates",
    LsType.AS_EXTERNAL: "asExternalLinkStates",
    LsType.NSSA: "nssaExternalLinkStates",
    LsType.OPAQUE_LINK: "opaqueLinkLinkStates",
    LsType.OPAQUE_AREA: "opaqueAreaLinkStates",
    LsType.OPAQUE_AS: "opaqueAsLinkStates",
}


def database(r: OspfRouter, now: float) -> dict[str, Any]:
    area: dict[str, list[dict[str, Any]]] = {}
    for a in r.lsdb.lsas(now):
        sec = _SECTIONS.get(a.header.ls_type, f"type{a.header.ls_type}LinkStates")
        e = _hdr(a)
        if isinstance(a.body, RouterLSA):
            e["numOfLinks"] = len(a.body.links)
        area.setdefault(sec, []).append(e)
    return {"routerId": str(r.router_id), "areas": {str(r.area): area}}


def database_text(data: dict[str, Any]) -> str:
    lines = [f"       OSPF Router with ID ({data['routerId']})"]
    titles = {v: k for k, v in _SECTIONS.items()}
    for area, secs in data["areas"].items():
        for sec, entries in secs.items():
            t = titles.get(sec)
            name = LsType(t).name.replace("_", " ").title() if t is not None else sec
            lines += ["", f"                {name} Link States (Area {area})", ""]
            lines.append(f"{'Link ID':<16}{'ADV Router':<16}{'Age':>5}  {'Seq#':<10} {'CkSum':<6}")
            for e in entries:
                lines.append(
                    f"{e['lsId']:<16}{e['advertisedRouter']:<16}{e['lsaAge']:>5}  "
                    f"0x{e['sequenceNumber']:<8} 0x{e['checksum']}"
                )
    return "\n".join(lines)


def _tlv(t: Any) -> dict[str, Any]:
    """One TE/RI TLV or sub-TLV as a dict."""
    if isinstance(t, RouterAddress):
        return {"routerAddress": str(t.address)}
    if isinstance(t, Link):
        d: dict[str, Any] = {}
        for s in t.subtlvs:
            d.update(_tlv(s))
        return {"link": d}
    if isinstance(t, QkdLinkTlv):
        return {
            "qkdLink": {
                "localSite": str(t.local_site),
                "farSite": str(t.far_site),
                "keyRateBps": t.rate_bps,
                "keyStockBits": t.stock_bits,
                "keyBufferBits": t.buffer_bits,
                "up": t.up,
            }
        }
    if isinstance(t, LinkType):
        return {"linkType": {1: "Point-to-point", 2: "Multiaccess"}.get(t.link_type, t.link_type)}
    if isinstance(t, LinkId):
        return {"linkId": str(t.link_id)}
    if isinstance(t, LocalAddresses):
        return {"localAddresses": [str(a) for a in t.addresses]}
    if isinstance(t, RemoteAddresses):
        return {"remoteAddresses": [str(a) for a in t.addresses]}
    if isinstance(t, TeMetric):
        return {"teMetric": t.metric}
    if isinstance(t, MaxBandwidth):
        return {"maxBandwidth": t.bandwidth}
    if isinstance(t, MaxReservableBandwidth):
        return {"maxReservableBandwidth": t.bandwidth}
    if isinstance(t, UnreservedBandwidth):
        return {"unreservedBandwidth": list(t.bandwidths)}
    if isinstance(t, AdminGroup):
        return {"adminGroup": f"0x{t.groups:08x}"}
    if isinstance(t, LinkLocalRemoteIds):
        return {"localInterfaceId": t.local_id, "remoteInterfaceId": t.remote_id}
    if isinstance(t, LinkProtection):
        return {"linkProtection": f"0x{t.protection:02x}"}
    if isinstance(t, SwitchingCapability):
        return {
            "switchingCapability": SWITCHING.get(t.switching_cap, t.switching_cap),
            "encoding": t.encoding,
            "maxLspBandwidth": list(t.max_lsp_bandwidth),
        }
    if isinstance(t, Srlg):
        return {"srlg": list(t.srlgs)}
    if isinstance(t, AvailableLabels):
        return {"availableLambdas": list(t.channels())}
    if isinstance(t, InformationalCapabilities):
        return {"informationalCapabilities": f"0x{t.flags:0{t.octets * 2}x}"}
    if isinstance(t, FunctionalCapabilities):
        return {"functionalCapabilities": f"0x{t.flags:0{t.octets * 2}x}"}
    if isinstance(t, UnknownTlv):
        return {f"unknownTlv{t.type}": t.value.hex()}
    return {"tlv": repr(t)}


def opaque(r: OspfRouter, now: float, ls_type: int = LsType.OPAQUE_AREA) -> dict[str, Any]:
    """``show ip ospf database opaque-area json``: opaque LSAs decoded."""
    out = []
    for a in r.lsdb.lsas(now):
        if a.header.ls_type != ls_type:
            continue
        e = _hdr(a)
        e["opaqueType"] = a.header.opaque_type
        e["opaqueId"] = a.header.opaque_id
        body = a.body
        if isinstance(body, RouterInfoLSA):
            e["opaqueTypeName"] = "Router Information"
            e["routerInformation"] = {
                "tlvs": [_tlv(t) for t in body.tlvs],
                "teCapable": body.te_capable,
                "qeCapable": body.qe_capable,
            }
        elif isinstance(body, TeLSA):
            e["opaqueTypeName"] = "Traffic Engineering"
            e["trafficEngineering"] = [_tlv(t) for t in body.tlvs]
        elif isinstance(body, UnknownBody):
            e["opaqueTypeName"] = (
                OpaqueType(e["opaqueType"]).name
                if e["opaqueType"]
                in (
                    1,
                    4,
                )
                else f"type {e['opaqueType']}"
            )
            e["data"] = body.raw.hex()
        elif isinstance(body, MalformedBody):  # stored and flooded, not used
            e["opaqueTypeName"] = "malformed"
            e["malformed"] = body.reason
            e["data"] = body.raw.hex()
        e["maxAge"] = a.header.age >= MAX_AGE
        out.append(e)
    return {"routerId": str(r.router_id), "areas": {str(r.area): {"opaqueAreaLinkStates": out}}}


def opaque_text(data: dict[str, Any]) -> str:
    lines = [f"       OSPF Router with ID ({data['routerId']})"]
    for area, secs in data["areas"].items():
        lines += ["", f"                Area-Local Opaque-LSA (Area {area})"]
        for e in secs["opaqueAreaLinkStates"]:
            lines += [
                "",
                f"  LS age: {e['lsaAge']}",
                f"  Options: {e['options']}",
                f"  Link State ID: {e['lsId']} (Opaque-Type {e['opaqueType']}, "
                f"Opaque-ID {e['opaqueId']}: {e.get('opaqueTypeName', '')})",
                f"  Advertising Router: {e['advertisedRouter']}",
                f"  LS Seq Number: {e['sequenceNumber']}",
                f"  Checksum: 0x{e['checksum']}",
                f"  Length: {e['length']}",
            ]
            ri = e.get("routerInformation")
            if ri:
                for t in ri["tlvs"]:
                    for k, v in t.items():
                        lines.append(f"    {k}: {v}")
                lines.append(f"    TE capable: {ri['teCapable']}, QE capable: {ri['qeCapable']}")
            for t in e.get("trafficEngineering", []):
                for k, v in t.items():
                    if isinstance(v, dict):
                        lines.append(f"    {k}:")
                        lines += [f"      {kk}: {vv}" for kk, vv in v.items()]
                    else:
                        lines.append(f"    {k}: {v}")
    return "\n".join(lines)


def routes(r: OspfRouter) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for prefix in sorted(r.routes, key=lambda p: (int(p.network_address), p.prefixlen)):
        rt = r.routes[prefix]
        nhs = []
        for nh in sorted(rt.next_hops):
            if nh.address is None:
                nhs.append({"ip": " ", "directlyAttachedTo": nh.ifname})
            else:
                nhs.append({"ip": str(nh.address), "via": nh.ifname})
        out[str(prefix)] = {
            "routeType": "N",
            "cost": rt.cost,
            "area": str(rt.area),
            "nexthops": nhs,
        }
    return out


def routes_text(data: dict[str, Any]) -> str:
    lines = ["============ OSPF network routing table ============"]
    for prefix, e in data.items():
        first = True
        for nh in e["nexthops"]:
            lead = f"N    {prefix:<22}[{e['cost']}] area: {e['area']}" if first else ""
            if first:
                lines.append(lead)
                first = False
            if nh["ip"].strip():
                lines.append(f"{'':27}via {nh['ip']}, {nh['via']}")
            else:
                to = f" to {nh['directlyAttachedTo']}" if nh["directlyAttachedTo"] else ""
                lines.append(f"{'':27}directly attached{to}")
    return "\n".join(lines)
