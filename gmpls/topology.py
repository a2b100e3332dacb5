"""The testbed topology: hosts, IP domains, TE links (``topologies/*.yaml``).

Every daemon reads its own host's section through :func:`load` (``--topology FILE --host
NAME``), and the launchers in ``compose/`` build namespaces or containers from it. The
loader is strict: unknown keys, bad addresses, duplicate addresses, an address outside its
domain's subnet, a TE link to an undeclared node... each is reported with the file, the
path of the field and the reason, all of them at once::

    paper.yaml: hosts.tn3.router_id: '10.1.1' is not an IPv4 address

The QKD side is a set of *sites* and ``qkd_links`` between them: a site is one key manager
(a ``qkd-proxy`` host) and the node(s) it ``serves``; a QKD link is a pair of IDQ3P
emulators between two sites' key managers, with its own secret-key rate and buffer. The
legacy form of one link (proxy ``idq`` + ``peer``, idq3p ``pair``) loads as one
:class:`QkdLink` too.

The schema is documented in ``docs/topology.md``.
"""

from __future__ import annotations

import difflib
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypedDict

import yaml

from gmpls.dataplane.names import IFNAMSIZ, channel_ifname, channel_name_unchecked
from gmpls.qkd import ratemodel

IPv4 = ipaddress.IPv4Address

KINDS = ("node", "pce", "client", "qkd-proxy", "idq3p", "frr", "bird", "host")
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
    #: an access domain: the node whose port ``access`` (no address) joins it to the
    #: client hosts (kind ``host``) on it; None for an IP domain
    access: str | None = None
    #: how the routers on it run OSPF: ``broadcast``, ``point-to-point`` or ``passive``
    #: (advertised as a stub network, no Hellos); None: broadcast on the control domain,
    #: passive elsewhere (:meth:`Topology.ospf_network`)
    ospf: str | None = None


#: the values of a domain's ``ospf`` key
OSPF_NETWORKS = ("broadcast", "point-to-point", "passive")


class RouterTimers(TypedDict):
    """:meth:`OspfConfig.router_timers`: keyword arguments of the OSPF router (seconds)."""

    spf_delay: float
    spf_hold: float
    spf_max_hold: float
    flood_pace: float


@dataclass(frozen=True, slots=True)
class OspfConfig:
    area: IPv4 = IPv4("0.0.0.0")  # noqa: RUF009 (immutable)
    hello_interval: int = 10
    dead_interval: int = 40
    retransmit_interval: int = 5
    transmit_delay: int = 1
    #: SPF throttling (milliseconds; as FRR's ``timers throttle spf``): a run comes
    #: ``spf_delay_ms`` after a change, and runs keep at least a hold apart that starts at
    #: ``spf_hold_ms`` and doubles while changes keep coming, up to ``spf_max_hold_ms``
    spf_delay_ms: int = 50
    spf_hold_ms: int = 200
    spf_max_hold_ms: int = 5000
    #: flood pacing: LSAs queued within this many milliseconds go out in one LS Update
    flood_pace_ms: int = 10

    def router_timers(self) -> RouterTimers:
        """The SPF and flooding timers as :class:`gmpls.ospf.router.OspfRouter` takes
        them (seconds)."""
        return {
            "spf_delay": self.spf_delay_ms / 1000,
            "spf_hold": self.spf_hold_ms / 1000,
            "spf_max_hold": self.spf_max_hold_ms / 1000,
            "flood_pace": self.flood_pace_ms / 1000,
        }


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
class DeterministicKeys:
    """``qkd.deterministic``: key material pinned in the topology. Insecure (anyone with
    the file can compute every key), for reproducible tests only; without it the daemons
    take fresh random material from files (``--seed-file``, ``--sync-key-file``) that
    ``qkdnet up`` makes."""

    #: both emulators of a pair derive the same key stream from it
    seed: bytes = field(default=b"", repr=False)
    #: HMAC key of the proxy pair's sync channel
    sync_key: bytes = field(default=b"", repr=False)


@dataclass(frozen=True, slots=True)
class QkdConfig:
    deterministic: DeterministicKeys = DeterministicKeys()
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
    #: a key manager's ETSI 014 (HTTPS) port on its addresses toward its SAEs
    etsi014_port: int = 443
    #: hosts a key manager serves over ETSI 014 only (SAEs besides the nodes it serves)
    saes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class QkdLink:
    """One QKD link: two IDQ3P emulators (``a_idq`` next to key manager ``a``, ``b_idq`` next
    to ``b``) sharing a key stream at ``rate_bps``, each holding at most ``buffer_bits``.

    ``name`` is the two key managers' names sorted, joined by ``-`` (``km1-km2``);
    ``fibre_km`` is set when the rate comes from the decoy-BB84 model."""

    name: str
    a: str
    b: str
    a_idq: str
    b_idq: str
    rate_bps: float
    buffer_bits: int
    fibre_km: float | None = None

    def far(self, km: str) -> str:
        """The key manager at the other end from ``km``."""
        return self.b if km == self.a else self.a

    def idq_of(self, km: str) -> str:
        """The emulator next to key manager ``km``."""
        return self.a_idq if km == self.a else self.b_idq

    def pair_of(self, idq: str) -> str:
        """The emulator at the other end from emulator ``idq``."""
        return self.b_idq if idq == self.a_idq else self.a_idq


def link_name(a: str, b: str) -> str:
    """The name of the QKD link between key managers ``a`` and ``b``."""
    return "-".join(sorted((a, b)))


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
    qkd_links: tuple[QkdLink, ...] = ()
    #: key manager -> the nodes it serves, its site node first
    sites: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

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

    def ospf_network(self, domain: str) -> str:
        """How routers run OSPF on ``domain``: its ``ospf`` key, else ``broadcast`` on the
        control domain and ``passive`` (a stub network) elsewhere."""
        d = self.domains[domain]
        if d.ospf is not None:
            return d.ospf
        return "broadcast" if domain == self.control_domain else "passive"

    def ospf_domains(self, name: str) -> list[str]:
        """The domains on which router ``name`` speaks OSPF (the control domain first)."""
        active = [d for d in self.host(name).interfaces if self.ospf_network(d) != "passive"]
        return sorted(active, key=lambda d: (d != self.control_domain, d))

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

    # --- the data plane: access domains and channels -------------------------------------
    def access_domain(self, node: str) -> Domain | None:
        """The access domain of ``node`` (its port ``access`` is on it), or None."""
        for d in self.domains.values():
            if d.access == node:
                return d
        return None

    def access_hosts(self, node: str) -> list[Host]:
        """The client hosts behind ``node`` (on its access domain), in file order."""
        d = self.access_domain(node)
        if d is None:
            return []
        return [h for h in self.hosts.values() if d.name in h.interfaces]

    def channels_of(self, name: str) -> list[tuple[int, int, str, int]]:
        """The data-plane channels of node ``name``: (local_if, lambda, remote node,
        remote_if) per lambda of each of its TE links, one veth pair each."""
        return [
            (x.local_if, lam, x.remote, x.remote_if)
            for x in self.te_links_of(name)
            for lam in x.lambdas
        ]

    # --- the QKD network: sites and QKD links --------------------------------------------
    def qkd_links_of(self, km: str) -> tuple[QkdLink, ...]:
        """The QKD links of key manager ``km``, in file order."""
        return tuple(x for x in self.qkd_links if km in (x.a, x.b))

    def saes(self) -> dict[str, str]:
        """Every ETSI 014 SAE -> its key manager: the nodes each key manager serves, then
        the hosts it lists under ``saes``."""
        out = {n: km for km, nodes in self.sites.items() for n in nodes}
        for km in self.sites:
            out.update({s: km for s in self.hosts[km].saes})
        return out

    def served_by(self, km: str) -> tuple[str, ...]:
        """The nodes of ``km``'s site, its site node first (empty for a non key manager)."""
        return tuple(self.sites.get(km, ()))

    def site_of(self, node: str) -> str | None:
        """The key manager whose site ``node`` belongs to, or None."""
        for km, nodes in self.sites.items():
            if node in nodes:
                return km
        return None

    def site_id(self, km: str) -> IPv4:
        """The site's ID on the wire: the router ID of its site node."""
        nodes = self.served_by(km)
        if not nodes:
            raise KeyError(f"{self.name}: {km!r} is not a key manager")
        rid = self.host(nodes[0]).router_id
        assert rid is not None  # a served host is a node, and a node has a router ID
        return rid

    def site_by_id(self, site_id: IPv4) -> str | None:
        """The key manager of the site whose ID is ``site_id``, or None."""
        for km in self.sites:
            if self.site_id(km) == site_id:
                return km
        return None

    def qkd_link_of_idq(self, idq: str) -> QkdLink | None:
        """The QKD link emulator ``idq`` belongs to, or None."""
        for x in self.qkd_links:
            if idq in (x.a_idq, x.b_idq):
                return x
        return None

    def qkd_link_between(self, a: str, b: str) -> QkdLink | None:
        """The QKD link between key managers ``a`` and ``b``, or None."""
        for x in self.qkd_links:
            if {x.a, x.b} == {a, b}:
                return x
        return None


# --- loading: the schema ---------------------------------------------------------------
#
# Loading runs in two passes. The schema tables below say, for every mapping in the file,
# which keys it may hold, how each value is converted, which keys are required (for which
# host kinds), and what the mapping is built into; ``_Checker.load`` walks the document
# with them. The cross checks that need more than one value (addresses inside their
# domain, unique addresses, references between hosts, TE link ends) run on the loaded
# values afterwards. Both passes report every problem as ``FILE: PATH: REASON``.


class _Bad(Exception):
    """A value a converter refuses; the message is the reason."""


_Conv = Callable[[Any], Any]
"""A converter: a YAML value in, the loaded value out, or :class:`_Bad`."""


@dataclass(frozen=True, slots=True)
class _Key:
    """One key of a mapping.

    ``only`` names the host kinds that may give it (empty: any mapping may); with ``only``,
    ``required`` means required for those kinds, and ``refused`` is the reason when another
    kind gives it.
    """

    name: str
    spec: _Spec
    required: bool = False
    only: tuple[str, ...] = ()
    refused: str = "only a {only} host has {key}"


@dataclass(frozen=True, slots=True)
class _Record:
    """A mapping with fixed keys, built by ``make(**loaded values)``; ``check`` then sees
    the raw mapping and the result, for the rules that join several keys."""

    keys: tuple[_Key, ...]
    make: Callable[..., Any] = dict
    check: Callable[[_Checker, str, dict[str, Any], Any], None] | None = None
    #: keys this mapping no longer takes, each with the reason (what replaces it)
    removed: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _MapOf:
    """A mapping from names (checked by ``key``, when given) to ``item`` values."""

    item: _Spec
    key: _Conv | None = None


@dataclass(frozen=True, slots=True)
class _ListOf:
    item: _Spec


_Spec = _Record | _MapOf | _ListOf | Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class _Doc:
    """The file after the schema pass: values converted, nothing cross-checked yet."""

    name: str = "topology"
    prefix: str = "qk"
    control_domain: str = "ctrl"
    domains: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    ospf: OspfConfig = OspfConfig()
    rsvp: RsvpConfig = RsvpConfig()
    hosts: Mapping[str, dict[str, Any]] = field(default_factory=dict)
    qkd: QkdConfig = QkdConfig()
    te_links: tuple[dict[str, Any], ...] = ()
    qkd_links: tuple[dict[str, Any], ...] = ()


# --- converters --------------------------------------------------------------------------


def _ipv4(v: Any) -> IPv4:
    try:
        if isinstance(v, bool) or not isinstance(v, str):
            raise ValueError
        return IPv4(v)
    except ValueError:
        raise _Bad(f"{v!r} is not an IPv4 address") from None


def _subnet(v: Any) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(str(v), strict=True)
    except ValueError as e:
        raise _Bad(f"{v!r} is not an IPv4 subnet ({e})") from None


def _int(lo: int, hi: int) -> _Conv:
    def conv(v: Any) -> int:
        if isinstance(v, bool) or not isinstance(v, int):
            raise _Bad(f"{v!r} is not an integer")
        if not lo <= v <= hi:
            raise _Bad(f"{v} is out of range {lo}..{hi}")
        return v

    return conv


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v <= 0:
        raise _Bad(f"{v!r} is not a positive number")
    return float(v)


def _str(v: Any) -> str:
    if not isinstance(v, str) or not v:
        raise _Bad(f"{v!r} is not a non-empty string")
    return v


def _bool(v: Any) -> bool:
    if not isinstance(v, bool):
        raise _Bad(f"{v!r} is not true or false")
    return v


def _name(v: Any) -> str:
    if not isinstance(v, str) or not _NAME.match(v):
        raise _Bad(f"{v!r} is not a name (a letter, then up to 7 letters, digits or _)")
    return v


def _prefix(v: Any) -> str:
    if not isinstance(v, str) or not _PREFIX.match(v):
        raise _Bad(f"{v!r} must be 1-4 lowercase letters or digits, starting with a letter")
    return v


def _kind(v: Any) -> str:
    if v not in KINDS:
        close = difflib.get_close_matches(str(v), KINDS, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise _Bad(f"{v!r} is not a host kind ({', '.join(KINDS)}){hint}")
    return str(v)


def _ospf_network(v: Any) -> str:
    if v not in OSPF_NETWORKS:
        raise _Bad(f"{v!r} is not an OSPF network type ({', '.join(OSPF_NETWORKS)})")
    return str(v)


def _hex(v: Any) -> bytes:
    try:
        b = bytes.fromhex(str(v))
    except ValueError:
        raise _Bad(f"{v!r} is not a hex string") from None
    if len(b) < 16:
        raise _Bad("must be at least 16 bytes (32 hex digits)")
    return b


def _not_negative(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or v < 0:
        raise _Bad(f"{v!r} is not a number >= 0")
    return float(v)


#: the largest rate a QKD link may have: the u32 b/s of the OSPF-TE QKD link TLV
MAX_RATE_BPS = 2**32 - 1


def _rate(v: Any) -> float:
    r = _num(v)
    if r > MAX_RATE_BPS:
        raise _Bad(f"{v} b/s is above {MAX_RATE_BPS} (the u32 of the OSPF-TE QKD link TLV)")
    return r


def _names(v: Any) -> tuple[str, ...]:
    """A name, or a non-empty list of distinct names."""
    if isinstance(v, list):
        if not v:
            raise _Bad("names no node")
        out = tuple(_name(x) for x in v)
        if len(set(out)) != len(out):
            raise _Bad("names a node twice")
        return out
    return (_name(v),)


def _seed(v: Any) -> bytes:
    return _str(v).encode()


def _lambdas(v: Any) -> tuple[int, ...]:
    if not isinstance(v, list) or not all(
        isinstance(x, int) and not isinstance(x, bool) and -(2**15) <= x < 2**15 for x in v
    ):
        raise _Bad("must be a list of DWDM channel numbers n (16-bit signed)")
    if len(set(v)) != len(v):
        raise _Bad("lists a channel twice")
    return tuple(v)


# --- the tables --------------------------------------------------------------------------


def _dead_after_hello(c: _Checker, path: str, raw: dict[str, Any], ospf: OspfConfig) -> None:
    if ospf.dead_interval <= ospf.hello_interval:
        c.error(
            f"{path}.dead_interval",
            f"{ospf.dead_interval} must exceed hello_interval {ospf.hello_interval}",
        )


def _given(v: Any) -> bool:
    """A key set to null (``~``) or to an empty mapping counts as left out."""
    return v is not None and v != {}


def _kind_keys(c: _Checker, path: str, raw: dict[str, Any], host: dict[str, Any]) -> None:
    """The keys only some kinds of host may (and then must) give."""
    kind = host.get("kind")
    if kind is None:
        return  # the kind itself is wrong or missing, and already reported
    for key in _HOST.keys:
        if not key.only:
            continue
        if _given(raw.get(key.name)) and kind not in key.only:
            c.error(
                f"{path}.{key.name}",
                key.refused.format(kind=kind, only=" or ".join(key.only), key=key.name),
            )
        if key.required and kind in key.only and raw.get(key.name) is None:
            c.error(f"{path}.{key.name}", "is required")


_PROXY = ("qkd-proxy",)
_IDQ = ("idq3p",)
_PORT = _int(1, 65535)
_INT32 = _int(1, 2**31 - 1)
_IF_ID = _int(1, 2**32 - 1)
_NO_ROUTER_ID = "a {kind} host has no router ID"
_NOT_QE = "only a node can be QE capable, this is a {kind}"

_OSPF = _Record(
    (
        _Key("area", _ipv4),
        _Key("hello_interval", _PORT),
        _Key("dead_interval", _INT32),
        _Key("retransmit_interval", _int(1, 3600)),
        _Key("transmit_delay", _int(1, 3600)),
        _Key("spf_delay_ms", _int(0, 600000)),
        _Key("spf_hold_ms", _int(0, 600000)),
        _Key("spf_max_hold_ms", _int(0, 600000)),
        _Key("flood_pace_ms", _int(0, 60000)),
    ),
    OspfConfig,
    _dead_after_hello,
)
_RSVP = _Record(
    (
        _Key("refresh_ms", _int(10, 2**31 - 1)),
        _Key("keep_multiplier", _int(1, 255)),
        _Key("hello_ms", _int(0, 2**31 - 1)),
    ),
    RsvpConfig,
)
_INSECURE = (
    "removed: keys come from fresh random files that `qkdnet up` makes; "
    "to pin {what} for reproducible tests use qkd.deterministic.{key} (insecure)"
)
_DETERMINISTIC = _Record(
    (_Key("seed", _seed), _Key("sync_key", _hex)),
    DeterministicKeys,
)
_QKD = _Record(
    (
        _Key("deterministic", _DETERMINISTIC),
        _Key("secret_key_rate_bps", _int(1, 10**12)),
        _Key("buffer_bits", _int(8, 2**40)),
    ),
    QkdConfig,
    removed={
        "key_seed": _INSECURE.format(what="a key seed", key="seed"),
        "sync_secret": _INSECURE.format(what="a sync key", key="sync_key"),
    },
)
_DOMAIN = _Record(
    (
        _Key("subnet", _subnet, required=True),
        _Key("description", str),
        _Key("access", _name),
        _Key("ospf", _ospf_network),
    )
)
_QE = _Record((_Key("capable", _bool), _Key("proxy", _name)), QeConfig)
_HOST = _Record(
    (
        _Key("kind", _kind, required=True),
        _Key("router_id", _ipv4, required=True, only=ROUTERS, refused=_NO_ROUTER_ID),
        _Key("interfaces", _MapOf(_ipv4)),  # domain names: checked against the domains
        _Key("qe", _QE, only=("node",), refused=_NOT_QE),
        _Key("cli_port", _PORT),
        _Key("ospf_priority", _int(0, 255)),
        _Key("serves", _names, required=True, only=_PROXY),
        # required in the legacy form of one QKD link only: checked with qkd_links
        _Key("idq", _name, only=_PROXY),
        _Key("peer", _name, only=_PROXY),
        _Key("pair", _name, only=_IDQ),
        _Key("etsi014_port", _PORT, only=_PROXY),
        _Key("saes", _names, only=_PROXY),
    ),
    check=_kind_keys,
)
_QKD_LINK = _Record(
    (
        _Key("a", _name, required=True),
        _Key("b", _name, required=True),
        _Key("a_idq", _name, required=True),
        _Key("b_idq", _name, required=True),
        _Key("rate_bps", _rate),
        _Key("fibre_km", _not_negative),
        _Key("db_per_km", _not_negative),
        _Key("extra_loss_db", _not_negative),
        _Key("buffer_bits", _int(8, 2**40)),
    )
)
_TE_LINK = _Record(
    (
        _Key("a", _name, required=True),
        _Key("a_if", _IF_ID, required=True),
        _Key("b", _name, required=True),
        _Key("b_if", _IF_ID, required=True),
        _Key("metric", _int(1, 2**24 - 1)),
        _Key("bandwidth_mbps", _num),
        _Key("lambdas", _lambdas),
    )
)
_TOP = _Record(
    (
        _Key("name", _str, required=True),
        _Key("prefix", _prefix),
        _Key("control_domain", _name),
        _Key("domains", _MapOf(_DOMAIN, _name)),
        _Key("ospf", _OSPF),
        _Key("rsvp", _RSVP),
        _Key("hosts", _MapOf(_HOST, _name)),
        _Key("qkd", _QKD),
        _Key("te_links", _ListOf(_TE_LINK)),
        _Key("qkd_links", _ListOf(_QKD_LINK)),
    ),
    _Doc,
)


# --- the schema pass ---------------------------------------------------------------------


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)


class _Checker:
    """Walks the parsed YAML with a schema, converting values and collecting problems."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.problems: list[str] = []
        #: hosts whose kind was refused: references to them check only that they exist
        self.unknown_kind: set[str] = set()

    def error(self, path: str, reason: str) -> None:
        where = f"{path}: " if path else ""  # the document itself has no path
        self.problems.append(f"{self.source}: {where}{reason}")

    def load(self, spec: _Spec, value: Any, path: str) -> Any:
        """The loaded value, or None when there is none (left out, or refused and reported).

        A mapping or list left out loads as an empty one (a record: all its defaults)."""
        if isinstance(spec, _Record):
            return self.record(spec, value, path)
        if isinstance(spec, _MapOf):
            return self.map_of(spec, value, path)
        if isinstance(spec, _ListOf):
            return self.list_of(spec, value, path)
        return None if value is None else self.convert(spec, value, path)

    def convert(self, conv: _Conv, value: Any, path: str) -> Any:
        try:
            return conv(value)
        except _Bad as e:
            self.error(path, str(e))
            return None

    def mapping(
        self,
        value: Any,
        path: str,
        allowed: tuple[str, ...] = (),
        removed: Mapping[str, str] | None = None,
    ) -> dict[Any, Any]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.error(path, f"must be a mapping, not {type(value).__name__}")
            return {}
        for k in value:
            if removed and k in removed:
                self.error(_join(path, k), removed[k])
            elif allowed and k not in allowed:
                self.error(_join(path, k), f"unknown key (allowed: {', '.join(allowed)})")
        return value

    def record(self, spec: _Record, value: Any, path: str) -> Any:
        raw = self.mapping(value, path, tuple(k.name for k in spec.keys), spec.removed)
        loaded = {}
        for key in spec.keys:
            p = _join(path, key.name)
            if raw.get(key.name) is None and key.required and not key.only:
                self.error(p, "is required")
            v = self.load(key.spec, raw.get(key.name), p)
            if v is not None:
                loaded[key.name] = v
        built = spec.make(**loaded)
        if spec.check is not None:
            spec.check(self, path, raw, built)
        return built

    def map_of(self, spec: _MapOf, value: Any, path: str) -> dict[Any, Any]:
        """Every entry whose name is good; a value that did not load is kept as None."""
        out = {}
        for name, item in self.mapping(value, path).items():
            p = f"{path}.{name}"
            if spec.key is not None and self.convert(spec.key, name, p) is None:
                continue
            out[name] = self.load(spec.item, item, p)
        return out

    def list_of(self, spec: _ListOf, value: Any, path: str) -> tuple[Any, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.error(path, "must be a list")
            return ()
        return tuple(self.load(spec.item, v, f"{path}[{i}]") for i, v in enumerate(value))


# --- the cross checks --------------------------------------------------------------------


def _domains(c: _Checker, doc: _Doc) -> dict[str, Domain]:
    domains: dict[str, Domain] = {}
    for name, raw in doc.domains.items():
        p = f"domains.{name}"
        if name == "lo":
            c.error(p, "'lo' is the loopback interface inside every host; choose another name")
            continue
        subnet = raw.get("subnet")
        if subnet is None:
            continue
        for other in domains.values():
            # access domains may share one subnet: the layer-2 service bridges them
            both_access = raw.get("access") is not None and other.access is not None
            if subnet.overlaps(other.subnet) and not (both_access and subnet == other.subnet):
                c.error(f"{p}.subnet", f"{subnet} overlaps domain {other.name}'s {other.subnet}")
        domains[name] = Domain(name, **raw)
    if not domains:
        c.error("domains", "at least one domain is required")
    elif doc.control_domain not in domains:
        c.error("control_domain", f"{doc.control_domain!r} is not a declared domain")
    elif domains[doc.control_domain].access is not None:
        c.error("control_domain", f"{doc.control_domain} is an access domain")
    return domains


def _check_ospf_networks(
    c: _Checker, domains: Mapping[str, Domain], hosts: Mapping[str, Host], control: str
) -> None:
    """A point-to-point domain joins exactly two routers; no access domain runs OSPF; each
    node and PCE speaks OSPF on one of its domains at least."""
    for d in domains.values():
        if d.ospf is None:
            continue
        p = f"domains.{d.name}.ospf"
        if d.access is not None:
            c.error(p, "an access domain carries client traffic, not OSPF")
        elif d.ospf == "point-to-point":
            routers = [
                h.name for h in hosts.values() if h.kind in ROUTERS and d.name in h.interfaces
            ]
            if len(routers) != 2:
                c.error(p, f"a point-to-point domain joins two routers, {d.name} has "
                        f"{len(routers)} ({', '.join(routers) or 'none'})")  # fmt: skip

    def network(name: str) -> str:
        d = domains[name]
        return d.ospf or ("broadcast" if name == control else "passive")

    for h in hosts.values():
        ifaces = [d for d in h.interfaces if d in domains]
        if control not in ifaces:
            continue  # a router without a control address is reported already
        if h.kind in ("node", "pce") and all(network(d) == "passive" for d in ifaces):
            c.error(f"hosts.{h.name}.interfaces", "speaks OSPF on none of its domains "
                    "(each one is passive)")  # fmt: skip


def _check_access(c: _Checker, domains: Mapping[str, Domain], hosts: Mapping[str, Host]) -> None:
    """Access domains: each names a node (one access domain per node); only client hosts
    (kind ``host``) sit on them, and a client host sits on one access domain alone."""
    owner: dict[str, str] = {}
    for d in domains.values():
        if d.access is None:
            continue
        p = f"domains.{d.name}.access"
        if _ref(c, hosts, p, d.access, ("node",)) is not None:
            if d.access in owner:
                c.error(p, f"{d.access} already has the access domain {owner[d.access]}")
            owner.setdefault(d.access, d.name)
    for h in hosts.values():
        p = f"hosts.{h.name}.interfaces"
        for dname in h.interfaces:
            if domains[dname].access is not None and h.kind != "host":
                c.error(
                    f"{p}.{dname}",
                    f"{dname} is an access domain: only hosts of kind host sit on it "
                    f"(its node {domains[dname].access} joins it by its port access)",
                )
        if h.kind != "host":
            continue
        if len(h.interfaces) != 1:
            c.error(p, "a host of kind host has one interface, on an access domain")
        for dname in h.interfaces:
            if domains[dname].access is None:
                c.error(f"{p}.{dname}", f"{dname} is not an access domain (no access: NODE)")


def _interfaces(
    c: _Checker,
    host: str,
    raw: Mapping[Any, IPv4 | None],
    domains: Mapping[str, Domain],
    seen: dict[IPv4, str],
) -> dict[str, IPv4]:
    """A host's interfaces inside their domains, at addresses no other interface uses."""
    ifaces: dict[str, IPv4] = {}
    for dname, addr in raw.items():
        p = f"hosts.{host}.interfaces.{dname}"
        if dname not in domains:
            c.error(p, f"no domain {dname!r} is declared")
            continue
        if addr is None:
            continue  # left out, or not an address (reported)
        net = domains[dname].subnet
        if addr not in net:
            c.error(p, f"{addr} is outside the domain's subnet {net}")
        elif addr in (net.network_address, net.broadcast_address):
            c.error(p, f"{addr} is the network or broadcast address of {net}")
        if addr in seen:
            c.error(p, f"{addr} is already used by {seen[addr]}")
        seen[addr] = p
        ifaces[dname] = addr
    if not ifaces:
        c.error(f"hosts.{host}.interfaces", "a host needs at least one interface")
    return ifaces


def _hosts(c: _Checker, doc: _Doc, domains: Mapping[str, Domain]) -> dict[str, Host]:
    hosts: dict[str, Host] = {}
    seen_addr: dict[IPv4, str] = {}
    seen_rid: dict[IPv4, str] = {}
    for name, raw in doc.hosts.items():
        p = f"hosts.{name}"
        kind = raw.get("kind")
        ifaces = _interfaces(c, name, raw["interfaces"], domains, seen_addr)
        rid = raw.get("router_id")
        if rid is not None:
            if rid in seen_rid:
                c.error(f"{p}.router_id", f"{rid} is already the router ID of {seen_rid[rid]}")
            seen_rid[rid] = name
            if kind in ROUTERS and doc.control_domain not in ifaces:
                c.error(
                    f"{p}.interfaces",
                    f"a {kind} needs an address on the control domain {doc.control_domain}",
                )
        rest = {k: v for k, v in raw.items() if k not in ("kind", "interfaces")}
        if rest.get("serves"):
            rest["serves"] = rest["serves"][0]  # the site node; Topology.sites has them all
        # a host whose kind is wrong stays, as a node, so that references to it still check
        # (that it exists; not its kind, which was reported already: no cascade)
        if kind is None:
            c.unknown_kind.add(name)
        hosts[name] = Host(name, kind or "node", ifaces, **rest)
    return hosts


def _ref(
    c: _Checker, hosts: Mapping[str, Host], path: str, target: str | None, kinds: tuple[str, ...]
) -> Host | None:
    """The host ``target`` names, if it is declared and of one of these kinds."""
    if target is None:
        return None
    t = hosts.get(target)
    if t is None:
        c.error(path, f"no host {target!r} is declared")
    elif target in c.unknown_kind:
        return None
    elif t.kind not in kinds:
        c.error(path, f"{target} is a {t.kind}, not a {' or '.join(kinds)}")
        return None
    return t


def _shares_domain(c: _Checker, path: str, h: Host, other: Host | None) -> None:
    if other is not None and not set(other.interfaces) & set(h.interfaces):
        c.error(path, f"{other.name} shares no domain with {h.name}")


def _check_references(c: _Checker, hosts: Mapping[str, Host]) -> None:
    """Every name a host gives points at the right kind of host, and back when it must."""
    for h in hosts.values():
        p = f"hosts.{h.name}"
        proxy = _ref(c, hosts, f"{p}.qe.proxy", h.qe.proxy, _PROXY)
        _shares_domain(c, f"{p}.qe.proxy", h, proxy)
        if h.qe.capable and h.qe.proxy is None:
            c.error(f"{p}.qe.proxy", "a QE capable node needs the ETSI 004 proxy that serves it")
        _shares_domain(c, f"{p}.idq", h, _ref(c, hosts, f"{p}.idq", h.idq, _IDQ))
        peer = _ref(c, hosts, f"{p}.peer", h.peer, _PROXY)
        if peer is not None and peer.peer != h.name:
            c.error(f"{p}.peer", f"{peer.name}'s peer is {peer.peer}, not {h.name}")
        _shares_domain(c, f"{p}.peer", h, peer)
        pair = _ref(c, hosts, f"{p}.pair", h.pair, _IDQ)
        if pair is not None and pair.pair != h.name:
            c.error(f"{p}.pair", f"{pair.name}'s pair is {pair.pair}, not {h.name}")
        for i, sae in enumerate(h.saes):
            other = _ref(c, hosts, f"{p}.saes[{i}]", sae, tuple(KINDS))
            _shares_domain(c, f"{p}.saes[{i}]", h, other)
            if other is not None and other.kind != "client":
                c.error(
                    f"{p}.saes[{i}]", f"{sae} is a {other.kind}: an SAE listed here is a client"
                )
    listed = [s for h in hosts.values() for s in h.saes]
    for s in sorted({s for s in listed if listed.count(s) > 1}):
        c.error("hosts", f"{s} is listed as an SAE by more than one key manager")


def _te_links(
    c: _Checker, raw_links: tuple[dict[str, Any], ...], hosts: Mapping[str, Host]
) -> tuple[TeLink, ...]:
    """The TE links whose two ends are different declared routers, each interface ID of an
    end used once."""
    links: list[TeLink] = []
    used: dict[tuple[str, int], str] = {}
    for i, raw in enumerate(raw_links):
        p = f"te_links[{i}]"
        ok = True
        for key in ("a", "b"):
            end, end_if = raw.get(key), raw.get(f"{key}_if")
            if end is None or end_if is None:
                ok = False
                continue
            if _ref(c, hosts, f"{p}.{key}", end, TE_KINDS) is None:
                ok = False
            if (end, end_if) in used:
                c.error(f"{p}.{key}_if", f"{end}:{end_if} is already used by {used[(end, end_if)]}")
            used[(end, end_if)] = p
            _channel_names(c, f"{p}.{key}_if", end_if, raw.get("lambdas") or ())
        if raw.get("a") is not None and raw.get("a") == raw.get("b"):
            c.error(p, f"a TE link joins two different nodes, not {raw['a']} to itself")
            ok = False
        if ok:
            links.append(TeLink(**raw))
    return tuple(links)


def _channel_names(c: _Checker, path: str, local_if: int, lambdas: tuple[int, ...]) -> None:
    """Each lambda of a TE link is a kernel channel named ``te{I}l{n}`` at each end
    (:func:`gmpls.dataplane.names.channel_ifname`): the name must fit a Linux interface."""
    for lam in lambdas:
        try:
            channel_ifname(local_if, lam)
        except ValueError:
            c.error(
                path,
                f"the channel of lambda {lam} would be {channel_name_unchecked(local_if, lam)}, "
                f"longer than the {IFNAMSIZ} characters of a Linux interface name; "
                "choose a smaller interface ID",
            )
            return


# --- the cross checks of the QKD network: sites and QKD links ------------------------------


def _sites(c: _Checker, doc: _Doc, hosts: Mapping[str, Host]) -> dict[str, tuple[str, ...]]:
    """Key manager -> the nodes it serves. A node belongs to one site; a QE capable node's
    site is its ``qe.proxy``; a key manager shares a domain with every node it serves."""
    sites: dict[str, tuple[str, ...]] = {
        name: raw["serves"]
        for name, raw in doc.hosts.items()
        if hosts[name].kind == "qkd-proxy" and raw.get("serves")
    }
    owner: dict[str, str] = {}
    for km, nodes in sites.items():
        p = f"hosts.{km}.serves"
        for n in nodes:
            node = _ref(c, hosts, p, n, ("node",))
            if node is None:
                continue
            if (node.qe.capable or node.qe.proxy is not None) and node.qe.proxy != km:
                c.error(p, f"{n}'s qe.proxy is {node.qe.proxy}, not {km}")
                continue
            if n in owner:
                c.error(p, f"{n} is already served by {owner[n]} (a node belongs to one site)")
            owner.setdefault(n, km)
            _shares_domain(c, p, hosts[km], node)
    for h in hosts.values():
        proxy = h.qe.proxy
        if proxy is not None and proxy in sites and h.name not in sites[proxy]:
            c.error(
                f"hosts.{h.name}.qe.proxy",
                f"{proxy} does not serve {h.name} (its serves: {', '.join(sites[proxy])})",
            )
    return sites


def _legacy_links(c: _Checker, qkd: QkdConfig, hosts: Mapping[str, Host]) -> list[QkdLink]:
    """The one QKD link of each proxy pair in the legacy form (proxy ``idq`` + ``peer``,
    idq3p ``pair``), at the rate and buffer of ``qkd:``. Only a consistent pair makes a
    link; what is inconsistent is reported by the reference checks or here."""
    links = []
    for h in hosts.values():
        if h.kind != "qkd-proxy":
            continue
        if (h.idq is None) != (h.peer is None):
            c.error(f"hosts.{h.name}.{'peer' if h.peer is None else 'idq'}", "is required")
        peer = hosts.get(h.peer or "")
        if peer is None or peer.peer != h.name or h.name > peer.name:
            continue
        mine, theirs = hosts.get(h.idq or ""), hosts.get(peer.idq or "")
        if mine is None or theirs is None or mine.kind != "idq3p" or theirs.kind != "idq3p":
            continue
        if mine.pair == theirs.name and theirs.pair == mine.name:
            links.append(
                QkdLink(
                    link_name(h.name, peer.name),
                    h.name,
                    peer.name,
                    mine.name,
                    theirs.name,
                    float(qkd.secret_key_rate_bps),
                    qkd.buffer_bits,
                )
            )
        elif mine is not theirs and mine.pair not in (None, mine.name, theirs.name):
            c.error(
                f"hosts.{h.name}.idq",
                f"{mine.name}'s pair is {mine.pair}, not {theirs.name} ({peer.name}'s idq)",
            )
    return links


def _link_rate(c: _Checker, p: str, raw: dict[str, Any], qkd: QkdConfig) -> float | None:
    """A link's secret-key rate: fixed, from the decoy-BB84 model, or ``qkd:``'s."""
    fibre = raw.get("fibre_km")
    if fibre is None:
        for key in ("db_per_km", "extra_loss_db"):
            if key in raw:
                c.error(f"{p}.{key}", "applies to fibre_km, which is not given")
        return raw.get("rate_bps", float(qkd.secret_key_rate_bps))
    if "rate_bps" in raw:
        c.error(p, "give rate_bps (fixed) or fibre_km (modelled), not both")
        return None
    db, extra = raw.get("db_per_km", 0.2), raw.get("extra_loss_db", 0.0)
    rate = ratemodel.rate_for(fibre, db, extra)
    if rate <= 0:
        reach = ratemodel.max_fibre_km(db, extra)
        c.error(
            f"{p}.fibre_km",
            f"{fibre:g} km at {db:g} dB/km (+{extra:g} dB) yields no secret key in the "
            f"decoy-BB84 model, which reaches {reach:g} km (docs/qkd-rate-model.md)",
        )
        return None
    if rate > MAX_RATE_BPS:
        c.error(f"{p}.fibre_km", f"the model's {rate:.0f} b/s is above {MAX_RATE_BPS}")
        return None
    return rate


def _link_ends(
    c: _Checker, p: str, raw: dict[str, Any], hosts: Mapping[str, Host], used: dict[str, str]
) -> bool:
    """The ends of one ``qkd_links`` entry: two different key managers in no legacy link,
    sharing a domain, each next to its own emulator, which is in no other link."""
    ok = True
    for side in ("a", "b"):
        km = _ref(c, hosts, f"{p}.{side}", raw.get(side), _PROXY)
        if km is not None and (km.idq or km.peer):
            c.error(
                f"{p}.{side}",
                f"{km.name} gives idq/peer (the legacy form of one QKD link); a key manager "
                "is in qkd_links or gives idq and peer, not both",
            )
        q = _ref(c, hosts, f"{p}.{side}_idq", raw.get(f"{side}_idq"), _IDQ)
        if q is not None and q.pair is not None:
            c.error(f"{p}.{side}_idq", f"{q.name} gives pair (the legacy form); leave it out")
        elif q is not None and q.name in used:
            c.error(f"{p}.{side}_idq", f"{q.name} is already {used[q.name]}")
        elif q is not None:
            used[q.name] = f"{p}.{side}_idq"
        if km is not None and q is not None:
            _shares_domain(c, f"{p}.{side}_idq", km, q)
        ok = ok and km is not None and q is not None
    if raw.get("a") is not None and raw.get("a") == raw.get("b"):
        c.error(p, f"a QKD link joins two different key managers, not {raw['a']} to itself")
        return False
    if ok and not set(hosts[raw["a"]].interfaces) & set(hosts[raw["b"]].interfaces):
        c.error(p, f"{raw['a']} and {raw['b']} share no domain (their KM channel)")
        return False
    return ok


def _qkd_links(c: _Checker, doc: _Doc, hosts: Mapping[str, Host]) -> tuple[QkdLink, ...]:
    """Every QKD link, the legacy one(s) first; then every key manager and emulator must
    be in one."""
    links = _legacy_links(c, doc.qkd, hosts)
    used = {q: f"in the legacy QKD link {x.name}" for x in links for q in (x.a_idq, x.b_idq)}
    named: dict[str, str] = {}
    mentioned = {v for raw in doc.qkd_links for v in raw.values() if isinstance(v, str)}
    for i, raw in enumerate(doc.qkd_links):
        p = f"qkd_links[{i}]"
        ends_ok = _link_ends(c, p, raw, hosts, used)
        rate = _link_rate(c, p, raw, doc.qkd)
        if not ends_ok or rate is None:
            continue
        name = link_name(raw["a"], raw["b"])
        if name in named:
            c.error(p, f"{name} is already {named[name]} (one QKD link per pair of key managers)")
            continue
        named[name] = p
        buffer = raw.get("buffer_bits", doc.qkd.buffer_bits)
        fibre = raw.get("fibre_km")
        links.append(
            QkdLink(name, raw["a"], raw["b"], raw["a_idq"], raw["b_idq"], rate, buffer, fibre)
        )
    legacy_only = not doc.qkd_links
    for h in hosts.values():
        if h.name in mentioned or h.kind not in ("qkd-proxy", "idq3p"):
            continue
        p = f"hosts.{h.name}"
        if h.kind == "qkd-proxy" and h.idq is None and h.peer is None:
            if legacy_only:
                c.error(f"{p}.idq", "is required")
                c.error(f"{p}.peer", "is required")
            else:
                c.error(p, "a key manager needs a QKD link: name it in qkd_links")
        elif h.kind == "idq3p" and h.pair is None:
            if legacy_only:
                c.error(f"{p}.pair", "is required")
            else:
                c.error(p, "an emulator needs a QKD link: name it in qkd_links")
    return tuple(links)


# --- the entry points --------------------------------------------------------------------


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
    d: _Doc = c.load(_TOP, doc, "")
    domains = _domains(c, d)
    hosts = _hosts(c, d, domains)
    _check_references(c, hosts)
    _check_access(c, domains, hosts)
    _check_ospf_networks(c, domains, hosts, d.control_domain)
    links = _te_links(c, d.te_links, hosts)
    sites = _sites(c, d, hosts)
    qkd_links = _qkd_links(c, d, hosts)
    if c.problems:
        raise TopologyError(c.problems)
    return Topology(
        d.name,
        d.prefix,
        domains,
        hosts,
        links,
        d.control_domain,
        d.ospf,
        d.rsvp,
        d.qkd,
        qkd_links=qkd_links,
        sites=sites,
    )


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
