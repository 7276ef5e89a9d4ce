"""The languages users read: gettext for code and templates, and times in the locale's format.

`_`, `_l`, `ngettext` and `N_` work anywhere. In a request they answer in the language
chosen for it (qms.web.language); outside one (a service called from a command, a test,
the scheduler) Flask-Babel has no translations to use and they return the English text.
Messages with values use named placeholders: `_("%(n)s left", n=3)`.
"""

from __future__ import annotations

from datetime import UTC, datetime, tzinfo

import flask_babel
from babel import Locale
from babel.dates import format_datetime as _babel_format_datetime
from flask import has_app_context

from qms.core.clock import zone_of

# The languages the interface is translated into; English is the source language.
LANGUAGES = ("en", "zh_CN")
DEFAULT_LANGUAGE = "en"
# Each language is offered under its own name, so that a reader can find theirs whatever
# language the page is in: these names are never translated.
LANGUAGE_NAMES = {"en": "English", "zh_CN": "简体中文"}
# The value of <html lang> for each language (BCP 47).
HTML_LANG = {"en": "en", "zh_CN": "zh-CN"}


def _(string: str, **variables) -> str:
    """The translation of `string` now, with `%(name)s` placeholders filled from `variables`."""
    return flask_babel.gettext(string, **variables)


def _l(string: str, **variables) -> flask_babel.LazyString:
    """A translation made when the text is shown: for labels defined at import time."""
    return flask_babel.lazy_gettext(string, **variables)


def ngettext(singular: str, plural: str, num: int, **variables) -> str:
    """`singular` or `plural` by `num` (available as `%(num)d`), translated now."""
    return flask_babel.ngettext(singular, plural, num, **variables)


def N_(string: str) -> str:
    """Mark `string` for the catalog without translating it: `_()` translates it when shown."""
    return string


# Babel spells zh_CN as zh_Hans_CN once parsed; the catalogs go by the short code.
_LOCALES = {code: Locale.parse(code) for code in LANGUAGES}


def language_of(locale: Locale | None) -> str:
    """Our code (en, zh_CN) for a Babel locale; English for any other."""
    for code, known in _LOCALES.items():  # the request's locale is one of these objects
        if locale is known:
            return code
    for code, known in _LOCALES.items():
        if locale == known:
            return code
    return DEFAULT_LANGUAGE


def locale_of(code: str) -> Locale:
    """The Babel locale of one of our language codes (parsed once, at import)."""
    return _LOCALES[code]


def current_locale() -> Locale:
    """The Babel locale of the current request's language (parsed once, at import)."""
    return _LOCALES[current_language()]


def current_language() -> str:
    """The language of the current request, or English outside one."""
    return language_of(flask_babel.get_locale() if has_app_context() else None)


# The key of each language in checklist text ({en: ..., zh: ...}).
CHECKLIST_TEXT_KEYS = {"en": "en", "zh_CN": "zh"}


def checklist_text_key() -> str:
    """The key of the reader's language in checklist text (`en` outside a request)."""
    return CHECKLIST_TEXT_KEYS[current_language()]


def zone_named(name: str | None) -> tzinfo:
    """The zone of that IANA name, or UTC if the name is unknown (`core.clock.zone_of`)."""
    return zone_of(name)


def format_datetime(
    value: datetime | None, *, zone: tzinfo | str | None = None, seconds: bool = False
) -> str:
    """A stored time in the site's zone, in the locale's medium format, with the zone's offset.

    `Oct 2, 2026, 9:30 AM +08:00` in English, `2026年10月2日 09:30 +08:00` in Chinese. The zone
    is `zone` if given, else the request's site zone (qms.web.language), else UTC.
    """
    if value is None:
        return "—"
    language = current_language()
    if zone is None:
        zone = flask_babel.get_timezone() if has_app_context() else UTC
    elif isinstance(zone, str):
        zone = zone_named(zone)
    return _babel_format_datetime(
        value, _pattern(language, seconds), tzinfo=zone, locale=_LOCALES[language]
    )


_PATTERNS: dict[tuple[str, bool], str] = {}


def _pattern(language: str, seconds: bool) -> str:
    """The medium date-and-time pattern of a language, with the zone's offset. Made once per
    language: `Locale.parse` of a code looks the locale up on disk (a page shows hundreds
    of times), so the parsed locales are kept in `_LOCALES`."""
    known = _PATTERNS.get((language, seconds))
    if known is None:
        locale = _LOCALES[language]
        time_pattern = locale.time_formats["medium" if seconds else "short"].pattern
        known = _PATTERNS[(language, seconds)] = (
            str(locale.datetime_formats["medium"])
            .replace("{1}", locale.date_formats["medium"].pattern)
            .replace("{0}", time_pattern)
        ) + " xxx"
    return known
