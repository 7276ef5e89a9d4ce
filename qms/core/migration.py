"""Operations that migrations share: the append-only protection of a regulated table.

A migration that creates a ledger table (or an append-only log) calls
`append_only(table)` after creating it; the triggers' names are those
`qms.core.ledger.trigger_names` gives, which `qms verify` checks. These operations are
part of the migrations' history: change what they install only together with a new
migration that re-installs it on existing databases.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from qms.core.ledger import parents_trigger_name

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


def append_only_sql(dialect: str, table: str, guarded: Sequence[str] | None = None) -> list[str]:
    """The statements that make the database refuse UPDATE and DELETE (and TRUNCATE on
    PostgreSQL) on `table`; with `guarded`, an UPDATE only of those columns is refused
    (the others may change: equipment's `active`)."""
    update = f"UPDATE OF {', '.join(guarded)}" if guarded else "UPDATE"
    if dialect == "postgresql":
        return [
            f"CREATE TRIGGER {table}_append_only BEFORE {update} OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION qms_refuse_change()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION qms_refuse_change()",
        ]
    return [
        f"CREATE TRIGGER {table}_refuse_{operation.lower()} BEFORE {clause} ON {table} "
        f"BEGIN SELECT RAISE(ABORT, '{table} is append-only: {operation} refused "
        "(a correction is a new record with a reason)'); END"
        for operation, clause in (("UPDATE", update), ("DELETE", "DELETE"))
    ]


def append_only(table: str, *, mutable: Sequence[str] = ()) -> None:
    """Make the database refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL) on `table`;
    `mutable` names columns that may still be updated (every other column is guarded).

    SQLite note: a batch "move and copy" rebuilds a table and loses its triggers: call
    this again after any batch operation on a protected table.
    """
    bind = op.get_bind()
    guarded = None
    if mutable:
        columns = [c["name"] for c in sa.inspect(bind).get_columns(table)]
        guarded = [c for c in columns if c not in mutable]
    for statement in append_only_sql(bind.dialect.name, table, guarded):
        op.execute(statement)


def drop_append_only(table: str) -> None:
    if _postgresql():
        op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}")
    else:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_update")
        op.execute(f"DROP TRIGGER IF EXISTS {table}_refuse_delete")


def parents_checked_per_statement(table: str, references: Sequence[tuple[str, str, str]]) -> None:
    """On PostgreSQL, check `table`'s references (column, parent table, parent column) once
    per INSERT statement, for all its new rows in one query each (an AFTER INSERT ... FOR
    EACH STATEMENT trigger over the transition table), in place of foreign keys that fire
    a check per row: an import of 500,000 readings spent most of its time in them.

    Sound only when the parents are append-only (the database refuses their DELETE,
    TRUNCATE and an UPDATE of the key) and the child is too (its UPDATE is refused): then
    a reference that held when the row went in holds for ever, and no lock on the parent
    is needed. The statement fails as a foreign-key violation (SQLSTATE 23503), naming
    the first missing parent. Drop the foreign keys in the same migration; SQLite keeps
    its own (checked in C, a B-tree lookup a row)."""
    if not _postgresql():
        return
    # Names from the migration itself, never from input.
    checks = "\n".join(
        f"""    SELECT n.{column}::text INTO missing FROM qms_new_rows n
        WHERE n.{column} IS NOT NULL
          AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = n.{column}) LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'insert into {table} refused: {column} % is not present in table {parent}',
            missing USING ERRCODE = 'foreign_key_violation';
    END IF;"""  # noqa: S608
        for column, parent, key in references
    )
    name = parents_trigger_name(table)
    op.execute(
        f"""CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE missing text;
BEGIN
{checks}
    RETURN NULL;
END;
$$"""
    )
    op.execute(
        f"CREATE TRIGGER {name} AFTER INSERT ON {table} REFERENCING NEW TABLE AS qms_new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {name}()"
    )


def drop_parents_checked_per_statement(table: str) -> None:
    if _postgresql():
        name = parents_trigger_name(table)
        op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS {name}()")
