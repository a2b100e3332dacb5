"""RSVP messages: the common header and the object list (RFC 2205 §3.1.1).

::

    0             1              2             3
    +-------------+-------------+-------------+-------------+
    | Vers | Flags|  Msg Type   |       RSVP Checksum       |
    +-------------+-------------+-------------+-------------+
    |  Send_TTL   | (Reserved)  |        RSVP Length        |
    +-------------+-------------+-------------+-------------+

A :class:`Message` is the type plus its objects in wire order; the checksum is computed on
encode (0 is sent as 0xFFFF, since 0 means "no checksum") and verified on decode unless
zero. The per-type mandatory objects (RFC 2205 §3.1.2-3.1.8, RFC 3209 §5.1, RFC 3473
§4.3, RFC 2961 §4.4, §5.2) are checked on decode; a message missing one is malformed and,
per RFC 2205 §3.10, discarded (its :class:`DecodeError` has no RSVP code). Unknown objects
are handled per :func:`gmpls.rsvp.objects.decode_object`.

A Bundle (RFC 2961 §3.1) has no objects: its body is one or more whole RSVP messages
(``parts``), each with its own header, none of them a Bundle. :func:`bundle_parts` cuts
a Bundle into the bytes of its sub-messages without decoding them, so that a receiver can
process the good ones and answer a bad one as if it had come alone (RFC 2961 §3.4).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypeVar

from gmpls.checksum import inet_checksum
from gmpls.errors import DecodeError, EncodeError
from gmpls.rsvp.constants import RSVP_VERSION, ClassNum, MsgType
from gmpls.rsvp.objects import RsvpObject, decode_object, encode_object
from gmpls.wire import Reader, u8, u16

Obj = TypeVar("Obj")

HEADER_LEN = 8

#: mandatory object classes per message type
MANDATORY: dict[int, tuple[int, ...]] = {
    MsgType.PATH: (ClassNum.SESSION, ClassNum.RSVP_HOP, ClassNum.TIME_VALUES),
    MsgType.RESV: (ClassNum.SESSION, ClassNum.RSVP_HOP, ClassNum.TIME_VALUES, ClassNum.STYLE),
    MsgType.PATH_ERR: (ClassNum.SESSION, ClassNum.ERROR_SPEC),
    MsgType.RESV_ERR: (ClassNum.SESSION, ClassNum.RSVP_HOP, ClassNum.ERROR_SPEC, ClassNum.STYLE),
    MsgType.PATH_TEAR: (ClassNum.SESSION, ClassNum.RSVP_HOP),
    MsgType.RESV_TEAR: (ClassNum.SESSION, ClassNum.RSVP_HOP, ClassNum.STYLE),
    MsgType.RESV_CONF: (
        ClassNum.SESSION,
        ClassNum.ERROR_SPEC,
        ClassNum.RESV_CONFIRM,
        ClassNum.STYLE,
    ),
    MsgType.BUNDLE: (),
    MsgType.ACK: (ClassNum.MESSAGE_ID_ACK,),
    MsgType.SREFRESH: (ClassNum.MESSAGE_ID_LIST,),
    MsgType.HELLO: (ClassNum.HELLO,),
    MsgType.NOTIFY: (ClassNum.ERROR_SPEC,),
}


@dataclass(frozen=True, slots=True)
class Message:
    """One RSVP message: ``msg_type`` (:class:`MsgType`), its objects in order, the
    Send_TTL and the 4 header flag bits (RFC 2961 0x1 refresh-reduction capable); a Bundle
    has its sub-messages in ``parts`` and no objects."""

    msg_type: int
    objects: tuple[RsvpObject, ...]
    send_ttl: int = 255
    flags: int = 0
    parts: tuple[Message, ...] = ()

    def get(self, cls: type[Obj]) -> Obj | None:
        """The first object of class ``cls`` (a dataclass from gmpls.rsvp.objects)."""
        for o in self.objects:
            if isinstance(o, cls):
                return o
        return None

    def all(self, cls: type[Obj]) -> list[Obj]:
        return [o for o in self.objects if isinstance(o, cls)]

    def by_class(self, class_num: int) -> RsvpObject | None:
        for o in self.objects:
            if o.class_num == class_num:
                return o
        return None

    @property
    def name(self) -> str:
        try:
            return MsgType(self.msg_type).name
        except ValueError:
            return str(self.msg_type)

    def encode(self) -> bytes:
        if self.msg_type not in MsgType._value2member_map_:
            raise EncodeError("rsvp.msg_type", f"unknown message type {self.msg_type}")
        if self.msg_type == MsgType.BUNDLE:
            if self.objects or not self.parts:
                raise EncodeError("rsvp.BUNDLE", "a Bundle is sub-messages and no objects")
            if any(p.msg_type == MsgType.BUNDLE for p in self.parts):
                raise EncodeError("rsvp.BUNDLE", "a Bundle inside a Bundle")
            body = b"".join(p.encode() for p in self.parts)
        elif self.parts:
            raise EncodeError("rsvp.parts", f"a {self.name} message has no sub-messages")
        else:
            body = _encode_objects(self.objects)
        length = HEADER_LEN + len(body)
        if length > 0xFFFF:
            raise EncodeError("rsvp.length", f"{length} bytes is too long")
        head = u8((RSVP_VERSION << 4) | (self.flags & 0xF)) + u8(self.msg_type)
        tail = u8(self.send_ttl) + u8(0) + u16(length)
        cks = inet_checksum(head + b"\x00\x00" + tail + body) or 0xFFFF
        return head + u16(cks) + tail + body

    @classmethod
    def decode(cls, data: bytes) -> Message:
        msg_type, ttl, flags = _header(data)
        if msg_type == MsgType.BUNDLE:
            return cls(msg_type, (), ttl, flags, tuple(map(_sub_message, _split(data))))
        name = MsgType(msg_type).name
        objs: list[RsvpObject] = []
        i = 0
        body = Reader(data, f"rsvp.{name}", HEADER_LEN)
        while not body.at_end():
            o = decode_object(body, i)
            i += 1
            if o is not None:
                objs.append(o)
        present = {o.class_num for o in objs}
        for c in MANDATORY[msg_type]:
            if c not in present:
                raise DecodeError(f"rsvp.{name}", f"missing mandatory {ClassNum(c).name} object")
        return cls(msg_type, tuple(objs), ttl, flags)


#: the encoded objects of the messages sent last, by the identity of their tuple: a
#: refresh sends the same objects again (RFC 2205 §3.1: the same Path or Resv, only the
#: header flags may differ), so they are encoded once. Objects are frozen, and an entry
#: holds its tuple, so an id is not reused while cached. Bounded: cleared when full.
_ENCODED: dict[int, tuple[tuple[RsvpObject, ...], bytes]] = {}
_ENCODED_MAX = 512


def _encode_objects(objects: tuple[RsvpObject, ...]) -> bytes:
    if type(objects) is not tuple:  # a list could change after it was encoded
        return b"".join(encode_object(o) for o in objects)
    hit = _ENCODED.get(id(objects))
    if hit is not None and hit[0] is objects:
        return hit[1]
    body = b"".join(encode_object(o) for o in objects)
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.clear()
    _ENCODED[id(objects)] = (objects, body)
    return body


def _header(data: bytes) -> tuple[int, int, int]:
    """(message type, Send_TTL, flags) of the common header, checked: version, known
    type, length equal to the message's, checksum (unless zero)."""
    r = Reader(data, "rsvp")
    vf = r.u8("version")
    if vf >> 4 != RSVP_VERSION:
        raise r.fail("version", f"version {vf >> 4}, expected {RSVP_VERSION}")
    msg_type = r.u8("msg_type")
    if msg_type not in MsgType._value2member_map_:
        raise r.fail("msg_type", f"unknown message type {msg_type}")
    cks = r.u16("checksum")
    ttl = r.u8("send_ttl")
    r.u8("reserved")
    length = r.u16("length")
    if length != len(data):
        raise r.fail("length", f"header says {length} bytes, message has {len(data)}")
    if cks:
        calc = inet_checksum(data[:2] + b"\x00\x00" + data[4:]) or 0xFFFF
        if calc != cks:
            raise r.fail("checksum", f"0x{cks:04x} != computed 0x{calc:04x}")
    return msg_type, ttl, vf & 0xF


def _split(data: bytes) -> list[bytes]:
    """The sub-messages of a Bundle whose header is checked: each is framed by the length
    in its own header."""
    r = Reader(data, "rsvp.BUNDLE", HEADER_LEN)
    parts: list[bytes] = []
    while not r.at_end():
        start, field = r.pos, f"part[{len(parts)}]"
        head = r.sub(HEADER_LEN, field)
        head.bytes(6, "header")
        length = head.u16("length")
        if length < HEADER_LEN or length % 4:
            raise r.fail(f"{field}.length", f"{length} is not a multiple of 4 of at least 8")
        r.sub(length - HEADER_LEN, field)
        parts.append(data[start : start + length])
    if not parts:
        raise r.fail("parts", "a Bundle without sub-messages")
    return parts


def _sub_message(data: bytes) -> Message:
    if data[1] == MsgType.BUNDLE:
        raise DecodeError("rsvp.BUNDLE", "a Bundle inside a Bundle")
    return Message.decode(data)


def bundle_parts(data: bytes) -> list[bytes]:
    """The bytes of each sub-message of the Bundle ``data`` (its header checked, the
    sub-messages not decoded); :class:`DecodeError` if ``data`` is no well-framed Bundle."""
    msg_type, _, _ = _header(data)
    if msg_type != MsgType.BUNDLE:
        raise DecodeError("rsvp.msg_type", f"{MsgType(msg_type).name} is not a Bundle")
    return _split(data)


def decode(data: bytes) -> Message:
    return Message.decode(data)
