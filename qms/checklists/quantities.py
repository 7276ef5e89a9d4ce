"""Durations, units and quantities as checklist authors write them ("30m", "20 mL/min", "-120 °C")."""

from __future__ import annotations

import math
import re
from datetime import timedelta

# Units a number field may carry. Closed on purpose: a typo such as "ml/mn" must fail
# lint instead of silently comparing apples with pears. Extend here, with a test.
UNITS = {
    "mL": "millilitres",
    "mL/min": "millilitres per minute",
    "mL/h": "millilitres per hour",
    "mg": "milligrams",
    "µg": "micrograms",
    "mg/m2": "milligrams per square metre",
    "µg/m2/day": "micrograms per square metre per day",
    "µg/day": "micrograms per day",
    "mg/mL": "milligrams per millilitre",
    "kg": "kilograms",
    "m2": "square metres",
    "cells": "cells",
    "cells/kg": "cells per kilogram",
    "%": "percent",
    "years": "years of age",
    "doses": "doses",
    "bags": "bags",
    "vials": "vials",
    "h": "hours",
    "min": "minutes",
    "days": "days",
    "grade": "grade (0-5)",
    "°C": "degrees Celsius",
}
# Spellings people type for the same unit; normalised before the check above.
UNIT_ALIASES = {
    "C": "°C",
    "degC": "°C",
    "ug": "µg",
    "μg": "µg",
    "ml": "mL",
    "ml/min": "mL/min",
    "ml/h": "mL/h",
}

_DURATION = re.compile(r"^(-)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_QUANTITY = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*([^\d\s].*?)?\s*$")


class QuantityError(ValueError):
    """A duration, unit or quantity that cannot be read; the message says what is allowed."""


def parse_duration(text: object) -> timedelta:
    """Read "30m", "1h", "1h30m", "8d", "90s" (days, hours, minutes, seconds, in that order)."""
    if not isinstance(text, str) or not text or not _DURATION.match(text.strip()):
        raise QuantityError(
            f"{text!r} is not a duration; write a number with d, h, m or s, e.g. 30m, 1h, 1h30m, 8d"
        )
    sign, days, hours, minutes, seconds = _DURATION.match(text.strip()).groups()
    if not any((days, hours, minutes, seconds)):
        raise QuantityError(f"{text!r} is not a duration; e.g. 30m, 1h, 1h30m, 8d")
    value = timedelta(
        days=int(days or 0),
        hours=int(hours or 0),
        minutes=int(minutes or 0),
        seconds=int(seconds or 0),
    )
    return -value if sign else value


def format_duration(value: timedelta) -> str:
    """The inverse of parse_duration, rounded down to the second: 45m, 1h5m, 2d3h."""
    total = int(value.total_seconds())
    sign = "-" if total < 0 else ""
    total = abs(total)
    # Labels speak of "24 hours" and "48 hours" but of "8 days": days only from 3 days on.
    days, rest = divmod(total, 86400) if total >= 3 * 86400 else (0, total)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{n}{u}" for n, u in ((days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")) if n]
    return sign + ("".join(parts) or "0m")


def normalise_unit(unit: object) -> str:
    if not isinstance(unit, str):
        raise QuantityError(f"{unit!r} is not a unit; allowed: {', '.join(UNITS)}")
    unit = unit.strip()
    unit = UNIT_ALIASES.get(unit, unit)
    if unit not in UNITS:
        raise QuantityError(f"unknown unit {unit!r}; allowed: {', '.join(UNITS)}")
    return unit


def parse_quantity(value: object, unit: str | None) -> float:
    """A limit as written: a bare number (in the field's unit) or "20 mL/min" / "-120 °C".

    A unit written next to the number must be the field's own unit: the engine never
    converts, so a limit cannot silently mean something else than the form asks for.
    """
    if isinstance(value, bool):
        raise QuantityError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise QuantityError(f"{value!r} is not a finite number")
        return float(value)
    if isinstance(value, str):
        match = _QUANTITY.match(value)
        if match:
            number, written_unit = match.groups()
            if written_unit is not None:
                written_unit = normalise_unit(written_unit)
                if unit is not None and written_unit != unit:
                    raise QuantityError(
                        f"{value!r} is in {written_unit} but the field is in {unit}; write the limit in {unit}"
                    )
                if unit is None:
                    raise QuantityError(
                        f"{value!r} has a unit but the field has none; write a bare number"
                    )
            return float(number)
    raise QuantityError(f"{value!r} is not a number; write e.g. 20 or '20 {unit or 'mL/min'}'")


def format_number(value: float) -> str:
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.2f}".rstrip("0").rstrip(".")


def format_quantity(value: float, unit: str | None) -> str:
    if unit is None:
        return format_number(value)
    if unit == "%":
        return f"{format_number(value)}%"
    if unit == "°C":
        return f"{format_number(value)} °C"
    return f"{format_number(value)} {unit}"
