"""How records and due items are shown on pages: words in the reader's language, times in the site's zone."""

from __future__ import annotations

from datetime import datetime

import flask_babel
from babel import dates as babel_dates

from qms.checklists.engine.due import render_due
from qms.checklists.facts import DueItem
from qms.core.i18n import checklist_text_key, current_locale, zone_named
from qms.db import utcnow


def due_text(item: DueItem, checklist=None, zone: str | None = None) -> str:
    """A due item's words in the reader's language, its times in the site's zone."""
    tz = zone_named(zone) if zone else flask_babel.get_timezone()
    locale = current_locale()
    today = utcnow().astimezone(tz).date()

    def clock(moment: datetime) -> str:
        local = moment.astimezone(tz)
        if local.date() == today:
            return babel_dates.format_time(local, "short", tzinfo=tz, locale=locale)
        return babel_dates.format_datetime(local, "short", tzinfo=tz, locale=locale)

    return render_due(
        item,
        checklist=checklist,
        lang=checklist_text_key(),
        gettext=flask_babel.gettext,
        clock=clock,
    )
