"""Mean kinetic temperature (USP <659>) and time spent above a limit, from logger readings."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime, timedelta

DELTA_H_J_PER_MOL = 83_144.0  # ΔH = 83.144 kJ/mol (USP <659>)
GAS_CONSTANT = 8.3144  # R in J/(mol·K)
KELVIN = 273.15


def mean_kinetic_temperature(
    temperatures_c: Sequence[float], weights: Sequence[float] | None = None
) -> float:
    """MKT in °C: (ΔH/R) / −ln(Σ wᵢ·e^(−ΔH/(R·Tᵢ)) / Σ wᵢ), T in kelvin.

    With equal weights this is USP <659>'s formula for evenly spaced readings. Loggers do
    not always read evenly (gaps, alarms that read more often), so callers pass the time
    each reading stood for as its weight; a burst of alarm readings then does not count
    more than the hours around it.
    """
    if not temperatures_c:
        raise ValueError("mean kinetic temperature needs at least one reading")
    if weights is None:
        weights = [1.0] * len(temperatures_c)
    if len(weights) != len(temperatures_c):
        raise ValueError("one weight per reading")
    total_weight = math.fsum(weights)
    if total_weight <= 0:
        # All readings at one instant: each stands for the same (zero) time.
        weights = [1.0] * len(temperatures_c)
        total_weight = float(len(temperatures_c))
    ratio = DELTA_H_J_PER_MOL / GAS_CONSTANT
    acc = math.fsum(
        w * math.exp(-ratio / (t + KELVIN)) for t, w in zip(temperatures_c, weights, strict=True)
    )
    return ratio / -math.log(acc / total_weight) - KELVIN


def held_intervals(times: Sequence[datetime], end: datetime) -> list[timedelta]:
    """How long each reading stood for: until the next reading, the last one until `end`."""
    out = []
    for i, at in enumerate(times):
        nxt = times[i + 1] if i + 1 < len(times) else end
        out.append(max(nxt - at, timedelta(0)))
    return out
