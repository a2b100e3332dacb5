"""Secret-key rate of a decoy-state BB84 link (docs/qkd-rate-model.md).

The asymptotic rate of Lo, Ma and Chen, "Decoy State Quantum Key Distribution", PRL 94,
230504 (2005), eq. (1)-(3), with the GLLP bound and the infinite-decoy estimates of the
single-photon yield and error, for a weak-coherent source of mean photon number ``mu``::

    eta   = eta_det * 10^(-(alpha*L + extra_dB) / 10)          channel + detector
    Q_mu  = Y0 + 1 - exp(-eta*mu)                              gain
    E_mu  = (e0*Y0 + e_d*(1 - exp(-eta*mu))) / Q_mu            QBER, e0 = 1/2
    Y1    = Y0 + eta - Y0*eta,   e1 = (e0*Y0 + e_d*eta) / Y1   single photons
    Q1    = Y1 * mu * exp(-mu)
    R     = q * (Q1 * (1 - H2(e1)) - f_EC * Q_mu * H2(E_mu))    bits per pulse
    rate  = kappa * f_rep * max(R, 0)                          bits per second

``q`` is the sifting factor (efficient BB84 with a biased basis choice p_Z: q = p_Z^2 +
(1-p_Z)^2), ``f_EC`` the error-correction inefficiency and ``kappa`` a single calibration
factor for everything the asymptotic formula leaves out (finite-size statistics, dead time,
privacy-amplification overhead), fitted to a published point. Pure: no I/O (the topology
loader uses it for a `qkd_links` entry given by `fibre_km`; `idq3p_emulator/model.py`
re-exports it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace


def h2(p: float) -> float:
    """Binary entropy in bits; 0 at p = 0 or 1."""
    if p <= 0.0 or p >= 1.0:
        return 0.0
    return -p * math.log2(p) - (1 - p) * math.log2(1 - p)


@dataclass(frozen=True, slots=True)
class LinkModel:
    fibre_km: float = 10.0
    db_per_km: float = 0.2
    extra_loss_db: float = 0.0
    detector_efficiency: float = 0.30
    dark_count: float = 1e-6  # per gate, both detectors together (Y0)
    misalignment: float = 0.01  # e_d, optical error
    mu: float = 0.5
    rep_rate_hz: float = 1e9
    p_z: float = 0.94  # probability of the key basis (efficient BB84)
    f_ec: float = 1.16
    kappa: float = 1.0

    def channel_loss_db(self) -> float:
        return self.fibre_km * self.db_per_km + self.extra_loss_db

    def bits_per_pulse(self) -> float:
        eta = self.detector_efficiency * 10 ** (-self.channel_loss_db() / 10)
        y0 = self.dark_count
        e0 = 0.5
        detect = 1 - math.exp(-eta * self.mu)
        q_mu = y0 + detect
        e_mu = (e0 * y0 + self.misalignment * detect) / q_mu
        y1 = y0 + eta - y0 * eta
        e1 = (e0 * y0 + self.misalignment * eta) / y1
        q1 = y1 * self.mu * math.exp(-self.mu)
        q_sift = self.p_z**2 + (1 - self.p_z) ** 2
        r = q_sift * (q1 * (1 - h2(e1)) - self.f_ec * q_mu * h2(e_mu))
        return max(r, 0.0)

    def rate_bps(self) -> float:
        return self.kappa * self.rep_rate_hz * self.bits_per_pulse()

    def calibrated(self, target_bps: float) -> LinkModel:
        """The same link with ``kappa`` chosen so that :meth:`rate_bps` equals ``target_bps``."""
        raw = replace(self, kappa=1.0).rate_bps()
        if raw <= 0:
            raise ValueError("the link yields no key; cannot calibrate")
        return replace(self, kappa=target_bps / raw)


#: Published operating points (docs/qkd-rate-model.md): (label, fibre km, dB/km, rate b/s)
PUBLISHED = (
    # Yuan et al., "10-Mb/s Quantum Key Distribution", J. Lightwave Technol. 36 (2018):
    # 13.72 Mb/s secure key rate over 10 km of standard fibre (2 dB), 1 GHz clock.
    ("Yuan 2018, 10 km", 10.0, 0.2, 13.72e6),
    # Lucamarini et al., "Efficient decoy-state QKD with quantified security", Opt. Express
    # 21, 24550 (2013): 1.2 Mb/s over 50 km, 1 GHz clock.
    ("Lucamarini 2013, 50 km", 50.0, 0.2, 1.2e6),
)

#: the default link calibrated on the first published point (kappa fitted there)
CALIBRATED = LinkModel(fibre_km=PUBLISHED[0][1], db_per_km=PUBLISHED[0][2]).calibrated(
    PUBLISHED[0][3]
)


def rate_for(
    fibre_km: float,
    db_per_km: float = 0.2,
    extra_loss_db: float = 0.0,
    detector_efficiency: float | None = None,
    dark_count: float | None = None,
) -> float:
    """Secret-key rate (b/s) of a link, with the calibrated model's other figures."""
    m = replace(CALIBRATED, fibre_km=fibre_km, db_per_km=db_per_km, extra_loss_db=extra_loss_db)
    if detector_efficiency is not None:
        m = replace(m, detector_efficiency=detector_efficiency)
    if dark_count is not None:
        m = replace(m, dark_count=dark_count)
    return m.rate_bps()


def max_fibre_km(db_per_km: float = 0.2, extra_loss_db: float = 0.0) -> float:
    """The longest fibre (km, to 0.1 km) on which the calibrated link still yields key."""
    lo, hi = 0.0, 1000.0
    if rate_for(lo, db_per_km, extra_loss_db) <= 0:
        return 0.0
    if rate_for(hi, db_per_km, extra_loss_db) > 0:
        return hi
    while hi - lo > 0.05:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rate_for(mid, db_per_km, extra_loss_db) > 0 else (lo, mid)
    return round(lo, 1)
