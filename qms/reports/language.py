"""Rendering a report in the language chosen at generation, in or outside a request.

Commands build no web app, so a small Flask app carrying only the translation setup
(the same catalogs and Babel domain as the web app's) gives gettext and Jinja the
report's language; inside a request it is pushed over the request's own.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache

import flask_babel
from flask import Flask

from qms.paths import TEMPLATES_DIR


@lru_cache(maxsize=1)
def _translation_app() -> Flask:
    from qms.web import language

    app = Flask("qms.reports", template_folder=str(TEMPLATES_DIR))
    app.extensions["qms_settings"] = None  # never asked: reports give their zone explicitly
    language.init_app(app)
    return app


@contextmanager
def in_language(code: str) -> Iterator[Flask]:
    """gettext (`_`) and the report templates answer in `code` (en or zh_CN) inside."""
    app = _translation_app()
    with app.app_context(), flask_babel.force_locale(code):
        yield app


def render_template(name: str, **context) -> str:
    """A report template rendered with the current `in_language` app."""
    from flask import current_app

    return current_app.jinja_env.get_template(name).render(**context)
