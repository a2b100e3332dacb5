"""The Wireshark plugin of the project (``wireshark/qkdnet.lua``, docs/wireshark.md): its
code points and message layouts, its installation, and the tshark command that loads it.

The plugin's constants block (between ``-- BEGIN GENERATED`` and ``-- END GENERATED``) is
written from the codecs themselves: the QE code points and registries of
:mod:`gmpls.qe`, the QE ERO subobject's layout (:mod:`gmpls.ero`), the QKD link TLV's
sub-TLVs (:mod:`gmpls.ospf.qkdlink`), the NO-PATH reasons (:mod:`pce.compute`), the QE
data-plane header (:mod:`gmpls.dataplane.frame`), and, for
ETSI 004, the sync channel, IDQ3P and the KM status, every message type with the layout
its class declares (:mod:`gmpls.layout`). So the dissector cannot drift from the encoders: ``python -m
compose.wireshark`` rewrites the block, ``--check`` fails when it is out of date (a test
runs it).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
from collections.abc import Sequence
from enum import IntEnum
from pathlib import Path
from typing import Any

from gmpls import ero, qe
from gmpls.dataplane import frame as dpframe
from gmpls.layout import Layout
from gmpls.ospf import qkdlink
from gmpls.ospf.te import LabelAction
from gmpls.pcep.constants import TlvType
from gmpls.qkd import etsi004, idq3p, kmstatus, sync
from gmpls.registry import Registry
from pce.compute import NoPathReason

#: the plugin in the source tree (compose/ sits next to wireshark/)
PLUGIN = Path(__file__).resolve().parent.parent / "wireshark" / "qkdnet.lua"
BEGIN = "-- BEGIN GENERATED"
END = "-- END GENERATED"
#: Wireshark's personal Lua plugin folder on Linux and macOS (``tshark -G folders``:
#: "Personal Lua Plugins"); it loads every ``.lua`` file there at start.
PERSONAL_FOLDER = Path(".local/lib/wireshark/plugins")

#: the plugin's protocols (tshark's ``-O`` shows their details only)
PROTOCOLS = (
    "qkdnet",
    "qkdnet.etsi004",
    "qkdnet.sync",
    "qkdnet.idq3p",
    "qkdnet.kmstatus",
    "qkdnet.dataplane",
)
#: the readable names of the QE METRIC types (the code point field minus ``metric_``)
METRIC_NAMES = {
    "key_length": "QE key length",
    "enc_layer": "QE encryption layer",
    "algorithm": "QE encryption algorithm",
    "refresh_value": "QE key refresh value",
    "refresh_type": "QE key refresh type",
}
#: the metric types whose value is a registry entry, and that registry
METRIC_ENUMS = {"enc_layer": "ENC_LAYER", "algorithm": "ALGORITHM", "refresh_type": "REFRESH_TYPE"}


def _lua(v: Any, indent: str = "") -> str:
    """``v`` as a Lua constructor; tables too long for one line get one entry a line, and a
    ``None`` entry is left out."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str | bytes):
        s = v.decode() if isinstance(v, bytes) else v
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'
    inner = indent + "  "
    if isinstance(v, dict):
        items = [f"{_key(k)} = {_lua(x, inner)}" for k, x in v.items() if x is not None]
    elif isinstance(v, list | tuple):
        items = [_lua(x, inner) for x in v]
    else:
        raise TypeError(f"no Lua for {v!r}")
    one = "{ " + ", ".join(items) + " }" if items else "{}"
    if len(one) + len(indent) <= 90 and "\n" not in one:
        return one
    return "{\n" + "".join(f"{inner}{i},\n" for i in items) + indent + "}"


def _key(k: Any) -> str:
    return f"[{k}]" if isinstance(k, int) else str(k)


def _enum(e: type[IntEnum]) -> dict[int, str]:
    return {int(m): m.name for m in e}


def _fields(wire: Layout, rename: dict[str, str] | None = None) -> list[list[str]]:
    """The fixed fields of a layout as ``{name, kind}`` pairs; a record (``qos:u32*4``
    with ``qos=QoS``) is spelled out as its fields (``qos.requested_length:u32`` ...)."""
    out: list[list[str]] = []
    kinds = dict(item.partition(":")[::2] for item in wire.spec.split())
    for f in wire._fields:
        name = (rename or {}).get(f.name, f.name)
        kind = kinds[f.name]
        if f.record is not None:
            base = kind.partition("*")[0]
            out.extend([f"{name}.{r}", base] for r in f.record[1])
        else:
            out.append([name, kind])
    return out


def _enums(wire: Layout) -> dict[str, type[IntEnum]]:
    """The fields of a layout that are enums (``status=Status``), by name."""
    out = {}
    for f in wire._fields:
        if isinstance(f.allowed, dict) and f.allowed:
            out[f.name] = type(next(iter(f.allowed.values())))
    return out


#: struct codes -> field kinds (for records a codec packs with :mod:`struct`)
_STRUCT_KINDS = {"I": "u32", "Q": "u64", "H": "u16", "B": "u8", "4s": "ipv4"}
#: the fields of a KM status link record, in wire order (``kmstatus._LINK``)
KM_LINK_NAMES = (
    "far_site",
    "rate_bps",
    "stock_bits",
    "buffer_bits",
    "used_bits",
    "services",
    "up",
    "name_length",
    "name",
)


def _struct_fields(fmt: str, names: Sequence[str]) -> list[list[str]]:
    """``{name, kind}`` pairs of a struct format (``!4sIQQQHBB32s``) and its field names."""
    codes = re.findall(r"\d*[a-zA-Z]", fmt.lstrip("!<>="))
    kinds = [_STRUCT_KINDS.get(c) or f"b{c[:-1]}" for c in codes]
    return [[n, k] for n, k in zip(names, kinds, strict=True)]


def _messages(registry: Registry[Any], types: type[IntEnum]) -> tuple[dict[int, Any], dict]:
    """Per message type its name, fixed fields and tail; and the enums its fields use. A
    class without a layout (its codec written by hand) is all tail, named by its field."""
    msgs: dict[int, Any] = {}
    enums: dict[str, dict[int, str]] = {}
    for t in types:
        cls = registry.get(int(t))
        if cls is None:
            continue
        if not hasattr(cls, "WIRE"):
            own = [f.name for f in dataclasses.fields(cls) if f.name != "request_id"]
            msgs[int(t)] = {"name": t.name, "fields": [], "tail": own[0]}
            continue
        msg: dict[str, Any] = {"name": t.name, "fields": _fields(cls.WIRE)}
        if cls.WIRE.tail_name:
            msg["tail"] = cls.WIRE.tail_name
        msgs[int(t)] = msg
        for name, e in _enums(cls.WIRE).items():
            enums[name] = _enum(e)
    return msgs, enums


def _protocol(module: Any, registry: Registry[Any], types: type[IntEnum], **extra: Any) -> dict:
    msgs, enums = _messages(registry, types)
    head = {"port": module.PORT, "version": module.VERSION, "header_len": module.HEADER_LEN}
    return {**head, **extra, "types": _enum(types), "messages": msgs, "enums": enums}


def _qkd_link_subtlvs() -> dict[int, list[str]]:
    """Sub-TLV type -> {the QkdLinkTlv field it fills, its kind} (gmpls.ospf.qkdlink)."""
    out = {}
    for cls, (name, attr) in qkdlink._FIELDS.items():
        wired: Any = cls
        ((field, kind),) = _fields(wired.WIRE)
        if field != attr:
            raise ValueError(f"{cls.__name__}: layout field {field}, not {attr}")
        out[int(wired.TYPE)] = [name, kind]
    return out


def _dataplane() -> dict[str, Any]:
    """The QE data-plane header (:mod:`gmpls.dataplane.frame`)."""
    f = dpframe
    return {
        "ethertype": f.ETHERTYPE,
        "version": f.VERSION,
        "header_len": f.HEADER_LEN,
        "tag_len": f.TAG_LEN,
        "flag_direction": f.FLAG_DIRECTION,
        "flag_announce": f.FLAG_ANNOUNCE,
        "flag_reserved": f.FLAG_RESERVED,
        "directions": {f.HEAD_TO_TAIL: "head to tail", f.TAIL_TO_HEAD: "tail to head"},
        "algorithms": dict(f.ALGORITHMS),
    }


def constants() -> str:
    """The plugin's generated block (without its BEGIN/END lines)."""
    cp = qe.Codepoints()  # the defaults, not what a process may have configured
    points = {f.name: getattr(cp, f.name) for f in dataclasses.fields(cp)}
    metric_types = {
        points[f"metric_{n}"]: {"name": label, "enum": METRIC_ENUMS.get(n)}
        for n, label in METRIC_NAMES.items()
    }
    qe_sub = {
        "length": ero.QeSubobject.LENGTH,
        "fields": _fields(ero.QeSubobject.WIRE, {"session_id": "key_handle"}),
    }
    tables: list[tuple[str, Any]] = [
        ("CP", points),
        ("ENC_LAYER", _enum(qe.EncLayer)),
        ("ALGORITHM", _enum(qe.Algorithm)),
        ("REFRESH_TYPE", _enum(qe.RefreshType)),
        ("METRIC_TYPES", metric_types),
        ("QE_SUBOBJECT", qe_sub),
        ("LABEL_ACTION", {v: k for k, v in vars(LabelAction).items() if k.isupper()}),
        ("QKD_LINK_SUBTLVS", _qkd_link_subtlvs()),
        ("PCEP_TLV", {"no_path_reason": int(TlvType.NO_PATH_REASON)}),
        ("NO_PATH_REASON", _enum(NoPathReason)),
        ("DATAPLANE", _dataplane()),
        ("ETSI004", _protocol(etsi004, etsi004.REGISTRY, etsi004.MsgType)),
        (
            "SYNC",
            _protocol(sync, sync.REGISTRY, sync.SyncType, magic=sync.MAGIC, mac_len=sync.MAC_LEN),
        ),
        ("IDQ3P", _protocol(idq3p, idq3p.REGISTRY, idq3p.MsgType, magic=idq3p.MAGIC)),
        (
            "KMSTATUS",
            _protocol(
                kmstatus,
                kmstatus.REGISTRY,
                kmstatus.MsgType,
                link=_struct_fields(kmstatus._LINK.format, KM_LINK_NAMES),
                link_len=kmstatus.LINK_LEN,
            ),
        ),
    ]
    lines = [f"local {name} = {_lua(value)}" for name, value in tables]
    return "\n".join(lines) + "\n"


def with_constants(text: str) -> str:
    """``text`` (the plugin) with its generated block replaced by :func:`constants`."""
    head, sep, rest = text.partition(BEGIN)
    _old, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"the plugin has no {BEGIN} ... {END} block")
    first_line, _, _ = rest.partition("\n")
    return f"{head}{BEGIN}{first_line}\n{constants()}{END}{tail}"


def personal_folder(home: Path | None = None) -> Path:
    return (home if home is not None else Path.home()) / PERSONAL_FOLDER


def install(folder: Path | None = None) -> Path:
    """Copy the plugin into ``folder`` (default: the personal Lua plugin folder); returns
    the installed file."""
    if not PLUGIN.is_file():
        raise FileNotFoundError(f"{PLUGIN}: the plugin is not there (run from a checkout)")
    dest_dir = folder if folder is not None else personal_folder()
    dest_dir.mkdir(parents=True, exist_ok=True)
    dest = dest_dir / PLUGIN.name
    shutil.copyfile(PLUGIN, dest)
    return dest


def tshark_command(pcap: Path | str, *args: str) -> list[str]:
    """tshark reading ``pcap`` with the plugin of this checkout loaded."""
    return ["tshark", "-X", f"lua_script:{PLUGIN}", "-r", str(pcap), *args]


def tshark_commands(captures: dict[str, str]) -> dict[str, list[str]]:
    """Per domain capture the tshark command that shows what the plugin decodes in it."""
    return {d: tshark_command(p, "-O", ",".join(PROTOCOLS)) for d, p in captures.items()}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m compose.wireshark",
        description="rewrite the generated block of wireshark/qkdnet.lua from the codecs",
    )
    p.add_argument("--check", action="store_true", help="do not write; exit 1 if out of date")
    args = p.parse_args(argv)
    text = PLUGIN.read_text()
    new = with_constants(text)
    if args.check:
        if new != text:
            print(f"{PLUGIN}: generated block out of date; run python -m compose.wireshark")
            return 1
        print(f"{PLUGIN}: generated block up to date")
        return 0
    PLUGIN.write_text(new)
    print(f"{PLUGIN}: generated block written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
