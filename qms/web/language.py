"""Which language and time zone a request is shown in.

The language: the user's own choice, else the browser's Accept-Language (its best match
of English and Chinese), else the default language of the site being worked at, else
English. Times are shown in the zone of the site being worked at, else the
installation's zone (QMS_TIMEZONE).
"""

from __future__ import annotations

from datetime import tzinfo

from babel import Locale, support
from flask import Flask, current_app, g, has_request_context, request, session
from flask_babel import Babel, Domain
from flask_login import current_user
from werkzeug.utils import cached_property

from qms.accounts.models import Site
from qms.core.i18n import (
    DEFAULT_LANGUAGE,
    HTML_LANG,
    LANGUAGES,
    current_language,
    locale_of,
    zone_named,
)
from qms.paths import TRANSLATIONS_DIR


class _Catalogs(Domain):
    """Flask-Babel's domain, loading each catalog by our code for its language.

    Flask-Babel looks a catalog up by the locale's full name, which Babel gives as
    zh_Hans_CN for zh_CN, and would never find qms/translations/zh_CN.
    """

    def get_translations(self):
        if not g:
            return support.NullTranslations()
        language = current_language()
        key = (language, self.domain[0])
        if key not in self.cache:
            self.cache[key] = support.Translations.load(
                str(TRANSLATIONS_DIR), [language], self.domain[0]
            )
        return self.cache[key]


class _Babel(Babel):
    @cached_property
    def domain_instance(self) -> Domain:
        return _Catalogs(domain=self.domain)


babel = _Babel()

# Accept-Language tags and the catalog each one means. Werkzeug matches tags without
# regard to case or `-`/`_`, then by primary subtag (zh-TW falls back to zh).
BROWSER_LANGUAGES = {
    "en": "en",
    "zh_CN": "zh_CN",
    "zh": "zh_CN",
    "zh-CN": "zh_CN",
    "zh-Hans": "zh_CN",
}


def working_site() -> Site | None:
    """The site the signed-in user is working at in this session (read once a request)."""
    if not has_request_context() or not session.get("site_id"):
        return None
    if "qms_working_site" not in g:
        from qms.web.database import db_session

        g.qms_working_site = db_session().get(Site, session["site_id"])
    return g.qms_working_site


def select_language() -> str:
    if not has_request_context():
        return DEFAULT_LANGUAGE
    if current_user.is_authenticated and current_user.language in LANGUAGES:
        return current_user.language
    accepted = request.accept_languages.best_match(list(BROWSER_LANGUAGES))
    if accepted is not None:
        return BROWSER_LANGUAGES[accepted]
    site = working_site()
    if site is not None and site.language in LANGUAGES:
        return site.language
    return DEFAULT_LANGUAGE


def select_locale() -> Locale:
    """The request's language as a parsed Babel locale: Flask-Babel parses a code it is
    given, and parsing looks the locale up on disk (milliseconds, on every request)."""
    return locale_of(select_language())


def select_timezone() -> tzinfo:
    site = working_site()
    if site is not None and site.timezone:
        return zone_named(site.timezone)
    return zone_named(current_app.extensions["qms_settings"].timezone)


def init_app(app: Flask) -> None:
    babel.init_app(
        app,
        default_locale=DEFAULT_LANGUAGE,
        default_translation_directories=str(TRANSLATIONS_DIR),
        locale_selector=select_locale,
        timezone_selector=select_timezone,
    )

    @app.context_processor
    def _language():
        return {"html_lang": HTML_LANG[current_language()]}
