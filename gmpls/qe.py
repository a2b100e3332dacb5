"""Quantum-encryption (QE) extensions: the code points and parameter registries of
docs/design.md#code-points, in one place.

The code points are configuration: a daemon may replace :data:`CODEPOINTS` at start-up
(for instance to move the ERO subobject out of the way of another experimental use); the
defaults are the ones the paper used.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum
from typing import Any


@dataclass(frozen=True, slots=True)
class Codepoints:
    #: RFC 7770 Informational Capabilities bit, numbered from the most significant bit
    ri_qe_bit: int = 6
    ri_te_bit: int = 3
    #: RFC 5440 METRIC object types (docs/design.md#qe-metric-types)
    metric_key_length: int = 255
    metric_enc_layer: int = 254
    metric_algorithm: int = 253
    metric_refresh_value: int = 252
    metric_refresh_type: int = 251
    #: ERO/RRO subobject type of the QE subobject (docs/design.md#the-qe-ero-subobject)
    ero_subobject: int = 103
    #: OSPF-TE Link TLV sub-TLV type of our wavelength-availability sub-TLV (docs/ospf-te.md):
    #: from RFC 3630's experimental range 32768-32777 (types below it are Standards Action)
    te_available_labels: int = 32768
    #: OSPF-TE top-level TLV type of the QKD link TLV (docs/ospf-te.md#the-qkd-link-tlv):
    #: the same experimental range, one TLV per TE LSA, originated by a site's node
    te_qkd_link: int = 32769
    #: PCEP TLV type of the key relay path (docs/pcep.md#the-relay-path-tlv), from RFC 8356's
    #: experimental range 65504-65535 (65504 is our NO-PATH reason, 65505 the Cisco
    #: binding-SID TLV FRR's pathd sends): in the RP object of a PCRep, in the LSP object
    #: of a PCUpd, PCInitiate or PCRpt
    pcep_relay_tlv: int = 65520
    #: not a code point but set the same way: the P flag (RFC 5440 §7.2) of the QE METRIC
    #: objects a PCC sends. Set, a PCE must take them into account or refuse the request;
    #: cleared, a standard PCE may ignore them and return a plain, unencrypted path.
    metric_p_flag: bool = True

    @property
    def ri_qe_mask(self) -> int:
        return 1 << (31 - self.ri_qe_bit)

    @property
    def ri_te_mask(self) -> int:
        return 1 << (31 - self.ri_te_bit)


#: The code points in force. Replace with :func:`configure`, never mutate.
CODEPOINTS = Codepoints()


def configure(**changes: Any) -> Codepoints:
    """Change code points (e.g. ``configure(ero_subobject=104)``, or
    ``configure(metric_p_flag=False)``); returns the new set."""
    global CODEPOINTS
    CODEPOINTS = replace(CODEPOINTS, **changes)
    return CODEPOINTS


class EncLayer(IntEnum):
    OPTICAL = 1
    ETHERNET = 2
    IP = 3


class Algorithm(IntEnum):
    """Encryption algorithm registry (docs/design.md#qe-parameter-registries)."""

    ONE_TIME_PAD = 1
    TDES_CBC = 3
    AES_256_GCM = 10
    AES_128_GCM = 11
    CHACHA20_POLY1305 = 12


class RefreshType(IntEnum):
    NONE = 0
    TIME_MS = 1
    VOLUME_MIB = 2


#: Session ID (ETSI 004 key_handle) length in bytes
SESSION_ID_LEN: int = 64
ZERO_SESSION_ID: bytes = bytes(SESSION_ID_LEN)


@dataclass(frozen=True, slots=True)
class QeParams:
    """The parameters of a QE service, as a PCReq carries them in METRIC objects."""

    key_length: int = 32
    enc_layer: int = EncLayer.ETHERNET
    algorithm: int = Algorithm.AES_256_GCM
    refresh_value: int = 1000
    refresh_type: int = RefreshType.TIME_MS

    def problems(self) -> list[str]:
        """Why these parameters cannot be served; empty when they can."""
        out = []
        if self.enc_layer not in EncLayer._value2member_map_:
            out.append(f"unknown encryption layer {self.enc_layer}")
        if self.algorithm not in Algorithm._value2member_map_:
            out.append(f"unknown encryption algorithm {self.algorithm}")
        if self.refresh_type not in RefreshType._value2member_map_:
            out.append(f"unknown key refresh type {self.refresh_type}")
        if not 1 <= self.key_length <= 0xFFFF:
            out.append(f"key length {self.key_length} out of range 1..65535")
        if not 0 <= self.refresh_value <= 0xFFFF:
            out.append(f"refresh value {self.refresh_value} out of range 0..65535")
        return out
