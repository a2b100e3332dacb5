"""The QE service request in PCEP METRIC objects (docs/design.md#qe-metric-types).

A PCReq for a quantum-encrypted service carries, besides RP and END-POINTS, one METRIC
object (RFC 5440 §7.8, class 6 type 1, float32 value) per QE parameter:

======  ==========================================  ==========
type    meaning                                     Fig. 8
======  ==========================================  ==========
255     key length, bytes                           32
254     encryption layer (1 optical, 2 Eth., 3 IP)  2
253     encryption algorithm (gmpls.qe.Algorithm)   10
252     key refresh value (unit per refresh type)   1000
251     key refresh type: 0 none, 1 ms, 2 MiB        absent = 1
======  ==========================================  ==========

The type codes come from :data:`gmpls.qe.CODEPOINTS` (configuration), and so does the P
flag they are sent with (set by default, RFC 5440 §7.2: a PCE that cannot honour them
must refuse the request rather than return a plain path).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from gmpls import qe
from gmpls.errors import DecodeError
from gmpls.pcep.objects import Metric


def _types() -> dict[int, str]:
    c = qe.CODEPOINTS
    return {
        c.metric_key_length: "key_length",
        c.metric_enc_layer: "enc_layer",
        c.metric_algorithm: "algorithm",
        c.metric_refresh_value: "refresh_value",
        c.metric_refresh_type: "refresh_type",
    }


def is_qe_metric(m: Metric) -> bool:
    return m.metric_type in _types()


def qe_metrics(params: qe.QeParams, *, always_refresh_type: bool = False) -> tuple[Metric, ...]:
    """The METRIC objects that ask for ``params`` (types 255, 254, 253, 252 and, when the
    refresh type is not the default "time" or ``always_refresh_type``, 251), with the P
    flag of :data:`gmpls.qe.CODEPOINTS` (set by default: a PCE must not ignore them)."""
    c = qe.CODEPOINTS
    p = c.metric_p_flag
    out = [
        Metric(c.metric_key_length, float(params.key_length), p=p),
        Metric(c.metric_enc_layer, float(params.enc_layer), p=p),
        Metric(c.metric_algorithm, float(params.algorithm), p=p),
        Metric(c.metric_refresh_value, float(params.refresh_value), p=p),
    ]
    if always_refresh_type or params.refresh_type != qe.RefreshType.TIME_MS:
        out.append(Metric(c.metric_refresh_type, float(params.refresh_type), p=p))
    return tuple(out)


def qe_params_from_metrics(metrics: Iterable[Metric]) -> qe.QeParams | None:
    """The QE parameters a request's METRIC objects carry; None when none is a QE metric.

    Raises DecodeError when a QE metric repeats, is not a whole non-negative number, or
    when key length, layer or algorithm is missing (the refresh value may be omitted only
    with refresh type 0). Values that are well formed but unknown (algorithm 99) are
    returned as they are: :meth:`gmpls.qe.QeParams.problems` names them, and the PCE
    answers NO-PATH with that reason.
    """
    types = _types()
    found: dict[str, int] = {}
    for m in metrics:
        name = types.get(m.metric_type)
        if name is None:
            continue
        where = f"pcep.METRIC[{m.metric_type}].value"
        if name in found:
            raise DecodeError(f"pcep.METRIC[{m.metric_type}]", f"{name} given twice")
        v = m.value
        if not math.isfinite(v) or v < 0 or v != int(v) or v > 0xFFFFFFFF:
            raise DecodeError(where, f"{name} {v!r} is not a whole number 0..2^32-1")
        found[name] = int(v)
    if not found:
        return None
    for needed in ("key_length", "enc_layer", "algorithm"):
        if needed not in found:
            raise DecodeError("pcep.METRIC", f"QE request without its {needed} metric")
    rtype = found.get("refresh_type", qe.RefreshType.TIME_MS)
    if "refresh_value" not in found and rtype != qe.RefreshType.NONE:
        raise DecodeError("pcep.METRIC", "QE request without its refresh_value metric")
    return qe.QeParams(
        key_length=found["key_length"],
        enc_layer=found["enc_layer"],
        algorithm=found["algorithm"],
        refresh_value=found.get("refresh_value", 0),
        refresh_type=rtype,
    )
