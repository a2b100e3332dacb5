"""gmpls/layout.py: bodies declared as tables encode and decode exactly as written by hand."""

from __future__ import annotations

import struct
from ipaddress import IPv4Address
from typing import ClassVar

import pytest

from gmpls.errors import DecodeError, EncodeError
from gmpls.layout import REST, Records, Repeat, Wired, layout
from gmpls.registry import Registry
from gmpls.wire import Reader

REG: Registry[type] = Registry("test", attrs=("CLASS", "TYPE"))


class Point(Wired):
    __slots__ = ()


@layout("a:u8 b:u16")
class Pair(Point):
    a: int
    b: int


@REG.register((6, 1))
@layout("node:ipv4 flags:u8 code:u8 value:u24 reserved:x2 floats:f32*2", tail=Repeat("u32"))
class Spec(Wired):
    node: IPv4Address
    code: int
    value: int = 0
    flags: int = 0
    floats: tuple[float, ...] = (0.0, 0.0)
    tail: tuple[int, ...] = ()
    loose: bool = False
    CLASS: ClassVar[int]
    TYPE: ClassVar[int]


def test_wire_order_is_not_constructor_order() -> None:
    s = Spec(IPv4Address("10.0.0.1"), 5, 0x010203, 7, (1.5, 2.0), (9,))
    raw = s.encode_body()
    assert raw == (
        bytes([10, 0, 0, 1, 7, 5, 1, 2, 3, 0, 0])
        + struct.pack("!ff", 1.5, 2.0)
        + struct.pack("!I", 9)
    )
    assert Spec.decode_body(Reader(raw, "t")) == s
    assert (Spec.CLASS, Spec.TYPE) == (6, 1)


def test_extra_fields_come_from_outside_the_body() -> None:
    s = Spec.decode_body(Reader(Spec(IPv4Address(1), 2).encode_body(), "t"), loose=True)
    assert s.loose and s.code == 2


def test_truncation_names_the_first_missing_field() -> None:
    with pytest.raises(DecodeError) as e:
        Spec.decode_body(Reader(bytes(6), "t", code=(21, 4)))
    assert e.value.field == "t.value"
    assert e.value.reason == "truncated: needs 3 bytes, 0 left"
    assert e.value.code == (21, 4)


def test_a_value_that_does_not_fit_names_its_field() -> None:
    with pytest.raises(EncodeError) as e:
        Spec(IPv4Address(1), 256).encode_body()
    assert e.value.field == "Spec.code"
    with pytest.raises(EncodeError) as e:
        Spec(IPv4Address(1), 1, value=1 << 24).encode_body()
    assert e.value.field == "Spec.value"
    with pytest.raises(EncodeError) as e:
        Spec(IPv4Address(1), 1, floats=(1.0,)).encode_body()
    assert e.value.field == "Spec.floats"


def test_a_repeated_tail_must_fill_the_body() -> None:
    raw = Spec(IPv4Address(1), 1).encode_body() + b"\x00\x00"
    with pytest.raises(DecodeError) as e:
        Spec.decode_body(Reader(raw, "t"))
    assert e.value.field == "t.tail"


def test_records_and_rest() -> None:
    @layout("first:u8", pairs=Records(Pair))
    class Pairs(Wired):
        first: int
        pairs: tuple[Pair, ...]

    @layout(raw=REST)
    class Raw(Wired):
        raw: bytes

    p = Pairs(1, (Pair(2, 3), Pair(4, 5)))
    assert p.encode_body() == bytes([1, 2, 0, 3, 4, 0, 5])
    assert Pairs.decode_body(Reader(p.encode_body(), "t")) == p
    with pytest.raises(DecodeError):
        Pairs.decode_body(Reader(bytes([1, 2, 0]), "t"))
    assert Raw.decode_body(Reader(b"xyz", "t")) == Raw(b"xyz")


def test_subclass_shares_the_layout_and_keeps_its_type() -> None:
    class Other(Pair):
        __slots__ = ()

    o = Other.decode_body(Reader(bytes([1, 0, 2]), "t"))
    assert type(o) is Other and o == Other(1, 2) and o != Pair(1, 2)


def test_a_layout_field_must_be_a_field_of_the_class() -> None:
    with pytest.raises(TypeError):

        @layout("a:u8 nope:u8")
        class Bad(Wired):
            a: int


def test_reserved_only_and_empty_layouts() -> None:
    @layout("reserved:x4")
    class Pad(Wired):
        pass

    @layout()
    class Nothing(Wired):
        pass

    assert Pad().encode_body() == bytes(4) and Nothing().encode_body() == b""
    assert Pad.decode_body(Reader(b"\xff" * 4, "t")) == Pad()
    assert Nothing.decode_body(Reader(b"", "t")) == Nothing()
    with pytest.raises(DecodeError):
        Pad.decode_body(Reader(bytes(3), "t"))
