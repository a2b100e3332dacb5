"""One QE service as a node holds it (:class:`Service`), and the names the core and the
CLI share. Keys live only in :attr:`Service.key`, in memory; everything shown or logged
is the key index, the SHA-256 fingerprint (16 hex digits) or an 8-hex-digit prefix of
the key_handle."""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any

from gmpls import ero, qe
from gmpls.errors import RequestRefused
from gmpls.rsvp.events import LspKey

MIB = 1 << 20
#: how many (index, fingerprint) pairs a service remembers for ``show qe-service``
HISTORY = 32

#: service states
COMPUTING, KEYING, SIGNALLING, UP, REROUTING, FAILED, DOWN = (
    "computing",
    "keying",
    "signalling",
    "up",
    "rerouting",
    "failed",
    "down",
)
FINISHED = (FAILED, DOWN)
#: the states in which a service holds its key session and refreshes its key
KEYED = (UP, REROUTING)
#: the stages of a setup an end records, in the order they happen (docs/qe-service.md):
#: head: PCReq sent, PCRep received, key session asked for by RSVP, QKD_OPEN sent, its
#: answer, the CONNECT and GET_KEY answers, Path sent (QeSessionReady), Resv in (up);
#: tail: Path in, QKD_OPEN sent ... GET_KEY answer, Resv sent (up)
STAGES = (
    "pcreq",
    "pcrep",
    "path_in",
    "session_asked",
    "etsi_open",
    "etsi_opened",
    "etsi_connected",
    "etsi_got_key",
    "path_out",
    "resv_out",
    "up",
)


class QeServiceError(RequestRefused, RuntimeError):
    """A request that cannot be carried out (bad arguments, unknown service): the
    caller's fault, nothing changed."""


def fingerprint(key: bytes) -> str:
    """The first 16 hex digits of the key's SHA-256 (what the CLI shows; never the key)."""
    return hashlib.sha256(key).hexdigest()[:16]


def refresh_type_name(t: int) -> str:
    return {0: "none", 1: "time", 2: "volume"}.get(t, str(t))


@dataclass(eq=False)
class Service:
    """One QE service at this node (head or tail). ``key`` stays in memory only."""

    id: str
    role: str  # "head" or "tail"
    peer: IPv4Address  # head: the destination; tail: the head
    params: qe.QeParams
    bandwidth_bps: float = 0.0
    tunnel_id: int = 0
    state: str = COMPUTING
    lsp: LspKey | None = None
    path: list[str] = field(default_factory=list)
    key_handle: bytes | None = None
    key: bytes | None = field(default=None, repr=False)
    key_index: int | None = None
    refresh_count: int = 0
    refresh_failures: int = 0
    #: refreshes that failed for lack of key (QKD_GET_KEY status 2, or no answer)
    refresh_no_key: int = 0
    #: why the last refresh failed, until one succeeds again
    refresh_error: str = ""
    #: head: the key relay path the PCE gave (site IDs, head site first), handed to the
    #: key manager in QKD_OPEN; a tail does not know it (ETSI 004 does not say)
    relay: tuple[IPv4Address, ...] = ()
    target_index: int = 0
    bytes_counted: int = 0
    #: of which the data plane reported (encrypted + decrypted at this end)
    bytes_dataplane: int = 0
    rate_bps: float = 0.0
    error: str = ""
    code: tuple[int, int] | None = None
    labels: str = "pce"  # "pce": the PCE's explicit labels; "local": chosen hop by hop
    attempts: int = 0
    created: float = 0.0
    created_wall: float = 0.0
    up_at: float | None = None
    history: deque[tuple[int, str]] = field(default_factory=lambda: deque(maxlen=HISTORY))
    deleted: bool = False
    #: time refresh: key ``target_index + 1`` is due at ``refresh_at``
    refresh_at: float | None = None
    refresh_anchor: float = 0.0
    #: simulated rate: the next 100 ms of traffic is counted at ``rate_at``
    rate_at: float | None = None
    #: a catch-up GET_KEY is out; another catch-up was asked for meanwhile
    fetching: bool = False
    fetch_again: bool = False
    #: head: delegated to a stateful PCE (RFC 8231), which may move it (PCUpd); a failure
    #: of its LSP then holds the key session for the PCE's new path (state rerouting)
    delegated: bool = False
    #: rerouting: the key session is held until then for a new LSP of the same ends
    hold_until: float | None = None
    #: head: a move in progress (make-before-break), its route and its LSP once seen
    update_route: tuple[ero.Subobject, ...] | None = None
    next_lsp: LspKey | None = None
    #: tail: the LSP a move left, still up until the new one is (the service falls back to
    #: it if the new one fails first)
    prev_lsp: LspKey | None = None
    #: the RSVP core gave the key session back with its LSP; the LspDown that follows
    #: says whether the service keeps it (rerouting) or closes it
    close_pending: bool = False
    #: times the service moved to a new LSP keeping its key session; why the last move
    #: failed ("" when it did not)
    moves: int = 0
    move_error: str = ""
    #: when each stage of the setup happened (the core's ``now``), by name: see
    #: :data:`STAGES`; a retried setup overwrites the stages it repeats
    stages: dict[str, float] = field(default_factory=dict)

    @property
    def fingerprint(self) -> str | None:
        return fingerprint(self.key) if self.key is not None else None

    @property
    def finished(self) -> bool:
        return self.state in FINISHED

    def stage(self, name: str, now: float, first: bool = False) -> None:
        """Record that stage ``name`` happened at ``now`` (``first``: keep an earlier one)."""
        if not first or name not in self.stages:
            self.stages[name] = now

    def stages_json(self) -> list[dict[str, Any]]:
        return stages_json(self.stages, self.created, self.created_wall - self.created)

    def take_key(self, index: int, key: bytes) -> None:
        self.key = key
        self.key_index = index
        self.history.append((index, fingerprint(key)))

    def as_json(
        self, now: float, site_names: Mapping[IPv4Address, str] | None = None
    ) -> dict[str, Any]:
        """What ``show qe-service json`` says; ``site_names`` names the relay path's
        sites by their key managers where known."""
        p = self.params
        names = site_names or {}
        relay = [str(x) for x in self.relay] if self.role == "head" else None
        return {
            "id": self.id,
            "role": self.role,
            "state": self.state,
            "destination" if self.role == "head" else "source": str(self.peer),
            "tunnel_id": self.tunnel_id,
            "lsp": str(self.lsp) if self.lsp else None,
            "path": self.path,
            "key_length": p.key_length,
            "layer": p.enc_layer,
            "algorithm": p.algorithm,
            "refresh": {"type": refresh_type_name(p.refresh_type), "value": p.refresh_value},
            "bandwidth_bps": self.bandwidth_bps,
            "key_handle_prefix": self.key_handle[:4].hex() if self.key_handle else None,
            "key_index": self.key_index,
            "fingerprint": self.fingerprint,
            "refresh_count": self.refresh_count,
            "refresh_failures": self.refresh_failures,
            "refresh_no_key": self.refresh_no_key,
            "refresh_error": self.refresh_error or None,
            "relay_path": relay,
            "relay_kms": None if relay is None else [names.get(x, "?") for x in self.relay],
            "keys": [{"index": i, "fingerprint": f} for i, f in self.history],
            "bytes": self.bytes_counted,
            "bytes_dataplane": self.bytes_dataplane,
            "labels": self.labels,
            "delegated": self.delegated,
            "moves": self.moves,
            "setup_ms": None
            if self.up_at is None
            else round((self.up_at - self.created) * 1000, 3),
            "stages": self.stages_json(),
            "age_s": round(now - self.created, 3),
            "created_at": round(self.created_wall, 6),
            "error": self.error or None,
            "code": list(self.code) if self.code else None,
        }


def stages_json(
    stages: Mapping[str, float], origin: float, wall_offset: float
) -> list[dict[str, Any]]:
    """``[{"stage", "t_ms", "at"}]`` in time order: ``t_ms`` from ``origin``, ``at`` the
    wall-clock time (``now + wall_offset``, seconds since the epoch) so that the stages of
    several nodes can be put on one time line."""
    out = sorted(
        stages.items(), key=lambda kv: (kv[1], STAGES.index(kv[0]) if kv[0] in STAGES else 99)
    )
    return [
        {"stage": k, "t_ms": round((t - origin) * 1000, 3), "at": round(t + wall_offset, 6)}
        for k, t in out
    ]


def route_nodes(route: Sequence[ero.Subobject]) -> list[str]:
    """The router IDs an ERO (or RRO) names, in order, each once."""
    out: list[str] = []
    for s in route:
        rid = None
        if isinstance(s, ero.Unnumbered):
            rid = str(s.router_id)
        elif isinstance(s, ero.Ipv4Prefix):
            rid = str(s.address)
        if rid is not None and (not out or out[-1] != rid):
            out.append(rid)
    return out
