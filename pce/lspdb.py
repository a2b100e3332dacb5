"""The stateful PCE's LSP database (RFC 8231 §5.4-§5.8) and its lambda ledger, pure.

Per PCC (its address) the LSPs it reported, by PLSP-ID, as PCRpt messages say them: the
symbolic name, head and tail (IPV4-LSP-IDENTIFIERS, else the PCC and the last ERO hop),
the path setup type (the SRP's PATH-SETUP-TYPE, RFC 8408), the operational state (O),
delegated (D) and administrative (A) flags, the ERO and RRO, the lambdas the ERO names
(RFC 6205 labels after each unnumbered hop) and the QE parameters of its QE subobjects.

State synchronisation (RFC 8231 §5.6): when a stateful session comes up, every LSP the DB
holds for that PCC is marked stale; the reports with S set re-validate them; the
end-of-sync marker (PLSP-ID 0, S clear) ends the synchronisation and removes the LSPs not
reported again. An empty synchronisation (the marker alone) thus empties the PCC's part,
and after a PCC restart only what it still has remains. When the session goes down the
LSPs stay (with ``pcc_up`` false, delegation returned, §5.7.5) until the next sync. A
report with R set removes the LSP (§5.8.3).

The lambda ledger: :meth:`LspDb.held` gives, per TE link (router, interface), the lambdas
in use by reported LSPs not down, and those of paths the PCE just computed, reserved by
:meth:`LspDb.reserve` until the head reports the LSP or ``hold`` seconds pass. Path
computation takes them out of the free lambdas, so two requests in a burst never get the
same lambda on a link, before OSPF-TE has flooded the first one's. A lambda is held at both
ends of its link (each node's interface), so the TED lists it used in both directions:
the ledger's (link, lambda) counts in both (:meth:`pce.compute.Graph.without`).

The other way round, :meth:`LspDb.freed` gives the lambdas of LSPs their heads reported
removed (R flag, RFC 8231 §5.8.3) while the TED still lists them used: an LSP last
reported up held every lambda its ERO names, on both directions of each link, and the
head's teardown lets them go (the node agents report the removal at the delete, a round
trip before their graceful deletion ends: a head given such a lambda meanwhile signals the
hops without labels, and that report ends the path's reservation, :meth:`_confirm`). Each (direction, lambda) is free for path computation
while the TE LSA the TED has for that direction is the one it had at the removal
(:meth:`pce.ted.Ted.te_stamp`): a newer one is the truth again, whatever it says (a lambda
it still lists used is someone else's, or was advertised before the removal). Lambdas held
by reported LSPs or reservations stay out whatever was freed, and a release lasts at most
``hold`` seconds, so it never outlives the reservation of a path computed after it (a
stateless head that took the lambda reports nothing). LSPs purged without a removal (not
re-synchronised, State Timeout) free nothing: their head may be gone with RSVP state left
downstream until it times out. The TED (:class:`TeStamps`) is the one path computation
uses; :class:`pce.service.PceService` sets it.

Delegation (RFC 8231 §5.7): an LSP is delegated while its last report had D set and the
PCC's session is up; this PCE then moves it with PCUpd (:mod:`pce.updates`), one update
outstanding at a time (:meth:`LspDb.update_sent`, answered by a report naming the update's
SRP-ID or by a PCErr naming it, else given up after ``update_wait`` seconds). When the
session goes down delegation returns to the PCC and the LSPs stay for ``state_timeout``
seconds (the State Timeout Interval, §5.7.4-5.7.6): a PCC back within it re-synchronises
them (and delegates them again with D); otherwise they are purged with their lambdas.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import Any, Protocol

from gmpls import qe
from gmpls.ero import Ipv4Prefix, Label, QeSubobject, Subobject, Unnumbered, lambda_channel
from gmpls.pcep.constants import (
    ERR_LSP_IDENTIFIERS_MISSING,
    ERR_SYMBOLIC_NAME_MISSING,
    LSP_FLAG_A,
    LspState,
    PathSetupType,
)
from gmpls.pcep.messages import LspEntry, PCRpt
from gmpls.pcep.tlv import LspErrorCodeTlv, NoPathReasonTlv, find_tlv

#: (router ID, local interface ID) of a TE link, as the TED keys it
LinkKey = tuple[IPv4Address, int]


def route_lambdas(route: Iterable[Subobject]) -> list[tuple[LinkKey, int]]:
    """(link, lambda) of each label subobject that follows an unnumbered hop (Fig. 9): the
    downstream label, and an upstream one (U bit) when the ERO names it."""
    out: list[tuple[LinkKey, int]] = []
    hop: LinkKey | None = None
    for s in route:
        if isinstance(s, Unnumbered):
            hop = (s.router_id, s.interface_id)
        elif isinstance(s, Label):
            if hop is not None:
                out.append((hop, lambda_channel(s.label)))
        elif not isinstance(s, QeSubobject):
            hop = None
    return out


def route_links(route: Iterable[Subobject]) -> list[LinkKey]:
    """The links (router, outgoing interface) of the route's unnumbered hops, in order."""
    return [(s.router_id, s.interface_id) for s in route if isinstance(s, Unnumbered)]


class TeStamps(Protocol):
    """What the ledger asks the TED (:class:`pce.ted.Ted`) about a TE link direction."""

    def te_stamp(self, link: LinkKey) -> int: ...

    def reverse_of(self, link: LinkKey) -> LinkKey | None: ...


def _hop_text(s: Subobject) -> str:
    if isinstance(s, Unnumbered):
        return str(s)
    if isinstance(s, Ipv4Prefix):
        return f"{s.address}/{s.prefix_len}"
    if isinstance(s, Label):
        return f"label {lambda_channel(s.label)}"
    if isinstance(s, QeSubobject):
        return "QE"
    return f"subobject {getattr(s, 'type', type(s).__name__)}"


@dataclass(slots=True)
class Lsp:
    """One reported LSP."""

    pcc: str
    plsp_id: int
    name: str
    head: IPv4Address | None
    tail: IPv4Address | None
    pst: int
    state: int
    delegated: bool
    admin: bool
    route: tuple[Subobject, ...]
    recorded: tuple[Subobject, ...]
    updated: float
    stale: bool = False
    pcc_up: bool = True
    #: why the PCC reports it down or failed (LSP-ERROR-CODE, and the reason text)
    error_code: int = 0
    error: str = ""
    #: the SRP-ID of the PCUpd outstanding for it, and when it went out
    update_srp: int | None = None
    update_at: float = 0.0
    #: updates sent, and what became of the last (``moved``, ``PCErr 19/1``, no path...)
    updates: int = 0
    update_result: str = ""
    #: reported up (or active) and not down since: every lambda its ERO names was held
    #: end to end; a report going down (a graceful deletion under way) keeps it
    signalled: bool = False

    @property
    def lambdas(self) -> list[tuple[LinkKey, int]]:
        return route_lambdas(self.route)

    @property
    def qe(self) -> qe.QeParams | None:
        sub = next((s for s in self.route if isinstance(s, QeSubobject)), None)
        return sub.params() if sub is not None else None

    @property
    def holds_lambdas(self) -> bool:
        """Whether its lambdas count as used: an RSVP-TE LSP not reported down."""
        return self.pst == PathSetupType.RSVP_TE and self.state != LspState.DOWN

    def as_json(self) -> dict[str, Any]:
        params = self.qe
        state = LspState(self.state).name if self.state in LspState._value2member_map_ else None
        pst = PathSetupType(self.pst).name if self.pst in PathSetupType._value2member_map_ else None
        return {
            "pcc": self.pcc,
            "plsp_id": self.plsp_id,
            "name": self.name,
            "head": str(self.head) if self.head else None,
            "tail": str(self.tail) if self.tail else None,
            "pst": pst or self.pst,
            "state": (state or str(self.state)).lower().replace("_", "-"),
            "delegated": self.delegated,
            "administrative": self.admin,
            "path": [_hop_text(s) for s in self.route],
            "lambdas": [
                {"link": f"{r}:{i}", "lambda": ch} for (r, i), ch in route_lambdas(self.route)
            ],
            "qe": None
            if params is None
            else {
                "key_length": params.key_length,
                "layer": params.enc_layer,
                "algorithm": params.algorithm,
                "refresh_type": params.refresh_type,
                "refresh_value": params.refresh_value,
            },
            "stale": self.stale,
            "pcc_up": self.pcc_up,
            "error": self.error or None,
            "error_code": self.error_code or None,
            "update_pending": self.update_srp,
            "updates": self.updates,
            "update_result": self.update_result or None,
        }


@dataclass(slots=True)
class Initiation:
    """A QE service this PCE asked a head to set up (RFC 8281 PCInitiate), by SRP-ID."""

    srp_id: int
    head: IPv4Address
    tail: IPv4Address
    name: str
    state: str = "initiating"  # setting-up, up, failed, releasing, released
    plsp_id: int | None = None
    reason: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.srp_id,
            "head": str(self.head),
            "tail": str(self.tail),
            "name": self.name,
            "state": self.state,
            "plsp_id": self.plsp_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class Reservation:
    """Lambdas of a path just computed for ``head``, held until ``until``."""

    head: IPv4Address
    tail: IPv4Address | None
    lambdas: tuple[tuple[LinkKey, int], ...]
    until: float


@dataclass(slots=True)
class Release:
    """The lambdas of removed LSPs on one direction of a link: free while the TED's TE LSA
    for that direction has ``stamp`` (the one it had at the removals), each until the time
    it maps to (oldest first)."""

    stamp: int
    until: dict[int, float] = field(default_factory=dict)


@dataclass(slots=True)
class SyncState:
    """Where the state synchronisation of a PCC stands."""

    syncing: bool = False
    synced_at: float | None = None
    syncs: int = 0
    #: when its session went down (None: up); its LSPs go State Timeout seconds later
    down_at: float | None = None


@dataclass(slots=True)
class Counters:
    reports: int = 0
    removed: int = 0
    purged: int = 0
    purged_timeout: int = 0
    updates: int = 0
    updates_refused: int = 0
    reservations: int = 0
    reservations_expired: int = 0
    reservations_confirmed: int = 0
    refused: int = 0
    #: (direction, lambda) freed by removal reports; those a newer TE LSA superseded, and
    #: those that lapsed after the hold time without one
    released: int = 0
    releases_superseded: int = 0
    releases_expired: int = 0


class LspDb:
    """The LSPs of every PCC, and the lambda ledger (see the module doc)."""

    def __init__(
        self, hold: float = 30.0, state_timeout: float = 60.0, update_wait: float = 10.0
    ) -> None:
        #: seconds a computed path's lambdas stay reserved without a report
        self.hold = hold
        #: seconds the LSPs of a PCC whose session went down are kept (RFC 8231 §5.7.4)
        self.state_timeout = state_timeout
        #: seconds an update waits for its answer before another may go
        self.update_wait = update_wait
        self._srp_id = 0
        self.lsps: dict[str, dict[int, Lsp]] = {}
        self.sync: dict[str, SyncState] = {}
        self.reservations: list[Reservation] = []
        self.initiations: dict[int, Initiation] = {}
        #: lambdas of removed LSPs the TED may still list used, per link direction
        self.releases: dict[LinkKey, Release] = {}
        #: the TED path computation overlays (set by :class:`pce.service.PceService`);
        #: None: removals free nothing before the TED says so
        self.te: TeStamps | None = None
        self.counters = Counters()

    # -- sessions -----------------------------------------------------------------------

    def session_up(self, pcc: str, now: float) -> None:
        """A stateful session with ``pcc`` is up: its known LSPs await re-synchronisation."""
        st = self.sync.setdefault(pcc, SyncState())
        st.syncing = True
        st.down_at = None
        for lsp in self.lsps.get(pcc, {}).values():
            lsp.stale = True
            lsp.pcc_up = True

    def session_down(self, pcc: str, now: float = 0.0) -> None:
        """The session is gone: the LSPs stay for ``state_timeout`` seconds, their
        delegation returns to the PCC (an outstanding update is void)."""
        st = self.sync.setdefault(pcc, SyncState())
        st.syncing = False
        st.down_at = now
        for lsp in self.lsps.get(pcc, {}).values():
            lsp.pcc_up = False
            lsp.delegated = False
            lsp.update_srp = None

    def _state_timeout(self, now: float) -> None:
        """Purge the LSPs of PCCs down for ``state_timeout`` seconds (their lambdas go)."""
        for pcc, st in list(self.sync.items()):
            if st.down_at is not None and now - st.down_at >= self.state_timeout:
                gone = self.lsps.pop(pcc, {})
                self.counters.purged_timeout += len(gone)
                del self.sync[pcc]  # forgotten: a new session is a new PCC

    # -- updates (RFC 8231 §5.8.2) ---------------------------------------------------------

    def new_srp_id(self) -> int:
        """A new SRP-ID (initiations and updates share the space; RFC 8231 §7.2)."""
        self._srp_id = max(self._srp_id, *self.initiations, 0) + 1
        return self._srp_id

    def update_sent(self, lsp: Lsp, srp_id: int, now: float) -> None:
        lsp.update_srp, lsp.update_at = srp_id, now
        lsp.updates += 1
        lsp.update_result = "sent"
        self.counters.updates += 1

    def update_outstanding(self, lsp: Lsp, now: float) -> bool:
        return lsp.update_srp is not None and now - lsp.update_at < self.update_wait

    def find(self, pcc: str, plsp_id: int) -> Lsp | None:
        return self.lsps.get(pcc, {}).get(plsp_id)

    # -- reports ------------------------------------------------------------------------

    def report(self, pcc: str, msg: PCRpt, now: float) -> list[tuple[tuple[int, int], LspEntry]]:
        """Take in a PCRpt from ``pcc``; return the (PCErr code, entry) of each report the
        PCE refuses (RFC 8231 §8.5: a new LSP without its SYMBOLIC-PATH-NAME (10, 8), a new
        RSVP-TE one without IPV4-LSP-IDENTIFIERS (6, 11)); the others are applied."""
        refused = []
        for entry in msg.entries:
            code = self._apply(pcc, entry, now)
            if code is not None:
                self.counters.refused += 1
                refused.append((code, entry))
        return refused

    def _apply(self, pcc: str, entry: LspEntry, now: float) -> tuple[int, int] | None:
        lsp = entry.lsp
        if lsp.end_of_sync:
            self._end_of_sync(pcc, now)
            return None
        self.counters.reports += 1
        mine = self.lsps.setdefault(pcc, {})
        if lsp.remove:
            gone = mine.pop(lsp.plsp_id, None)
            if gone is not None:
                self.counters.removed += 1
                self._release(gone, now)
            self._initiation_reported(entry)
            return None
        known = mine.get(lsp.plsp_id)
        if known is None and not lsp.name:
            return ERR_SYMBOLIC_NAME_MISSING
        ids = lsp.identifiers
        pst = entry.srp.pst if entry.srp is not None else PathSetupType.RSVP_TE
        if known is None and ids is None and pst == PathSetupType.RSVP_TE:
            return ERR_LSP_IDENTIFIERS_MISSING
        route = entry.ero.subobjects if entry.ero is not None else ()
        tail = ids.endpoint if ids is not None else _last_address(route)
        new = Lsp(
            pcc,
            lsp.plsp_id,
            lsp.name or (known.name if known else ""),
            ids.sender if ids is not None else (known.head if known else None),
            tail if tail is not None else (known.tail if known else None),
            pst,
            int(lsp.state),
            lsp.delegated,
            bool(lsp.flags & LSP_FLAG_A),
            route,
            entry.rro.subobjects if entry.rro is not None else (),
            now,
        )
        _carry_over(known, new, entry)
        mine[lsp.plsp_id] = new
        self._confirm(new, first=known is None or known.route != new.route)
        self._initiation_reported(entry)
        return None

    def _initiation_reported(self, entry: LspEntry) -> None:
        """A report answering a PCInitiate (its SRP-ID, RFC 8281 §5.3): the initiation's
        state follows the LSP's."""
        ini = self.initiations.get(entry.srp.srp_id) if entry.srp is not None else None
        if ini is None:
            return
        lsp = entry.lsp
        ini.plsp_id = lsp.plsp_id
        if lsp.remove:
            if ini.state in ("up", "releasing"):
                ini.state = "released"
            else:
                ini.state, ini.reason = "failed", "the head removed the LSP before it was up"
        elif lsp.state == LspState.UP:
            ini.state, ini.reason = "up", ""
        elif ini.state == "initiating":
            ini.state = "setting-up"
        if lsp.remove and ini.state == "failed":
            why = _reported_error(entry)[1]
            ini.reason = why or ini.reason

    def srp_refused(self, srp_id: int, codes: list[tuple[int, int]]) -> None:
        """The PCC answered a PCInitiate or a PCUpd with a PCErr naming its SRP."""
        why = f"PCErr {', '.join(f'{t}/{v}' for t, v in codes)}"
        ini = self.initiations.get(srp_id)
        if ini is not None:
            ini.state, ini.reason = "failed", why
        for lsp in self.all():
            if lsp.update_srp == srp_id:
                lsp.update_srp, lsp.update_result = None, why
                self.counters.updates_refused += 1

    def _end_of_sync(self, pcc: str, now: float) -> None:
        st = self.sync.setdefault(pcc, SyncState())
        st.syncing = False
        st.synced_at = now
        st.syncs += 1
        mine = self.lsps.get(pcc, {})
        for plsp_id in [k for k, v in mine.items() if v.stale]:
            del mine[plsp_id]
            self.counters.purged += 1

    # -- the lambda ledger ---------------------------------------------------------------

    def reserve(
        self,
        head: IPv4Address,
        tail: IPv4Address | None,
        lambdas: Iterable[tuple[LinkKey, int]],
        now: float,
    ) -> None:
        """Hold the lambdas of a path just computed for ``head`` (see the module doc)."""
        held = tuple(lambdas)
        if held:
            self.counters.reservations += 1
            self.reservations.append(Reservation(head, tail, held, now + self.hold))

    def _confirm(self, lsp: Lsp, first: bool) -> None:
        """The head reported the LSP of a reservation: the LSP holds its lambdas now. A
        route on the same hops without labels (the head found the PCE's lambda busy on its
        own link and let each hop choose, docs/qe-service.md) ends one reservation, the
        oldest, the first time it is reported: the lambdas are the TED's to tell."""
        have = set(lsp.lambdas)
        hops = route_links(lsp.route) if first and not have else None
        keep = []
        for r in self.reservations:
            if r.head != lsp.head or r.tail != lsp.tail:
                keep.append(r)
            elif have and set(r.lambdas) <= have:
                self.counters.reservations_confirmed += 1
            elif hops is not None and [link for link, _ in r.lambdas] == hops:
                self.counters.reservations_confirmed += 1
                hops = None
            else:
                keep.append(r)
        self.reservations = keep

    def _release(self, lsp: Lsp, now: float) -> None:
        """The head removed ``lsp``: if it was up, the lambdas its ERO names are free on
        both directions of their links until a newer TE LSA (see the module doc)."""
        te = self.te
        if te is None or not lsp.holds_lambdas or not lsp.signalled:
            return  # an LSP never up may have failed on a lambda someone else holds
        for link, ch in lsp.lambdas:
            for d in (link, te.reverse_of(link)):
                if d is None:
                    continue
                r = self.releases.get(d)
                stamp = te.te_stamp(d)
                if r is None or r.stamp != stamp:  # a newer TE LSA made the others void
                    self.counters.releases_superseded += len(r.until) if r else 0
                    r = self.releases[d] = Release(stamp)
                r.until.pop(ch, None)  # kept oldest first
                r.until[ch] = now + self.hold
                self.counters.released += 1

    def freed(self, now: float) -> dict[LinkKey, set[int]]:
        """The lambdas free on each link direction although the TED lists them used: those
        of removed LSPs, until a newer TE LSA for that direction or ``hold`` seconds.
        Lambdas :meth:`held` names stay out of the free ones all the same."""
        out: dict[LinkKey, set[int]] = {}
        for d, r in list(self.releases.items()):
            if self.te is None or self.te.te_stamp(d) != r.stamp:
                self.counters.releases_superseded += len(r.until)
                del self.releases[d]
                continue
            while r.until:
                ch, until = next(iter(r.until.items()))
                if until > now:
                    break
                del r.until[ch]
                self.counters.releases_expired += 1
            if r.until:
                out[d] = set(r.until)
            else:
                del self.releases[d]
        return out

    def expire(self, now: float) -> None:
        keep = [r for r in self.reservations if r.until > now]
        self.counters.reservations_expired += len(self.reservations) - len(keep)
        self.reservations = keep

    def held(self, now: float) -> dict[LinkKey, set[int]]:
        """The lambdas in use or reserved on each link at ``now``."""
        self.expire(now)
        self._state_timeout(now)
        out: dict[LinkKey, set[int]] = {}
        for mine in self.lsps.values():
            for lsp in mine.values():
                if lsp.holds_lambdas:
                    for link, ch in lsp.lambdas:
                        out.setdefault(link, set()).add(ch)
        for r in self.reservations:
            for link, ch in r.lambdas:
                out.setdefault(link, set()).add(ch)
        return out

    # -- views --------------------------------------------------------------------------

    def all(self) -> list[Lsp]:
        return [lsp for pcc in sorted(self.lsps) for _, lsp in sorted(self.lsps[pcc].items())]

    def as_json(self, now: float) -> dict[str, Any]:
        self.expire(now)
        self._state_timeout(now)
        c = self.counters
        return {
            "lsps": [lsp.as_json() for lsp in self.all()],
            "pccs": {
                pcc: {
                    "syncing": st.syncing,
                    "syncs": st.syncs,
                    "up": st.down_at is None,
                    "purge_in_s": None
                    if st.down_at is None
                    else round(max(0.0, st.down_at + self.state_timeout - now), 1),
                }
                for pcc, st in sorted(self.sync.items())
            },
            "reservations": len(self.reservations),
            "released": sum(len(x) for x in self.freed(now).values()),
            "initiated": [i.as_json() for _, i in sorted(self.initiations.items())],
            "counters": {
                "reports": c.reports,
                "removed": c.removed,
                "purged_after_sync": c.purged,
                "purged_state_timeout": c.purged_timeout,
                "updates": c.updates,
                "updates_refused": c.updates_refused,
                "refused": c.refused,
                "reservations": c.reservations,
                "reservations_confirmed": c.reservations_confirmed,
                "reservations_expired": c.reservations_expired,
                "released": c.released,
                "releases_superseded": c.releases_superseded,
                "releases_expired": c.releases_expired,
            },
        }


#: states of an LSP signalled end to end: each lambda its ERO names was held
_SIGNALLED = (LspState.UP, LspState.ACTIVE)


def _reported_error(entry: LspEntry) -> tuple[int, str]:
    """The LSP-ERROR-CODE and reason text (this project's 65504 TLV) of a report."""
    tlvs = entry.lsp.tlvs
    code = find_tlv(tlvs, LspErrorCodeTlv)
    text = find_tlv(tlvs, NoPathReasonTlv)
    return (
        code.code if isinstance(code, LspErrorCodeTlv) else 0,
        text.text if isinstance(text, NoPathReasonTlv) else "",
    )


def _carry_over(known: Lsp | None, new: Lsp, entry: LspEntry) -> None:
    """What a new report keeps of the LSP: the update outstanding (unless this report
    answers it, naming its SRP-ID), the count of updates, whether it was signalled end to
    end (through a report going down); the error is the report's."""
    new.error_code, new.error = _reported_error(entry)
    new.signalled = new.state in _SIGNALLED or (
        known is not None and known.signalled and new.state == LspState.GOING_DOWN
    )
    if known is None:
        return
    new.updates, new.update_result = known.updates, known.update_result
    new.update_srp, new.update_at = known.update_srp, known.update_at
    srp = entry.srp.srp_id if entry.srp is not None else 0
    if known.update_srp is not None and srp == known.update_srp:
        new.update_srp = None
        new.update_result = new.error or ("moved" if new.state == LspState.UP else "down")


def _last_address(route: tuple[Subobject, ...]) -> IPv4Address | None:
    for s in reversed(route):
        if isinstance(s, Ipv4Prefix):
            return s.address
    return None


__all__ = [
    "Initiation",
    "LinkKey",
    "Lsp",
    "LspDb",
    "Release",
    "Reservation",
    "TeStamps",
    "route_lambdas",
    "route_links",
]
