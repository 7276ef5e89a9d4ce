"""Alembic environment: the same migrations for SQLite and PostgreSQL."""

from alembic import context
from sqlalchemy import text

import qms.models  # noqa: F401  (registers every table on the metadata)
from qms.core.models import CHECKED_PER_STATEMENT
from qms.db import make_engine, metadata

config = context.config

# One advisory-lock key for schema changes, so two processes starting at once migrate once.
MIGRATION_LOCK_KEY = 7_347_001


def _include(postgresql: bool):
    """Leave out of the comparison the foreign keys that PostgreSQL checks by a
    statement-level trigger instead (`qms.core.migration.parents_checked_per_statement`)."""

    def include(obj, _name, type_, reflected, _compare_to) -> bool:
        if postgresql and type_ == "foreign_key_constraint" and not reflected:
            return not any(fk.info.get(CHECKED_PER_STATEMENT) for fk in obj.elements)
        return True

    return include


def _run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        include_object=_include(connection.dialect.name == "postgresql"),
    )
    with context.begin_transaction():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_KEY})
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline SQL generation is not supported; run `qms init-db`")
run_migrations_online()
