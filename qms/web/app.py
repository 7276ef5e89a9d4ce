"""The application factory."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from qms.config import Settings, web_secret_key
from qms.db import Database
from qms.paths import STATIC_DIR, TEMPLATES_DIR
from qms.runtime import Runtime
from qms.web.sessions import SessionInterface

csrf = CSRFProtect()


def create_app(
    settings: Settings | None = None,
    *,
    database: Database | None = None,
    runtime: Runtime | None = None,
) -> Flask:
    """Build the app. Nothing here opens a database connection.

    The app gets its settings, database and checklist registry from a `Runtime`, the
    same way the commands do: `runtime` (e.g. the one `qms serve` checked), or one made
    from `settings` (default: QMS_* variables) and `database` (tests hand in a Database
    bound to their own transaction). The `qms` commands are not part of the web app:
    `qms.create_app` adds them for `flask --app qms ...`.
    """
    if runtime is None:
        runtime = Runtime(settings or Settings.from_env(), database=database)
    settings = runtime.settings
    app = Flask(
        "qms",
        template_folder=str(TEMPLATES_DIR),
        static_folder=str(STATIC_DIR),
        instance_path=str(settings.instance_path),
    )
    app.config.update(
        SECRET_KEY=web_secret_key(settings),
        TESTING=settings.testing,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.secure_cookies,
        SESSION_COOKIE_NAME="qms_session",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SECURE=settings.secure_cookies,
        PERMANENT_SESSION_LIFETIME=timedelta(minutes=settings.idle_timeout_minutes),
        SESSION_REFRESH_EACH_REQUEST=True,
        WTF_CSRF_TIME_LIMIT=None,  # the session's idle timeout bounds the token's life
        MAX_CONTENT_LENGTH=32 * 1024 * 1024,
    )
    app.session_interface = SessionInterface()
    app.extensions["qms_runtime"] = runtime
    # Views read these two; they are the runtime's own, fixed for the app's life.
    app.extensions["qms_settings"] = settings
    app.extensions["qms_database"] = runtime.database

    csrf.init_app(app)

    from qms.web import database as web_database

    app.teardown_appcontext(web_database.close_session)

    from qms.accounts.views import bp as accounts_bp
    from qms.accounts.views import init_login
    from qms.quality.views import bp as quality_bp
    from qms.records.views import bp as records_bp
    from qms.reports.views import bp as reports_bp
    from qms.reports.views import public_bp as report_check_bp
    from qms.storage.views import bp as storage_bp
    from qms.web import errors, language, layout, security
    from qms.web.views import bp as web_bp

    language.init_app(app)
    init_login(app)
    layout.init_app(app)
    errors.init_app(app)
    security.init_app(app, secure_cookies=settings.secure_cookies)
    app.register_blueprint(web_bp)
    app.register_blueprint(accounts_bp)
    app.register_blueprint(records_bp)
    app.register_blueprint(quality_bp)
    from qms.delivery.views import bp as delivery_bp
    from qms.scheduling.views import bp as scheduling_bp

    app.register_blueprint(scheduling_bp)
    app.register_blueprint(delivery_bp)
    app.register_blueprint(reports_bp)
    app.register_blueprint(report_check_bp)
    app.register_blueprint(storage_bp)
    return app


def runtime_of(app: Flask) -> Runtime:
    """The app's settings, database and checklist registry."""
    return app.extensions["qms_runtime"]


def settings_of(app: Flask) -> Settings:
    return runtime_of(app).settings
