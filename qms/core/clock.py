"""Record times: the clock skew a device may have, and showing UTC in a site's zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

# A ward tablet's clock may run a little ahead: a time up to this far in the future is
# accepted; later ones are refused (a record cannot describe what has not happened).
CLOCK_SKEW = timedelta(minutes=2)


def zone_of(timezone: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(timezone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local(moment: datetime, timezone: str | None) -> str:
    """`2026-10-02 09:30:00 +08:00` in the site's zone."""
    shown = moment.astimezone(zone_of(timezone))
    offset = shown.strftime("%z")
    return f"{shown:%Y-%m-%d %H:%M:%S} {offset[:3]}:{offset[3:]}"
