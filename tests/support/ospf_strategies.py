"""Hypothesis strategies for every OSPF message, LSA, TLV and sub-TLV."""

from __future__ import annotations

from ipaddress import IPv4Address
from typing import Any

from hypothesis import strategies as st

from gmpls.ospf import lsa as L
from gmpls.ospf import packet as P
from gmpls.ospf import ri as R
from gmpls.ospf import te as T
from gmpls.tlv import UnknownTlv

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
s32 = st.integers(-0x80000000, 0x7FFFFFFF)
ipv4 = st.builds(IPv4Address, u32)
f32 = st.floats(width=32, allow_nan=False)


def raw(max_size: int = 24) -> st.SearchStrategy[bytes]:
    return st.binary(max_size=max_size)


def words(max_words: int = 6) -> st.SearchStrategy[bytes]:
    return st.integers(0, max_words).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))


def unknown_tlv(known: list[Any]) -> st.SearchStrategy[UnknownTlv]:
    return st.builds(UnknownTlv, u16.filter(lambda t: t not in known), raw())


label_set = st.builds(T.LabelSet, st.integers(0, 15), st.integers(0, 0xFFF), u32, words())

link_subtlv = st.one_of(
    st.builds(T.LinkType, u8),
    st.builds(T.LinkId, ipv4),
    st.builds(T.LocalAddresses, st.tuples(ipv4) | st.lists(ipv4, max_size=3).map(tuple)),
    st.builds(T.RemoteAddresses, st.lists(ipv4, max_size=3).map(tuple)),
    st.builds(T.TeMetric, u32),
    st.builds(T.MaxBandwidth, f32),
    st.builds(T.MaxReservableBandwidth, f32),
    st.builds(T.UnreservedBandwidth, st.lists(f32, min_size=8, max_size=8).map(tuple)),
    st.builds(T.AdminGroup, u32),
    st.builds(T.LinkLocalRemoteIds, u32, u32),
    st.builds(T.LinkProtection, u8),
    st.builds(
        T.SwitchingCapability, u8, u8, st.lists(f32, min_size=8, max_size=8).map(tuple), raw()
    ),
    st.builds(T.Srlg, st.lists(u32, max_size=4).map(tuple)),
    st.builds(T.AvailableLabels, st.lists(label_set, max_size=3).map(tuple)),
    unknown_tlv(T.LINK_SUBTLVS.codes()),
)

te_tlv = st.one_of(
    st.builds(T.RouterAddress, ipv4),
    st.builds(T.Link, st.lists(link_subtlv, max_size=6).map(tuple)),
    unknown_tlv(T.TE_TLVS.codes()),
)

ri_tlv = st.one_of(
    st.builds(R.InformationalCapabilities, u32),
    st.builds(R.FunctionalCapabilities, u32),
    st.integers(1, 3).flatmap(
        lambda k: st.builds(
            R.InformationalCapabilities, st.integers(0, 2 ** (32 * k) - 1), st.just(4 * k)
        )
    ),
    unknown_tlv(R.RI_TLVS.codes()),
)

tos = st.builds(L.TosMetric, u8, u16)
router_link = st.builds(L.RouterLink, ipv4, ipv4, u8, u16, st.lists(tos, max_size=2).map(tuple))


def _lsa(ls_type: int, body: st.SearchStrategy[Any], ls_id: st.SearchStrategy[Any] = ipv4):
    return st.builds(
        lambda i, a, s, b, o, age: L.LSA.build(ls_type, i, a, s, b, options=o, age=age),
        ls_id,
        ipv4,
        s32,
        body,
        u8,
        st.integers(0, 3600),
    )


def _opaque_id(otype: int) -> st.SearchStrategy[IPv4Address]:
    return u24.map(lambda i: IPv4Address(otype << 24 | i))


router_body = st.builds(L.RouterLSA, u8, st.lists(router_link, max_size=4).map(tuple))
network_body = st.builds(L.NetworkLSA, ipv4, st.lists(ipv4, max_size=4).map(tuple))
summary_body = st.builds(
    L.SummaryLSA, ipv4, st.lists(st.builds(L.TosMetric, u8, u24), max_size=3).map(tuple)
)
external_body = st.builds(
    L.ASExternalLSA,
    ipv4,
    st.lists(st.builds(L.ExternalMetric, u8, u24, ipv4, u32), max_size=3).map(tuple),
)
te_body = st.builds(T.TeLSA, st.lists(te_tlv, max_size=4).map(tuple))
ri_body = st.builds(R.RouterInfoLSA, st.lists(ri_tlv, max_size=4).map(tuple))

lsa = st.one_of(
    _lsa(1, router_body),
    _lsa(2, network_body),
    _lsa(3, summary_body),
    _lsa(4, summary_body),
    _lsa(5, external_body),
    st.sampled_from([9, 10, 11]).flatmap(lambda t: _lsa(t, te_body, _opaque_id(1))),
    st.sampled_from([9, 10, 11]).flatmap(lambda t: _lsa(t, ri_body, _opaque_id(4))),
    _lsa(10, st.builds(L.UnknownBody, raw()), _opaque_id(200)),
    _lsa(6, st.builds(L.UnknownBody, raw())),
)

lsa_header = lsa.map(lambda a: a.header)
lsa_key = st.builds(L.LSAKey, u32, ipv4, ipv4)

auth = st.one_of(
    st.just(P.Auth()),
    st.binary(max_size=8).map(P.Auth.simple),
    st.builds(P.Auth, st.sampled_from([0, 1]), st.binary(min_size=8, max_size=8)),
)

body = st.one_of(
    st.builds(P.Hello, ipv4, u16, u8, u8, u32, ipv4, ipv4, st.lists(ipv4, max_size=5).map(tuple)),
    st.builds(P.DatabaseDescription, u16, u8, u8, u32, st.lists(lsa_header, max_size=4).map(tuple)),
    st.builds(P.LSRequest, st.lists(lsa_key, max_size=5).map(tuple)),
    st.builds(P.LSUpdate, st.lists(lsa, max_size=4).map(tuple)),
    st.builds(P.LSAck, st.lists(lsa_header, max_size=4).map(tuple)),
)

packet = st.builds(P.Packet, ipv4, ipv4, body, auth)
