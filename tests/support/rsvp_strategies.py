"""Hypothesis strategies for every RSVP-TE object and message of gmpls.rsvp."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv6Address

from hypothesis import strategies as st

from gmpls import ero, qe
from gmpls.rsvp import objects as O
from gmpls.rsvp.constants import MsgType
from gmpls.rsvp.message import MANDATORY, Message

u8 = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u24 = st.integers(0, 0xFFFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
ipv4 = st.builds(IPv4Address, u32)
ipv6 = st.builds(IPv6Address, st.integers(0, (1 << 128) - 1))
rate = st.floats(min_value=0, max_value=2.0**40, width=32, allow_nan=False, allow_infinity=False)
name = st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40)


def _raw(max_words: int = 6) -> st.SearchStrategy[bytes]:
    return st.integers(0, max_words).flatmap(lambda n: st.binary(min_size=4 * n, max_size=4 * n))


if_id_tlv = st.one_of(
    st.builds(O.IfIdTlv, st.just(1), ipv4),
    st.builds(O.IfIdTlv, st.just(2), ipv6),
    st.builds(O.IfIdTlv, st.just(3), ipv4, u32),
    st.builds(O.IfIdTlv, st.sampled_from([4, 5]), st.none(), u32),
    st.builds(O.IfIdTlv, st.integers(6, 0xFFFF), st.none(), st.none(), _raw()),
)
tlvs = st.lists(if_id_tlv, max_size=4).map(tuple)
token_bucket = st.builds(O.TokenBucket, rate, rate, rate, u32, u32)

subobject = st.one_of(
    st.builds(ero.Ipv4Prefix, ipv4, st.integers(0, 32), st.booleans(), u8),
    st.builds(ero.Ipv6Prefix, ipv6, st.integers(0, 128), st.booleans(), u8),
    st.builds(ero.Label, u32, u8, st.booleans(), u8),
    st.builds(ero.Unnumbered, ipv4, u32, st.booleans(), u8),
    st.builds(ero.AsNumber, u16, st.booleans()),
    st.builds(
        ero.QeSubobject,
        st.binary(min_size=qe.SESSION_ID_LEN, max_size=qe.SESSION_ID_LEN),
        u8,
        u8,
        u16,
        u8,
        u16,
        st.booleans(),
        u16,
    ),
)
subobjects = st.lists(subobject, max_size=8).map(tuple)

OBJECTS: dict[type, st.SearchStrategy] = {
    O.SessionLspTunnelV4: st.builds(O.SessionLspTunnelV4, ipv4, u16, ipv4),
    O.SessionIpv4: st.builds(O.SessionIpv4, ipv4, u8, u8, u16),
    O.RsvpHop: st.builds(O.RsvpHop, ipv4, u32),
    O.RsvpHopIfId: st.builds(O.RsvpHopIfId, ipv4, u32, tlvs),
    O.TimeValues: st.builds(O.TimeValues, u32),
    O.ErrorSpec: st.builds(O.ErrorSpec, ipv4, u8, u16, u8),
    O.ErrorSpecIfId: st.builds(O.ErrorSpecIfId, ipv4, u8, u16, u8, tlvs),
    O.StyleObj: st.builds(O.StyleObj, u24, u8),
    O.SenderTspec: st.builds(O.SenderTspec, token_bucket),
    O.Flowspec: st.one_of(
        st.builds(O.Flowspec, token_bucket, st.just(5)),
        st.builds(O.Flowspec, token_bucket, st.just(2), rate, u32),
    ),
    O.FilterSpec: st.builds(O.FilterSpec, ipv4, u16),
    O.SenderTemplate: st.builds(O.SenderTemplate, ipv4, u16),
    O.ResvConfirm: st.builds(O.ResvConfirm, ipv4),
    O.MplsLabel: st.builds(O.MplsLabel, u32),
    O.GeneralizedLabel: st.builds(O.GeneralizedLabel, u32),
    O.UpstreamLabel: st.builds(O.UpstreamLabel, u32),
    O.SuggestedLabel: st.builds(O.SuggestedLabel, u32),
    O.LabelSet: st.builds(O.LabelSet, st.lists(u32, max_size=8).map(tuple), u8, u16),
    O.GeneralizedLabelRequest: st.builds(O.GeneralizedLabelRequest, u8, u8, u16),
    O.LabelRequest: st.builds(O.LabelRequest, u16),
    O.ExplicitRoute: st.builds(O.ExplicitRoute, subobjects),
    O.RecordRoute: st.builds(O.RecordRoute, subobjects),
    O.HelloRequest: st.builds(O.HelloRequest, u32, u32),
    O.HelloAck: st.builds(O.HelloAck, u32, u32),
    O.MessageId: st.builds(O.MessageId, u32, u24, u8),
    O.MessageIdAck: st.builds(O.MessageIdAck, u32, u24, u8),
    O.MessageIdNack: st.builds(O.MessageIdNack, u32, u24, u8),
    O.MessageIdList: st.builds(O.MessageIdList, st.lists(u32, max_size=8).map(tuple), u24, u8),
    O.MessageIdSrcList: st.builds(
        O.MessageIdSrcList,
        st.lists(st.builds(O.SrcListEntry, u32, ipv4), max_size=4).map(tuple),
        u24,
        u8,
    ),
    O.MessageIdMcastList: st.builds(
        O.MessageIdMcastList,
        st.lists(st.builds(O.McastListEntry, u32, ipv4, ipv4), max_size=4).map(tuple),
        u24,
        u8,
    ),
    O.NotifyRequest: st.builds(O.NotifyRequest, ipv4),
    O.AdminStatus: st.builds(O.AdminStatus, u32),
    O.SessionAttribute: st.builds(O.SessionAttribute, name, u8, u8, u8),
    O.SessionAttributeRa: st.builds(O.SessionAttributeRa, name, u32, u32, u32, u8, u8, u8),
    O.OpaqueObject: st.builds(
        O.OpaqueObject, st.sampled_from(sorted(O.OPAQUE_CLASSES)), u8, _raw()
    ),
    O.UnknownObject: st.builds(
        O.UnknownObject,
        st.integers(0xC0, 0xFF).filter(lambda c: not O.known_class(c)),
        u8,
        _raw(),
    ),
}
any_object = st.one_of(*OBJECTS.values())

_BY_CLASS: dict[int, list[st.SearchStrategy]] = {}
for _cls, _s in OBJECTS.items():
    if _cls not in (O.OpaqueObject, O.UnknownObject):
        _BY_CLASS.setdefault(_cls.class_num, []).append(_s)  # type: ignore[attr-defined]


@st.composite
def message(draw: st.DrawFn, msg_type: int | None = None) -> Message:
    t = draw(st.sampled_from(list(MsgType))) if msg_type is None else msg_type
    if t == MsgType.BUNDLE:
        inner = st.sampled_from([m for m in MsgType if m != MsgType.BUNDLE]).flatmap(message)
        parts = tuple(draw(st.lists(inner, min_size=1, max_size=3)))
        return Message(t, (), draw(u8), draw(st.integers(0, 15)), parts)
    objs = [draw(st.one_of(*_BY_CLASS[c])) for c in MANDATORY[t]]
    objs += draw(st.lists(any_object, max_size=6))
    objs = draw(st.permutations(objs))
    return Message(t, tuple(objs), draw(u8), draw(st.integers(0, 15)))
