"""The schema is made only by migrations, and the models agree with them."""

from alembic import command
from sqlalchemy import inspect

from qms.db import alembic_config, current_revision, make_engine, metadata, migrate


def test_models_and_migrations_agree(fresh_database_url):
    # alembic check fails when autogenerate would produce any operation.
    command.check(alembic_config(fresh_database_url))


def test_init_db_is_idempotent_and_creates_every_table(fresh_database_url):
    head = current_revision(fresh_database_url)
    migrate(fresh_database_url)
    assert current_revision(fresh_database_url) == head
    engine = make_engine(fresh_database_url)
    try:
        tables = set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert set(metadata.tables) <= tables
