"""Operations that migrations share: the append-only protection of a regulated table.

A migration that creates a ledger table (or an append-only log) calls
`append_only(table)` after creating it; the triggers' names are those
`qms.core.ledger.trigger_names` gives, which `qms verify` checks. These operations are
part of the migrations' history: change what they install only together with a new
migration that re-installs it on existing databases.
"""

from __future__ import annotations

from alembic import op

REFUSE_FUNCTION = """
CREATE FUNCTION qms_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only: % refused (a correction is a new record with a reason)',
        TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END;
$$
"""


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def create_refuse_function() -> None:
    """The PostgreSQL function the append-only triggers call (once, in the first migration)."""
    if _postgresql():
        op.execute(REFUSE_FUNCTION)


def drop_refuse_function() -> None:
    if _postgresql():
        op.execute("DROP FUNCTION IF EXISTS qms_refuse_change()")


def append_only_sql(dialect: str, table: str) -> list[str]:
    """The statements that make the database refuse UPDATE and DELETE (and TRUNCATE on
    PostgreSQL) on `table`."""
    if dialect == "postgresql":
        return [
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION qms_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION qms_refuse_change()",
        ]
    return [
        f"CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {operation} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused "
        "(a correction is a new record with a reason)'); END"
        for operation in ("UPDATE", "DELETE")
    ]


def append_only(table: str) -> None:
    """Make the database refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on `table`.

    SQLite note: a batch "move and copy" rebuilds a table and loses its triggers: call
    this again after any batch operation on a protected table.
    """
    for statement in append_only_sql(op.get_bind().dialect.name, table):
        op.execute(statement)


def drop_append_only(table: str) -> None:
    if _postgresql():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_delete")
