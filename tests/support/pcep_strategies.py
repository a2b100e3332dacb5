"""Hypothesis strategies for every PCEP TLV, object and message (RFC 5440, and the
stateful ones of RFC 8231, 8281 and 8408)."""

from __future__ import annotations

import ipaddress
from typing import Any

from hypothesis import strategies as st

from gmpls import ero
from gmpls.pcep import messages as M
from gmpls.pcep import objects as O
from gmpls.pcep import tlv as T
from gmpls.tlv import UnknownTlv

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
b = st.booleans()
ipv4 = st.builds(ipaddress.IPv4Address, u32)
ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, (1 << 128) - 1))
f32 = st.floats(width=32, allow_nan=False)
aligned = st.integers(0, 8).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))

tlvs = st.lists(
    st.one_of(
        st.builds(T.NoPathVectorTlv, u32),
        st.builds(T.OverloadDurationTlv, u32),
        st.builds(T.ReqMissingTlv, u32),
        st.builds(T.NoPathReasonTlv, u32, st.text(max_size=20)),
        st.builds(T.StatefulCapabilityTlv, u32),
        st.builds(T.SymbolicPathNameTlv, st.binary(min_size=1, max_size=17)),
        st.builds(T.Ipv4LspIdentifiersTlv, ipv4, u16, u16, ipv4, ipv4),
        st.builds(T.LspErrorCodeTlv, u32),
        st.builds(T.PathSetupTypeTlv, u8),
        st.builds(T.SrPceCapabilityTlv, u8, u8),
        st.builds(
            T.PathSetupTypeCapabilityTlv,
            st.lists(u8, min_size=1, max_size=6).map(tuple),
            st.lists(st.builds(T.SrPceCapabilityTlv, u8, u8), max_size=1).map(tuple),
        ),
        st.builds(
            UnknownTlv,
            st.integers(4, 0xFFDF).filter(lambda t: t not in T.TLVS),
            st.binary(max_size=13),
        ),
    ),
    max_size=3,
).map(tuple)

subobjects = st.lists(
    st.one_of(
        st.builds(ero.Ipv4Prefix, ipv4, st.integers(0, 32), b, u8),
        st.builds(ero.Ipv6Prefix, ipv6, st.integers(0, 128), b, u8),
        st.builds(ero.Label, u32, u8, b, u8),
        st.builds(ero.Unnumbered, ipv4, u32, b, u8),
        st.builds(ero.AsNumber, u16, b),
        st.builds(
            ero.QeSubobject,
            st.binary(min_size=64, max_size=64),
            u8,
            u8,
            u16,
            u8,
            u16,
            b,
            u16,
        ),
        st.builds(
            ero.UnknownSubobject,
            st.sampled_from([5, 33, 64, 100, 126]),
            st.integers(0, 5).flatmap(lambda n: st.binary(min_size=4 * n + 2, max_size=4 * n + 2)),
            b,
        ),
    ),
    max_size=6,
).map(tuple)

open_obj = st.builds(O.OpenObject, u8, u8, u8, st.integers(0, 31), tlvs, st.just(1), b, b)
rp = st.builds(O.RP, u32, u32, tlvs, st.just(True), b)
any_rp = st.builds(O.RP, u32, u32, tlvs, b, b)
no_path = st.builds(O.NoPath, u8, u16, tlvs, b, b)
endpoints = st.one_of(
    st.builds(O.EndPointsIpv4, ipv4, ipv4, st.just(True), b),
    st.builds(O.EndPointsIpv6, ipv6, ipv6, st.just(True), b),
)
bandwidth = st.builds(O.Bandwidth, f32, st.sampled_from([1, 2]), b, b)
metric = st.builds(O.Metric, u8, f32, u8, b, b)
ero_obj = st.builds(O.Ero, subobjects, b, b)
rro_obj = st.builds(O.Rro, subobjects, b, b)
iro_obj = st.builds(O.Iro, subobjects, b, b)
lspa = st.builds(O.Lspa, u32, u32, u32, u8, u8, u8, tlvs, b, b)
svec = st.builds(O.Svec, st.lists(u32, max_size=5).map(tuple), st.integers(0, 0xFFFFFF), b, b)
notification = st.builds(O.Notification, u8, u8, u8, tlvs, b, b)
error_obj = st.builds(O.ErrorObject, u8, u8, u8, tlvs, b, b)
close_obj = st.builds(O.CloseObject, u8, u8, tlvs, b, b)
srp = st.builds(O.Srp, u32, u32, tlvs, b, b)
lsp_obj = st.builds(O.LspObject, st.integers(0, (1 << 20) - 1), st.integers(0, 0xFFF), tlvs, b, b)
#: classes and types this codec does not implement
unknown_obj = st.builds(
    O.UnknownObject,
    st.sampled_from([14, 16, 20, 34, 200, 255]),
    st.integers(0, 15),
    aligned,
    b,
    b,
) | st.builds(
    O.UnknownObject, st.sampled_from([1, 2, 6, 7, 32, 33]), st.integers(2, 15), aligned, b, b
)

objects = st.one_of(
    open_obj,
    any_rp,
    no_path,
    endpoints,
    bandwidth,
    metric,
    ero_obj,
    rro_obj,
    iro_obj,
    lspa,
    svec,
    notification,
    error_obj,
    close_obj,
    srp,
    lsp_obj,
    unknown_obj,
)


@st.composite
def requests(draw: st.DrawFn) -> M.Request:
    rro = draw(st.none() | rro_obj)
    return M.Request(
        draw(rp),
        draw(endpoints),
        draw(st.none() | lspa),
        draw(st.none() | bandwidth),
        tuple(draw(st.lists(metric, max_size=5))),
        rro,
        draw(st.none() | bandwidth) if rro is not None else None,
        draw(st.none() | iro_obj),
        tuple(draw(st.lists(unknown_obj, max_size=2))),
    )


attributes = st.builds(
    M.Attributes,
    st.none() | lspa,
    st.none() | bandwidth,
    st.lists(metric, max_size=3).map(tuple),
    st.none() | iro_obj,
)
responses = st.builds(
    M.Response,
    rp,
    st.none() | no_path,
    attributes,
    st.lists(st.builds(M.Path, ero_obj, attributes), max_size=2).map(tuple),
    st.lists(unknown_obj, max_size=2).map(tuple),
)


@st.composite
def lsp_entries(draw: st.DrawFn, need_srp: bool) -> M.LspEntry:
    """An LSP entry in the canonical order its decoder reads back (an ERO always; the
    actual attribute list only with an RRO)."""
    rro = draw(st.none() | rro_obj)
    return M.LspEntry(
        draw(lsp_obj),
        draw(srp if need_srp else st.none() | srp),
        draw(ero_obj),
        draw(attributes),
        rro,
        draw(attributes) if rro is not None else M.Attributes(),
        draw(st.none() | endpoints),
        tuple(draw(st.lists(unknown_obj, max_size=1))),
    )


def _tuples(elements: st.SearchStrategy[Any], min_size: int = 0, max_size: int = 1) -> Any:
    return st.lists(elements, min_size=min_size, max_size=max_size).map(tuple)


def _blocks(block: Any, items: st.SearchStrategy[Any]) -> Any:
    """One to three ``block(items, rps)`` (PCErr's error blocks, PCNtf's notify blocks):
    only the first may have no RP (it then concerns the session)."""
    first = st.builds(block, _tuples(items, 1, 2), _tuples(any_rp, 0, 2))
    rest = st.builds(block, _tuples(items, 1, 2), _tuples(any_rp, 1, 2))
    return st.tuples(first, rest, rest).flatmap(lambda t: st.integers(1, 3).map(lambda n: t[:n]))


messages = st.one_of(
    st.builds(M.Open, open_obj, _tuples(unknown_obj)),
    st.builds(M.Keepalive, _tuples(unknown_obj)),
    st.builds(M.PCReq, _tuples(requests(), 1, 3), _tuples(svec, 0, 2), _tuples(unknown_obj)),
    st.builds(M.PCRep, _tuples(responses, 1, 3), _tuples(unknown_obj)),
    st.builds(
        M.PCErr, _blocks(M.ErrorBlock, error_obj), st.none() | open_obj, _tuples(unknown_obj)
    ),
    st.builds(M.PCNtf, _blocks(M.Notify, notification), _tuples(unknown_obj)),
    st.builds(M.Close, close_obj, _tuples(unknown_obj)),
    st.builds(M.PCRpt, _tuples(lsp_entries(False), 1, 3), _tuples(unknown_obj)),
    st.builds(M.PCUpd, _tuples(lsp_entries(True), 1, 2), _tuples(unknown_obj)),
    st.builds(M.PCInitiate, _tuples(lsp_entries(True), 1, 2), _tuples(unknown_obj)),
    st.builds(
        M.UnknownMessage, st.integers(8, 255).filter(lambda t: t not in (10, 11, 12)), aligned
    ),
)
