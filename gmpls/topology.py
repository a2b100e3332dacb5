"""The testbed topology: hosts, IP domains, TE links (``topologies/*.yaml``).

Every daemon reads its own host's section through :func:`load` (``--topology FILE --host
NAME``), and the launchers in ``compose/`` build namespaces or containers from it. The
loader is strict: unknown keys, bad addresses, duplicate addresses, an address outside its
domain's subnet, a TE link to an undeclared node... each is reported with the file, the
path of the field and the reason, all of them at once::

    paper.yaml: hosts.tn3.router_id: '10.1.1' is not an IPv4 address

The schema is documented in ``docs/topology.md``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
IPv4 = ipaddress.IPv4Address

KINDS = ("node", "pce", "client", "qkd-proxy", "idq3p", "frr", "bird")
#: kinds that speak OSPF on the control LAN and so need a router ID
ROUTERS = ("node", "pce", "frr", "bird")
#: kinds that may terminate TE links
TE_KINDS = ("node", "frr", "bird")
_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,7}$")
_PREFIX = re.compile(r"^[a-z][a-z0-9]{0,3}$")


class TopologyError(ValueError):
    """One or more problems in a topology file; ``problems`` lists them all."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class Domain:
    name: str
    subnet: ipaddress.IPv4Network
    description: str = ""


@dataclass(frozen=True, slots=True)
class OspfConfig:
    area: IPv4 = IPv4("0.0.0.0")  # noqa: RUF009 (immutable)
    hello_interval: int = 10
    dead_interval: int = 40
    retransmit_interval: int = 5
    transmit_delay: int = 1


@dataclass(frozen=True, slots=True)
class RsvpConfig:
    refresh_ms: int = 30000
    keep_multiplier: int = 3
    hello_ms: int = 1000


@dataclass(frozen=True, slots=True)
class QeConfig:
    capable: bool = False
    proxy: str | None = None


@dataclass(frozen=True, slots=True)
class QkdConfig:
    sync_secret: bytes = b""
    key_seed: str = ""
    secret_key_rate_bps: int = 13_700_000
    buffer_bits: int = 1 << 26


@dataclass(frozen=True, slots=True)
class Host:
    name: str
    kind: str
    interfaces: Mapping[str, IPv4]
    router_id: IPv4 | None = None
    qe: QeConfig = QeConfig()
    cli_port: int | None = None
    ospf_priority: int = 1
    serves: str | None = None
    idq: str | None = None
    peer: str | None = None
    pair: str | None = None


@dataclass(frozen=True, slots=True)
class TeLink:
    a: str
    a_if: int
    b: str
    b_if: int
    metric: int = 10
    bandwidth_mbps: float = 100_000.0
    lambdas: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class LocalTeLink:
    """A TE link seen from one end: what a node advertises and signals over."""

    local_if: int
    remote: str
    remote_router_id: IPv4
    remote_if: int
    remote_control: IPv4
    metric: int
    bandwidth_mbps: float
    lambdas: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    prefix: str
    domains: Mapping[str, Domain]
    hosts: Mapping[str, Host]
    te_links: tuple[TeLink, ...] = ()
    control_domain: str = "ctrl"
    ospf: OspfConfig = OspfConfig()
    rsvp: RsvpConfig = RsvpConfig()
    qkd: QkdConfig = QkdConfig()
    path: Path | None = field(default=None, compare=False)

    # --- queries the daemons and launchers share ---------------------------------------
    def host(self, name: str) -> Host:
        try:
            return self.hosts[name]
        except KeyError:
            raise KeyError(f"{self.name}: no host {name!r}") from None

    def control_address(self, name: str) -> IPv4:
        h = self.host(name)
        if self.control_domain not in h.interfaces:
            raise KeyError(f"{name} has no address on the control domain {self.control_domain}")
        return h.interfaces[self.control_domain]

    def by_router_id(self, router_id: IPv4) -> Host | None:
        for h in self.hosts.values():
            if h.router_id == router_id:
                return h
        return None

    def shared_domain(self, a: str, b: str) -> str | None:
        """A domain both hosts sit on (the control domain last), or None."""
        common = set(self.host(a).interfaces) & set(self.host(b).interfaces)
        for d in sorted(common, key=lambda d: (d == self.control_domain, d)):
            return d
        return None

    def te_links_of(self, name: str) -> list[LocalTeLink]:
        out = []
        for link in self.te_links:
            for here, here_if, there, there_if in (
                (link.a, link.a_if, link.b, link.b_if),
                (link.b, link.b_if, link.a, link.a_if),
            ):
                if here == name:
                    remote = self.host(there)
                    assert remote.router_id is not None
                    out.append(
                        LocalTeLink(
                            here_if,
                            there,
                            remote.router_id,
                            there_if,
                            self.control_address(there),
                            link.metric,
                            link.bandwidth_mbps,
                            link.lambdas,
                        )
                    )
        return sorted(out, key=lambda x: x.local_if)

    def of_kind(self, *kinds: str) -> list[Host]:
        return [h for h in self.hosts.values() if h.kind in kinds]


# --- loading ---------------------------------------------------------------------------


class _Checker:
    """Walks the parsed YAML, converting values and collecting every problem."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []

    def error(self, path: str, reason: str) -> None:
        self.problems.append(f"{self.source}: {path}: {reason}")

    def mapping(
        self, value: Any, path: str, allowed: tuple[str, ...] | None = None
    ) -> dict[str, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {type(value).__name__}")
            return {}
        if allowed is not None:
            for k in value:
                if k not in allowed:
                    self.error(
                        f"{path}.{k}" if path else str(k),
                        f"unknown key (allowed: {', '.join(allowed)})",
                    )
        return value

    def get(
        self,
        m: dict[str, Any],
        key: str,
        path: str,
        conv: Callable[[Any, str], T],
        default: T | None = None,
        required: bool = False,
    ) -> T | None:
        p = f"{path}.{key}" if path else key
        if key not in m or m[key] is None:
            if required:
                self.error(p, "is required")
            return default
        try:
            return conv(m[key], p)
        except _Bad as e:
            self.error(p, str(e))
            return default


class _Bad(Exception):
    pass


def _ipv4(v: Any, _: str) -> IPv4:
    try:
        if isinstance(v, bool) or not isinstance(v, str):
            raise ValueError
        return IPv4(v)
    except ValueError:
        raise _Bad(f"{v!r} is not an IPv4 address") from None


def _subnet(v: Any, _: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(v), strict=True)
    except ValueError as e:
        raise _Bad(f"{v!r} is not an IPv4 subnet ({e})") from None


def _int(lo: int, hi: int) -> Callable[[Any, str], int]:
    def conv(v: Any, _: str) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"{v!r} is not an integer")
        if not lo <= v <= hi:
            raise _Bad(f"{v} is out of range {lo}..{hi}")
        return v

    return conv


def _num(v: Any, _: str) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise _Bad(f"{v!r} is not a positive number")
    return float(v)


def _str(v: Any, _: str) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"{v!r} is not a non-empty string")
    return v


def _bool(v: Any, _: str) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"{v!r} is not true or false")
    return v


def _name(v: Any, _: str) -> str:
    if not isinstance(v, str) or not _NAME.match(v):
        raise _Bad(f"{v!r} is not a name (a letter, then up to 7 letters, digits or _)")
    return v


def _hex(v: Any, _: str) -> bytes:
    try:
        b = bytes.fromhex(str(v))
    except ValueError:
        raise _Bad(f"{v!r} is not a hex string") from None
    if len(b) < 16:
        raise _Bad("must be at least 16 bytes (32 hex digits)")
    return b


def _or(value: T | None, default: T) -> T:
    return default if value is None else value


class _StrictLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (PyYAML keeps the last
    silently, so a second ``tn1:`` would replace the first without a word)."""


def _no_duplicates(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> Any:
    seen: set[Any] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if not isinstance(key, str | int | float | bool) or key is None:
            continue  # unhashable or odd keys are the schema check's business
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _no_duplicates)


def parse(doc: Any, source: str = "<topology>") -> Topology:
    """Validate a parsed YAML document; raises :class:`TopologyError` listing every problem."""
    c = _Checker(source)
    top = c.mapping(
        doc,
        "",
        ("name", "prefix", "control_domain", "domains", "ospf", "rsvp", "hosts", "qkd", "te_links"),
    )
    name = c.get(top, "name", "", _str, "topology", required=True) or "topology"

    def prefix_conv(v: Any, p: str) -> str:
        if not isinstance(v, str) or not _PREFIX.match(v):
            raise _Bad(f"{v!r} must be 1-4 lowercase letters or digits, starting with a letter")
        return v

    prefix = c.get(top, "prefix", "", prefix_conv, "qk") or "qk"
    control_domain = c.get(top, "control_domain", "", _name, "ctrl") or "ctrl"

    domains: dict[str, Domain] = {}
    for dname, d in c.mapping(top.get("domains"), "domains").items():
        p = f"domains.{dname}"
        try:
            _name(dname, p)
        except _Bad as e:
            c.error(p, str(e))
            continue
        dm = c.mapping(d, p, ("subnet", "description"))
        subnet = c.get(dm, "subnet", p, _subnet, required=True)
        if dname == "lo":
            c.error(p, "'lo' is the loopback interface inside every host; choose another name")
            continue
        if subnet is not None:
            for other in domains.values():
                if subnet.overlaps(other.subnet):
                    c.error(
                        f"{p}.subnet", f"{subnet} overlaps domain {other.name}'s {other.subnet}"
                    )
            domains[dname] = Domain(dname, subnet, str(dm.get("description", "")))
    if not domains:
        c.error("domains", "at least one domain is required")
    elif control_domain not in domains:
        c.error("control_domain", f"{control_domain!r} is not a declared domain")

    om = c.mapping(
        top.get("ospf"),
        "ospf",
        ("area", "hello_interval", "dead_interval", "retransmit_interval", "transmit_delay"),
    )
    dflt = OspfConfig()
    ospf = OspfConfig(
        c.get(om, "area", "ospf", _ipv4, dflt.area) or dflt.area,
        c.get(om, "hello_interval", "ospf", _int(1, 65535), dflt.hello_interval)
        or dflt.hello_interval,
        c.get(om, "dead_interval", "ospf", _int(1, 2**31 - 1), dflt.dead_interval)
        or dflt.dead_interval,
        c.get(om, "retransmit_interval", "ospf", _int(1, 3600), dflt.retransmit_interval)
        or dflt.retransmit_interval,
        c.get(om, "transmit_delay", "ospf", _int(1, 3600), dflt.transmit_delay)
        or dflt.transmit_delay,
    )
    if ospf.dead_interval <= ospf.hello_interval:
        c.error(
            "ospf.dead_interval",
            f"{ospf.dead_interval} must exceed hello_interval {ospf.hello_interval}",
        )

    rm = c.mapping(top.get("rsvp"), "rsvp", ("refresh_ms", "keep_multiplier", "hello_ms"))
    rd = RsvpConfig()
    rsvp = RsvpConfig(
        c.get(rm, "refresh_ms", "rsvp", _int(10, 2**31 - 1), rd.refresh_ms) or rd.refresh_ms,
        c.get(rm, "keep_multiplier", "rsvp", _int(1, 255), rd.keep_multiplier)
        or rd.keep_multiplier,
        _or(c.get(rm, "hello_ms", "rsvp", _int(0, 2**31 - 1)), rd.hello_ms),
    )

    qm = c.mapping(
        top.get("qkd"), "qkd", ("sync_secret", "key_seed", "secret_key_rate_bps", "buffer_bits")
    )
    qd = QkdConfig()
    qkd = QkdConfig(
        c.get(qm, "sync_secret", "qkd", _hex, qd.sync_secret) or qd.sync_secret,
        c.get(qm, "key_seed", "qkd", _str, qd.key_seed) or qd.key_seed,
        c.get(qm, "secret_key_rate_bps", "qkd", _int(1, 10**12), qd.secret_key_rate_bps)
        or qd.secret_key_rate_bps,
        c.get(qm, "buffer_bits", "qkd", _int(8, 2**40), qd.buffer_bits) or qd.buffer_bits,
    )

    hosts: dict[str, Host] = {}
    seen_addr: dict[IPv4, str] = {}
    seen_rid: dict[IPv4, str] = {}
    host_keys = (
        "kind",
        "router_id",
        "interfaces",
        "qe",
        "cli_port",
        "ospf_priority",
        "serves",
        "idq",
        "peer",
        "pair",
    )
    for hname, h in c.mapping(top.get("hosts"), "hosts").items():
        p = f"hosts.{hname}"
        try:
            _name(hname, p)
        except _Bad as e:
            c.error(p, str(e))
            continue
        hm = c.mapping(h, p, host_keys)

        def kind_conv(v: Any, _: str) -> str:
            if v not in KINDS:
                raise _Bad(f"{v!r} is not a host kind ({', '.join(KINDS)})")
            return str(v)

        kind = c.get(hm, "kind", p, kind_conv, required=True)
        ifaces: dict[str, IPv4] = {}
        for dname, addr in c.mapping(hm.get("interfaces"), f"{p}.interfaces").items():
            ip = f"{p}.interfaces.{dname}"
            if dname not in domains:
                c.error(ip, f"no domain {dname!r} is declared")
                continue
            ip_addr = c.get({dname: addr}, dname, f"{p}.interfaces", _ipv4)
            if ip_addr is None:
                continue
            net = domains[dname].subnet
            if ip_addr not in net:
                c.error(ip, f"{ip_addr} is outside the domain's subnet {net}")
            elif ip_addr in (net.network_address, net.broadcast_address):
                c.error(ip, f"{ip_addr} is the network or broadcast address of {net}")
            if ip_addr in seen_addr:
                c.error(ip, f"{ip_addr} is already used by {seen_addr[ip_addr]}")
            seen_addr[ip_addr] = f"hosts.{hname}.interfaces.{dname}"
            ifaces[dname] = ip_addr
        if not ifaces:
            c.error(f"{p}.interfaces", "a host needs at least one interface")
        rid = c.get(hm, "router_id", p, _ipv4, required=kind in ROUTERS)
        if rid is not None:
            if kind not in ROUTERS:
                c.error(f"{p}.router_id", f"a {kind} host has no router ID")
            if rid in seen_rid:
                c.error(f"{p}.router_id", f"{rid} is already the router ID of {seen_rid[rid]}")
            seen_rid[rid] = hname
            if kind in ROUTERS and control_domain not in ifaces:
                c.error(
                    f"{p}.interfaces",
                    f"a {kind} needs an address on the control domain {control_domain}",
                )
        qmap = c.mapping(hm.get("qe"), f"{p}.qe", ("capable", "proxy"))
        qe_cfg = QeConfig(
            bool(c.get(qmap, "capable", f"{p}.qe", _bool, False)),
            c.get(qmap, "proxy", f"{p}.qe", _name),
        )
        if qmap and kind != "node":
            c.error(f"{p}.qe", f"only a node can be QE capable, this is a {kind}")
        hosts[hname] = Host(
            hname,
            kind or "node",
            ifaces,
            rid,
            qe_cfg,
            c.get(hm, "cli_port", p, _int(1, 65535)),
            _or(c.get(hm, "ospf_priority", p, _int(0, 255)), 1),
            c.get(hm, "serves", p, _name),
            c.get(hm, "idq", p, _name),
            c.get(hm, "peer", p, _name),
            c.get(hm, "pair", p, _name),
        )
        for key, kinds in (
            ("serves", ("qkd-proxy",)),
            ("idq", ("qkd-proxy",)),
            ("peer", ("qkd-proxy",)),
            ("pair", ("idq3p",)),
        ):
            if key in hm and kind not in kinds:
                c.error(f"{p}.{key}", f"only a {' or '.join(kinds)} host has {key}")
            if kind in kinds and key not in hm:
                c.error(f"{p}.{key}", "is required")

    # cross references, once every host is known
    def ref(path: str, target: str | None, kinds: tuple[str, ...]) -> Host | None:
        if target is None:
            return None
        t = hosts.get(target)
        if t is None:
            c.error(path, f"no host {target!r} is declared")
        elif t.kind not in kinds:
            c.error(path, f"{target} is a {t.kind}, not a {' or '.join(kinds)}")
            return None
        return t

    for h in hosts.values():
        p = f"hosts.{h.name}"
        if h.qe.proxy is not None:
            proxy = ref(f"{p}.qe.proxy", h.qe.proxy, ("qkd-proxy",))
            if proxy is not None and not set(proxy.interfaces) & set(h.interfaces):
                c.error(f"{p}.qe.proxy", f"{proxy.name} shares no domain with {h.name}")
        if h.qe.capable and h.qe.proxy is None:
            c.error(f"{p}.qe.proxy", "a QE capable node needs the ETSI 004 proxy that serves it")
        served = ref(f"{p}.serves", h.serves, ("node",))
        if served is not None and served.qe.proxy != h.name:
            c.error(f"{p}.serves", f"{served.name}'s qe.proxy is {served.qe.proxy}, not {h.name}")
        idq = ref(f"{p}.idq", h.idq, ("idq3p",))
        if idq is not None and not set(idq.interfaces) & set(h.interfaces):
            c.error(f"{p}.idq", f"{idq.name} shares no domain with {h.name}")
        peer = ref(f"{p}.peer", h.peer, ("qkd-proxy",))
        if peer is not None:
            if peer.peer != h.name:
                c.error(f"{p}.peer", f"{peer.name}'s peer is {peer.peer}, not {h.name}")
            if not set(peer.interfaces) & set(h.interfaces):
                c.error(f"{p}.peer", f"{peer.name} shares no domain with {h.name}")
        pair = ref(f"{p}.pair", h.pair, ("idq3p",))
        if pair is not None and pair.pair != h.name:
            c.error(f"{p}.pair", f"{pair.name}'s pair is {pair.pair}, not {h.name}")

    links: list[TeLink] = []
    used_if: dict[tuple[str, int], str] = {}
    raw_links = top.get("te_links") or []
    if not isinstance(raw_links, list):
        c.error("te_links", "must be a list")
        raw_links = []
    for i, lk in enumerate(raw_links):
        p = f"te_links[{i}]"
        lm = c.mapping(lk, p, ("a", "a_if", "b", "b_if", "metric", "bandwidth_mbps", "lambdas"))
        a = c.get(lm, "a", p, _name, required=True)
        b = c.get(lm, "b", p, _name, required=True)
        a_if = c.get(lm, "a_if", p, _int(1, 2**32 - 1), required=True)
        b_if = c.get(lm, "b_if", p, _int(1, 2**32 - 1), required=True)
        ok = True
        for end, end_if, key in ((a, a_if, "a"), (b, b_if, "b")):
            if end is None or end_if is None:
                ok = False
                continue
            if ref(f"{p}.{key}", end, TE_KINDS) is None:
                ok = False
            if (end, end_if) in used_if:
                c.error(
                    f"{p}.{key}_if", f"{end}:{end_if} is already used by {used_if[(end, end_if)]}"
                )
            used_if[(end, end_if)] = p
        if a is not None and a == b:
            c.error(p, f"a TE link joins two different nodes, not {a} to itself")
            ok = False

        def lambdas_conv(v: Any, lp: str) -> tuple[int, ...]:
            if not isinstance(v, list) or not all(
                isinstance(x, int) and not isinstance(x, bool) and -(2**15) <= x < 2**15 for x in v
            ):
                raise _Bad("must be a list of DWDM channel numbers n (16-bit signed)")
            if len(set(v)) != len(v):
                raise _Bad("lists a channel twice")
            return tuple(v)

        metric = c.get(lm, "metric", p, _int(1, 2**24 - 1), 10) or 10
        bw = c.get(lm, "bandwidth_mbps", p, _num, 100_000.0) or 100_000.0
        lambdas: tuple[int, ...] = c.get(lm, "lambdas", p, lambdas_conv) or ()
        if ok and a and b and a_if and b_if:
            links.append(TeLink(a, a_if, b, b_if, metric, bw, lambdas))

    if c.problems:
        raise TopologyError(c.problems)
    return Topology(name, prefix, domains, hosts, tuple(links), control_domain, ospf, rsvp, qkd)


def load(path: str | Path) -> Topology:
    """Read and validate a topology file."""
    path = Path(path)
    try:
        doc = yaml.load(path.read_text(), Loader=_StrictLoader)  # a SafeLoader
    except OSError as e:
        raise TopologyError([f"{path}: cannot read: {e.strerror}"]) from None
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f"line {mark.line + 1}: " if mark is not None else ""
        raise TopologyError([f"{path.name}: {where}{e.problem or e.context}"]) from None
    except yaml.YAMLError as e:
        raise TopologyError([f"{path.name}: not valid YAML: {e}"]) from None
    topo = parse(doc, path.name)
    object.__setattr__(topo, "path", path.resolve())
    return topo
