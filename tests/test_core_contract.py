"""Every protocol core keeps the one contract of gmpls/core.py.

For each of the five cores (OSPF, PCEP, RSVP-TE, the ETSI 004 proxy, the IDQ3P server):

- ``handle(event, now) -> list[Action]`` and ``next_timer() -> float | None`` exist with
  the signatures of :class:`gmpls.core.Core`, and :class:`gmpls.core.Tick` is one of the
  events ``handle`` takes;
- no other public method takes ``now``: every time-dependent input is an event;
- the events and actions live in the protocol's own events module;
- a fresh core takes a Tick and answers with a list; an object that is not one of its
  events is a TypeError.
"""

from __future__ import annotations

import inspect
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Any

import pytest

import idq3p_emulator.events
import qkd_proxy.events
from gmpls.core import Core, Tick
from gmpls.dataplane import events as dataplane_events
from gmpls.dataplane.core import DataplaneEnd
from gmpls.ospf import events as ospf_events
from gmpls.ospf.router import OspfRouter
from gmpls.pcep import events as pcep_events
from gmpls.pcep.session import Role, Session
from gmpls.qkd.etsi014 import events as etsi014_events
from gmpls.qkd.etsi014.core import Etsi014Config, Etsi014Core
from gmpls.rsvp import events as rsvp_events
from gmpls.rsvp.core import RsvpCore
from idq3p_emulator.core import Idq3pServer
from idq3p_emulator.store import KeyStore, SeedSource
from qkd_proxy.core import ProxyConfig, ProxyCore
from qkd_proxy.km import KeyManager, KmConfig, KmLink

A = IPv4Address("10.0.0.1")
B = IPv4Address("10.0.0.2")


def _proxy() -> ProxyCore:
    cfg = ProxyConfig(
        name="qa",
        local_node=A,
        local_node_addrs=frozenset({A}),
        peer_node=B,
        node_of_addr={A: A, B: B},
        peer_sync=("10.0.1.2", 5626),
        peer_name="qb",
        idq=("10.0.2.2", 5323),
        sync_secret=bytes(32),
        wins_tie=True,
    )
    return ProxyCore(cfg, lambda n: bytes(n), 0.0)


def _km() -> KeyManager:
    pc = _proxy().cfg
    cfg = KmConfig(
        name="qa",
        site=A,
        served_addrs=frozenset({A}),
        served_nodes=frozenset({A}),
        links=(KmLink("qa-qb", pc, B),),
        graph=((A, B),),
        site_of_node={A: A, B: B},
        node_of_addr={A: A, B: B},
    )
    return KeyManager(cfg, lambda n: bytes(n), 0.0)


@dataclass(frozen=True)
class Case:
    cls: type
    events: types.ModuleType
    make: Callable[[], Any]


CASES = {
    "ospf": Case(OspfRouter, ospf_events, lambda: OspfRouter(A)),
    "pcep": Case(Session, pcep_events, lambda: Session(Role.PCC)),
    "rsvp": Case(RsvpCore, rsvp_events, lambda: RsvpCore(A, A, [])),
    "qkd_proxy": Case(ProxyCore, qkd_proxy.events, _proxy),
    "km": Case(KeyManager, qkd_proxy.events, _km),
    "etsi014": Case(
        Etsi014Core, etsi014_events, lambda: Etsi014Core(Etsi014Config("km", {}), bytes)
    ),
    "dataplane": Case(
        DataplaneEnd,
        dataplane_events,
        lambda: DataplaneEnd(service_id="1", head=True, algorithm=10),
    ),
    "idq3p": Case(
        Idq3pServer,
        idq3p_emulator.events,
        lambda: Idq3pServer(KeyStore(SeedSource(b"s"), 0, 1e6, 1 << 20, 0.0)),
    ),
}
PARAMS = pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())


def _members(union: Any) -> set[Any]:
    """The classes of a union type (or the one class)."""
    return set(typing.get_args(union)) or {union}


def _params(fn: Callable[..., Any]) -> list[tuple[str, Any]]:
    return [(p.name, p.kind) for p in inspect.signature(fn).parameters.values()]


@PARAMS
def test_handle_and_next_timer_have_the_signatures_of_core(case: Case) -> None:
    for name in ("handle", "next_timer"):
        assert _params(getattr(case.cls, name)) == _params(getattr(Core, name)), name
    hints = typing.get_type_hints(case.cls.handle)
    assert hints["now"] is float
    assert typing.get_origin(hints["return"]) is list
    (action,) = typing.get_args(hints["return"])
    assert action == case.events.Action
    assert hints["event"] == case.events.Event
    assert Tick in _members(case.events.Event)
    assert typing.get_type_hints(case.cls.next_timer)["return"] == float | None


@PARAMS
def test_no_other_public_method_takes_now(case: Case) -> None:
    """Every time-dependent input goes through handle (read-only views take no time
    either: a caller that needs the LSDB at a time asks the LSDB)."""
    offenders = [
        name
        for name, fn in inspect.getmembers(case.cls, inspect.isroutine)
        if not name.startswith("_")
        and name != "handle"
        and "now" in inspect.signature(fn).parameters
    ]
    assert offenders == []


@PARAMS
def test_events_and_actions_live_in_the_events_module(case: Case) -> None:
    for cls in _members(case.events.Event) | _members(case.events.Action):
        if cls is Tick:
            continue
        assert cls.__module__ == case.events.__name__, cls
    core_module = inspect.getmodule(case.cls)
    assert core_module is not None
    assert not hasattr(core_module, "SetTimer") and not hasattr(core_module, "Timer")


@PARAMS
def test_a_fresh_core_takes_a_tick_and_refuses_a_stranger(case: Case) -> None:
    core = case.make()
    assert isinstance(core.handle(Tick(), 0.0), list)
    t = core.next_timer()
    assert t is None or isinstance(t, float)
    with pytest.raises(TypeError):
        core.handle(object(), 0.0)
