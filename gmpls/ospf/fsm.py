"""The RFC 2328 state machines as tables (h11 style): interface (§9.1-§9.3) and neighbor
(§10.1-§10.3). Read each table against the RFC's own; the actions are named after the RFC's
text and carried out by :class:`gmpls.ospf.router.OspfRouter`.

A missing ``(state, event)`` entry means the RFC does not define the event in that state;
the router ignores such an event (and logs it), which is what RFC 2328 §10.3 asks of
events that "cannot occur" in practice.
"""

from __future__ import annotations

from enum import IntEnum


class IfState(IntEnum):
    """RFC 2328 §9.1."""

    DOWN = 0
    LOOPBACK = 1
    WAITING = 2
    POINT_TO_POINT = 3
    DROTHER = 4
    BACKUP = 5
    DR = 6


class IfEvent(IntEnum):
    """RFC 2328 §9.2."""

    INTERFACE_UP = 1
    WAIT_TIMER = 2
    BACKUP_SEEN = 3
    NEIGHBOR_CHANGE = 4
    LOOP_IND = 5
    UNLOOP_IND = 6
    INTERFACE_DOWN = 7


class IfAction:
    """Action names of §9.3. ``None`` as the next state = decided by the action."""

    START = "start"  # InterfaceUp: start Hello timer; p2p -> PointToPoint, else Waiting/DROther
    ELECT = "elect"  # calculate the backup designated router and designated router (§9.4)
    RESET = "reset"  # reset all variables, disable timers, KillNbr to all neighbors
    NONE = "none"


#: (state, event) -> (action, next state or None when the action decides), RFC 2328 §9.3
IF_TRANSITIONS: dict[tuple[IfState, IfEvent], tuple[str, IfState | None]] = {
    # State Down, event InterfaceUp: start Hello timer; PointToPoint / DROther / Waiting
    (IfState.DOWN, IfEvent.INTERFACE_UP): (IfAction.START, None),
    # State Waiting, event BackupSeen / WaitTimer: calculate DR and BDR
    (IfState.WAITING, IfEvent.BACKUP_SEEN): (IfAction.ELECT, None),
    (IfState.WAITING, IfEvent.WAIT_TIMER): (IfAction.ELECT, None),
    # State Waiting, event NeighborChange: no action (§9.3, "not applicable")
    (IfState.WAITING, IfEvent.NEIGHBOR_CHANGE): (IfAction.NONE, IfState.WAITING),
    # State DR Other, Backup or DR, event NeighborChange: recalculate DR and BDR
    (IfState.DROTHER, IfEvent.NEIGHBOR_CHANGE): (IfAction.ELECT, None),
    (IfState.BACKUP, IfEvent.NEIGHBOR_CHANGE): (IfAction.ELECT, None),
    (IfState.DR, IfEvent.NEIGHBOR_CHANGE): (IfAction.ELECT, None),
    # State(s) Any, event InterfaceDown: reset, -> Down
    **{(s, IfEvent.INTERFACE_DOWN): (IfAction.RESET, IfState.DOWN) for s in IfState},
    # State(s) Any, event LoopInd: reset, -> Loopback
    **{(s, IfEvent.LOOP_IND): (IfAction.RESET, IfState.LOOPBACK) for s in IfState},
    # State Loopback, event UnloopInd: no action, -> Down
    (IfState.LOOPBACK, IfEvent.UNLOOP_IND): (IfAction.NONE, IfState.DOWN),
}


class NbrState(IntEnum):
    """RFC 2328 §10.1 (ordered: comparisons like ``>= EXCHANGE`` follow the RFC)."""

    DOWN = 0
    ATTEMPT = 1
    INIT = 2
    TWO_WAY = 3
    EXSTART = 4
    EXCHANGE = 5
    LOADING = 6
    FULL = 7


NBR_STATE_NAMES = {
    NbrState.DOWN: "Down",
    NbrState.ATTEMPT: "Attempt",
    NbrState.INIT: "Init",
    NbrState.TWO_WAY: "2-Way",
    NbrState.EXSTART: "ExStart",
    NbrState.EXCHANGE: "Exchange",
    NbrState.LOADING: "Loading",
    NbrState.FULL: "Full",
}

IF_STATE_NAMES = {
    IfState.DOWN: "Down",
    IfState.LOOPBACK: "Loopback",
    IfState.WAITING: "Waiting",
    IfState.POINT_TO_POINT: "Point-To-Point",
    IfState.DROTHER: "DROther",
    IfState.BACKUP: "Backup",
    IfState.DR: "DR",
}


class NbrEvent(IntEnum):
    """RFC 2328 §10.2."""

    HELLO_RECEIVED = 1
    START = 2
    TWO_WAY_RECEIVED = 3
    NEGOTIATION_DONE = 4
    EXCHANGE_DONE = 5
    BAD_LS_REQ = 6
    LOADING_DONE = 7
    ADJ_OK = 8
    SEQ_NUMBER_MISMATCH = 9
    ONE_WAY_RECEIVED = 10
    KILL_NBR = 11
    INACTIVITY_TIMER = 12
    LL_DOWN = 13


class NbrAction:
    """Action names of §10.3."""

    START_INACTIVITY = "start_inactivity"  # (Attempt/Down, HelloReceived) start Inactivity
    RESTART_INACTIVITY = "restart_inactivity"  # (>= Init, HelloReceived)
    SEND_HELLO = "send_hello"  # (Down, Start): send Hello to the neighbor, start Inactivity
    DECIDE_ADJACENCY = "decide_adjacency"  # (Init, 2-WayReceived): ExStart or 2-Way
    START_EXCHANGE = "start_exchange"  # enter ExStart: DD seq, I/M/MS, send empty DD
    NEGOTIATED = "negotiated"  # (ExStart, NegotiationDone): DB summary list, -> Exchange
    EXCHANGE_DONE = "exchange_done"  # (Exchange, ExchangeDone): Full if no requests, else Loading
    RESTART_EXCHANGE = "restart_exchange"  # SeqNumberMismatch/BadLSReq: clear lists, -> ExStart
    REEVALUATE = "reevaluate"  # AdjOK?: (2-Way) maybe ExStart; (>= ExStart) maybe 2-Way
    CLEAR_LISTS = "clear_lists"  # 1-WayReceived: clear lists, -> Init
    KILL = "kill"  # KillNbr/InactivityTimer/LLDown: clear lists, stop timers, -> Down
    NONE = "none"


_A = NbrAction
_S = NbrState
_E = NbrEvent
_SYNC = (_S.EXCHANGE, _S.LOADING, _S.FULL)
_ADJ = (_S.EXSTART, _S.EXCHANGE, _S.LOADING, _S.FULL)

#: (state, event) -> (action, next state or None when the action decides), RFC 2328 §10.3
NBR_TRANSITIONS: dict[tuple[NbrState, NbrEvent], tuple[str, NbrState | None]] = {
    # Down, Start -> Attempt: send Hello to the neighbor, start Inactivity Timer (NBMA)
    (_S.DOWN, _E.START): (_A.SEND_HELLO, _S.ATTEMPT),
    # Attempt, HelloReceived -> Init: restart Inactivity Timer
    (_S.ATTEMPT, _E.HELLO_RECEIVED): (_A.RESTART_INACTIVITY, _S.INIT),
    # Down, HelloReceived -> Init: start Inactivity Timer
    (_S.DOWN, _E.HELLO_RECEIVED): (_A.START_INACTIVITY, _S.INIT),
    # Init or greater, HelloReceived -> no state change: restart Inactivity Timer
    **{(s, _E.HELLO_RECEIVED): (_A.RESTART_INACTIVITY, s) for s in (_S.INIT, _S.TWO_WAY, *_ADJ)},
    # Init, 2-WayReceived -> 2-Way or ExStart: "determine whether an adjacency should be formed"
    (_S.INIT, _E.TWO_WAY_RECEIVED): (_A.DECIDE_ADJACENCY, None),
    # 2-Way or greater, 2-WayReceived -> no state change, no action
    **{(s, _E.TWO_WAY_RECEIVED): (_A.NONE, s) for s in (_S.TWO_WAY, *_ADJ)},
    # ExStart, NegotiationDone -> Exchange: list the database summary
    (_S.EXSTART, _E.NEGOTIATION_DONE): (_A.NEGOTIATED, _S.EXCHANGE),
    # Exchange, ExchangeDone -> Loading (or Full when the request list is empty)
    (_S.EXCHANGE, _E.EXCHANGE_DONE): (_A.EXCHANGE_DONE, None),
    # Loading, LoadingDone -> Full
    (_S.LOADING, _E.LOADING_DONE): (_A.NONE, _S.FULL),
    # 2-Way, AdjOK? -> ExStart if an adjacency should now be formed, else stay 2-Way
    # ExStart or greater, AdjOK? -> 2-Way (lists cleared) if it should no longer be
    **{(s, _E.ADJ_OK): (_A.REEVALUATE, None) for s in (_S.TWO_WAY, *_ADJ)},
    # Exchange or greater, SeqNumberMismatch / BadLSReq -> ExStart: clear lists, restart
    **{(s, _E.SEQ_NUMBER_MISMATCH): (_A.RESTART_EXCHANGE, _S.EXSTART) for s in _SYNC},
    **{(s, _E.BAD_LS_REQ): (_A.RESTART_EXCHANGE, _S.EXSTART) for s in _SYNC},
    # Any state, KillNbr / LLDown / InactivityTimer -> Down
    **{(s, _E.KILL_NBR): (_A.KILL, _S.DOWN) for s in NbrState},
    **{(s, _E.LL_DOWN): (_A.KILL, _S.DOWN) for s in NbrState},
    **{(s, _E.INACTIVITY_TIMER): (_A.KILL, _S.DOWN) for s in NbrState},
    # 2-Way or greater, 1-WayReceived -> Init: clear the lists
    **{(s, _E.ONE_WAY_RECEIVED): (_A.CLEAR_LISTS, _S.INIT) for s in (_S.TWO_WAY, *_ADJ)},
    # Init, 1-WayReceived -> no state change, no action
    (_S.INIT, _E.ONE_WAY_RECEIVED): (_A.NONE, _S.INIT),
}
