"""`qms verify`: the whole chain, then every typed row against what the chain covers.

The chain pass hashes the stored bytes with plain cursors (no ORM objects): it names
the first record altered, removed or inserted. The typed-row pass renders each declared
table's rows to canonical JSON straight from their columns, with one renderer per table
derived from its declaration (``qms.core.ledger.declare``), and compares the bytes with
the chained content. Last, it checks that every protected table still has its
append-only triggers, enabled.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session, SQLModel

from qms.core.canonical import GENESIS
from qms.core.ledger import (
    JSON,
    NUMBER,
    RECORD_TYPES,
    TIME,
    USER,
    RecordType,
    declared_kinds,
    parents_trigger_name,
    protected_tables,
    trigger_names,
)
from qms.core.models import CHECKED_PER_STATEMENT


@dataclass(frozen=True)
class Problem:
    seq: int | None
    kind: str | None
    ref: str | None
    message: str

    def __str__(self) -> str:
        where = f"record {self.seq}" if self.seq is not None else "ledger"
        if self.kind:
            where += f" ({self.kind} {self.ref})"
        return f"{where}: {self.message}"


@dataclass
class VerifyReport:
    records: int = 0
    head_seq: int = 0
    head_hash: str = GENESIS
    problems: list[Problem] = field(default_factory=list)
    rows_checked: int = 0
    # With a ledger key: the first sealed record (None: none is) and whether seals were checked.
    sealed_from: int | None = None
    seals_checked: bool = False

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.seq is None, p.seq or 0), default=None)


_FORGED = (
    "its seal does not match this installation's ledger key: appended or rewritten "
    "outside qms (or the ledger key was changed)"
)
BATCH = 20_000
MAX_PROBLEMS = 100


def _raw(session_or_connection: Session | Connection):
    connection = (
        session_or_connection.connection()
        if isinstance(session_or_connection, Session)
        else session_or_connection
    )
    return connection, connection.connection.dbapi_connection


def _rows(dbapi, dialect: str, sql: str, pg_types: list[str]) -> Iterator[list[tuple]]:
    """Batches of the rows of `sql`, streamed with a plain cursor (COPY on PostgreSQL)."""
    if dialect == "postgresql":
        cursor = dbapi.cursor()
        try:
            with cursor.copy(f"COPY ({sql}) TO STDOUT (FORMAT binary)") as copy:
                copy.set_types(pg_types)
                batch: list[tuple] = []
                for row in copy.rows():
                    batch.append(row)
                    if len(batch) >= BATCH:
                        yield batch
                        batch = []
                if batch:
                    yield batch
        finally:
            cursor.close()
        return
    cursor = dbapi.cursor()
    try:
        cursor.execute(sql)
        while rows := cursor.fetchmany(BATCH):
            yield rows
    finally:
        cursor.close()


def _name_records(connection: Connection, report: VerifyReport) -> None:
    """Fill in the kind and ref of the records the chain pass found problems with."""
    seqs = sorted({p.seq for p in report.problems if p.seq is not None and p.kind is None})
    if not seqs:
        return
    rows = connection.execute(
        text("SELECT seq, kind, ref FROM ledger_entry WHERE seq IN :seqs").bindparams(
            bindparam("seqs", expanding=True)
        ),
        {"seqs": seqs},
    )
    names = {seq: (kind, ref) for seq, kind, ref in rows}
    report.problems[:] = [
        Problem(p.seq, *names[p.seq], p.message) if p.kind is None and p.seq in names else p
        for p in report.problems
    ]


def verify(
    session_or_connection: Session | Connection,
    *,
    check_rows: bool = True,
    expect_hashes: tuple[str, ...] = (),
    progress: Callable[[int], None] | None = None,
    thorough: bool = False,
    parallel: bool = False,
    seal_key: bytes | None = None,
) -> VerifyReport:
    """Check the whole chain, then that every typed row matches what the chain covers.

    `expect_hashes` are head hashes quoted earlier (in reports): each must still be in
    the chain, which catches records removed from the end. Reads with plain cursors and
    hashes the stored bytes (no ORM objects): this is the hot path of `qms verify`.
    The typed rows are compared in the database first and only suspects are rendered in
    Python; `thorough=True` renders every row in Python (the tests compare the two).

    `parallel=True` (the `qms verify` command) compares the typed rows on a second
    connection while this one hashes the chain: the database works on one core while
    Python hashes on the other. Each pass is whole in its own snapshot; use it only on
    committed data (a second connection does not see this transaction's own writes).

    `seal_key` (the installation's ledger key) checks each entry's seal: an entry appended
    or rewritten by someone without the key, chained correctly or not, is named. Entries
    written before sealing began carry none; after the first sealed one, every one must.
    """
    connection, dbapi = _raw(session_or_connection)
    dialect = connection.dialect.name
    typed = _TypedPass(connection, dialect, thorough) if check_rows and parallel else None
    report = VerifyReport()
    problems = report.problems
    expected_seq = 1
    previous = GENESIS.encode()
    previous_seq = 0
    # A link that does not hold is judged at the next record: if that one still links
    # to the record before the break, the record at the break was inserted.
    pending: tuple | None = None
    sha256 = hashlib.sha256
    wanted = {h.encode() for h in expect_hashes}
    # kind and ref are looked up afterwards for the few records with a problem.
    sql = "SELECT seq, content, prev_hash, hash, seal FROM ledger_entry ORDER BY seq"
    report.seals_checked = seal_key is not None
    digest = hmac.digest
    sealed_from: int | None = None
    # Text as bytes: hashed as stored, without decoding and encoding again.
    sqlite_factory = None
    if dialect == "sqlite":
        sqlite_factory, dbapi.text_factory = dbapi.text_factory, bytes
    try:
        for rows in _rows(dbapi, dialect, sql, ["int4", "bytea", "bytea", "bytea", "bytea"]):
            for seq, content, prev_hash, stored, seal in rows:
                if sha256(prev_hash + content).hexdigest().encode() != stored:
                    problems.append(
                        Problem(seq, None, None, "altered: its content no longer matches its hash")
                    )
                if seal_key is not None:
                    if seal is not None:
                        if sealed_from is None:
                            sealed_from = seq
                        if digest(seal_key, stored, "sha256").hex().encode() != seal:
                            problems.append(Problem(seq, None, None, _FORGED))
                    elif sealed_from is not None:
                        problems.append(
                            Problem(
                                seq,
                                None,
                                None,
                                f"not sealed, though every record since {sealed_from} is: "
                                "written outside qms",
                            )
                        )
                linked = prev_hash == previous
                if pending is not None:
                    p_seq, before, b_seq = pending
                    pending = None
                    if prev_hash == before:
                        linked = True
                        problems.append(
                            Problem(
                                p_seq,
                                None,
                                None,
                                f"inserted: it does not follow record {b_seq}, and record {seq} still does",
                            )
                        )
                    else:
                        problems.append(
                            Problem(
                                b_seq,
                                None,
                                None,
                                f"altered: record {p_seq} was chained after a different version of it "
                                "(or a record between them was removed)",
                            )
                        )
                if seq != expected_seq:
                    missing = (
                        f"record {expected_seq}"
                        if seq == expected_seq + 1
                        else f"records {expected_seq}–{seq - 1}"
                    )
                    problems.append(
                        Problem(
                            expected_seq,
                            None,
                            None,
                            f"{missing} removed (the sequence jumps to {seq})",
                        )
                    )
                elif not linked:
                    pending = (seq, previous, previous_seq)
                if wanted and stored in wanted:
                    wanted.discard(stored)
                previous, previous_seq = stored, seq
                expected_seq = seq + 1
            report.records += len(rows)
            if progress is not None:
                progress(report.records)
            if len(problems) >= MAX_PROBLEMS:
                break
    finally:
        if sqlite_factory is not None:
            dbapi.text_factory = sqlite_factory
    if pending is not None:
        problems.append(
            Problem(
                pending[0],
                None,
                None,
                f"altered or inserted: it does not follow record {pending[2]}",
            )
        )
    report.head_seq, report.head_hash = previous_seq, previous.decode()
    report.sealed_from = sealed_from
    _name_records(connection, report)
    for missing_hash in sorted(wanted):
        problems.append(
            Problem(
                None,
                None,
                None,
                f"the quoted head hash {missing_hash.decode()} is no longer in the chain: "
                "records were removed or rewritten",
            )
        )
    if typed is not None:
        problems.extend(typed.join(report))
    elif check_rows and len(problems) < MAX_PROBLEMS:
        _check_typed_rows(dbapi, dialect, report, thorough)
    _check_anchors(connection, report)
    _check_protection(connection, report)
    return report


def _check_anchors(connection: Connection, report: VerifyReport) -> None:
    """Every head anchored earlier (by a verify, an audit run, a report) must still stand:
    the record at its seq exists and has its hash. A shorter chain that is whole in itself
    (records removed from the end, triggers restored) fails here."""
    rows = connection.execute(
        text(
            "SELECT a.source, a.source_ref, a.head_seq, a.head_hash, a.recorded_at, l.hash "
            "FROM ledger_anchor a LEFT JOIN ledger_entry l ON l.seq = a.head_seq "
            "WHERE l.hash IS NULL OR l.hash <> a.head_hash ORDER BY a.id LIMIT :n"
        ),
        {"n": MAX_PROBLEMS},
    )
    for source, ref, seq, anchored, recorded_at, found in rows:
        by = _ANCHOR_SOURCES.get(source, source) + (f" {ref}" if ref else "")
        when = str(recorded_at)[:19]
        what = (
            f"record {seq} was removed (the ledger ends before it)"
            if found is None
            else f"record {seq} now has another hash ({found})"
        )
        report.problems.append(
            Problem(
                seq,
                None,
                None,
                f"the head anchored by {by} at {when} (hash {anchored}) no longer stands: {what}",
            )
        )


_ANCHOR_SOURCES = {"verify": "qms verify", "audit": "audit run", "report": "report"}


class _TypedPass:
    """The typed-row pass on a connection of its own, in a thread (see `verify`)."""

    def __init__(self, connection: Connection, dialect: str, thorough: bool):
        self.report = VerifyReport()
        self.error: BaseException | None = None
        engine = connection.engine

        def run() -> None:
            raw = engine.raw_connection()
            try:
                _check_typed_rows(raw, dialect, self.report, thorough)
            except BaseException as exc:  # re-raised in the caller's thread
                self.error = exc
            finally:
                raw.rollback()
                raw.close()

        self.thread = threading.Thread(target=run, name="qms-verify-rows", daemon=True)
        self.thread.start()

    def join(self, report: VerifyReport) -> list[Problem]:
        self.thread.join()
        if self.error is not None:
            raise self.error
        report.rows_checked = self.report.rows_checked
        return self.report.problems


# --- typed rows: rendered to canonical JSON straight from their columns -------------------
#
# The query selects each key's column in sorted key order, so rendering a row is one
# %-format of encoded values, by a function generated once per table from its
# declaration. Times are formatted by the database itself on SQLite (an altered time
# column then no longer matches); PostgreSQL's come as aware datetimes.

_encode_text = json.encoder.encode_basestring  # the encoder json.dumps(ensure_ascii=False) uses


def _as_number(value: Any) -> str:
    if value is None:
        return "null"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _as_pg_time(value: datetime | None) -> str:
    if value is None:
        return "null"
    if value.utcoffset():
        value = value.astimezone(UTC)
    return '"' + value.isoformat(timespec="microseconds")[:-6] + 'Z"'


def _time_sql(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"(replace({column}, ' ', 'T') || 'Z')"  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff'


def _version_of(content: str) -> str:
    # "v" is a top-level key; no key after it holds an object, and a string value
    # cannot contain an unescaped quote, so the last '"v":' is the record's version.
    at = content.rfind('"v":') + 4
    end = at
    while content[end].isdigit():
        end += 1
    return content[at:end]


@dataclass(frozen=True)
class _TypedQuery:
    sql: str
    pg_types: list[str]
    render: Callable[[tuple], str]  # a row of the query -> its canonical JSON
    type_at: int
    id_at: int


def _typed_query(dialect: str, declaration: RecordType, usernames: dict) -> _TypedQuery:
    """The SQL, PostgreSQL column types and the generated renderer for one typed table."""
    columns: list[str] = []
    types = ["int4", "text", "text", "text"]  # seq, kind, ref, content
    parts: list[str] = []  # one Python expression per key, over the row `r`
    by_key = {c.key: c for c in declaration.chained}
    for key in declaration.keys:
        at = 4 + len(columns)
        value = f"r[{at}]"
        if key == "v":
            parts.append("V(r[3])")
            continue
        if key == "type":
            columns.append(f"{declaration.kind_sql} AS c_type")
            types.append("text")
            parts.append(f"E({value})")
            continue
        chained = by_key[key]
        expression = chained.sql or f"t.{chained.attribute}"
        if "{time:" in expression:
            inner = expression.split("{time:")[1].split("}")[0]
            expression = expression.replace("{time:" + inner + "}", _time_sql(dialect, inner))
        pg_type = "text"
        if chained.encoding == TIME and dialect == "postgresql":
            pg_type, part = "timestamptz", f"PT({value})"
        elif chained.encoding == TIME:
            expression = _time_sql(dialect, expression)
            part = f"('null' if {value} is None else E({value}))"
        elif chained.encoding == USER:
            pg_type, part = "int4", f"U({value}, '\"<unknown user>\"')"
        elif chained.encoding == NUMBER:
            pg_type, part = "float8", f"N({value})"
        elif chained.encoding == JSON:
            part = f"('null' if {value} is None else {value})"
        else:
            part = f"('null' if {value} is None else E({value}))"
        columns.append(f"{expression} AS c_{key}")
        types.append(pg_type)
        parts.append(part)
    template = "{" + ",".join(f'"{key}":%s' for key in declaration.keys) + "}"
    source = f"lambda r: T % ({', '.join(parts)},)"
    namespace = {
        "T": template,
        "E": _encode_text,
        "N": _as_number,
        "PT": _as_pg_time,
        "U": usernames.get,
        "V": _version_of,
    }
    render = eval(source, namespace)  # noqa: S307 (built from the declaration's constants only)
    sql = (
        f"SELECT l.seq, l.kind, l.ref, l.content, {', '.join(columns)} "  # noqa: S608 (constants only)
        f"FROM {declaration.table} t JOIN ledger_entry l ON l.seq = t.ledger_seq ORDER BY l.seq"
    )
    keys = declaration.keys
    return _TypedQuery(
        sql, types, render, 4 + _column_index(keys, "type"), 4 + _column_index(keys, "id")
    )


# --- the fast pass: the database renders each row and compares it with the chain ---------
#
# The same declaration, rendered in SQL (string concatenation and the database's JSON
# string quoting, which escapes exactly what Python's json does), so that only the rows
# that may differ come back to Python, which then judges them with the renderer above.
# A number is rendered in SQL only when its text round-trips exactly; anything the SQL
# rendering cannot vouch for comes back as a suspect, never as a pass. The version ("v")
# is read from the chained content itself, at the place the rendering gives it: one digit
# (versions 1-9), after which come only the keys that sort after "v".


def _sql_text(dialect: str, expression: str) -> str:
    if dialect == "postgresql":
        return f"COALESCE(to_json(({expression})::text)::text, 'null')"
    return f"json_quote({expression})"  # json_quote(NULL) is 'null'


def _sql_number(dialect: str, expression: str) -> str:
    if dialect == "postgresql":  # float8 text is the shortest exact form, as repr is
        return (
            f"CASE WHEN {expression} IS NULL THEN 'null' "
            f"WHEN {expression} = trunc({expression}) AND abs({expression}) < 1e15 "
            f"THEN trunc({expression})::bigint::text ELSE ({expression})::text END"
        )
    return (
        f"CASE WHEN {expression} IS NULL THEN 'null' "
        f"WHEN {expression} = CAST({expression} AS INTEGER) AND abs({expression}) < 1e15 "
        f"THEN CAST(CAST({expression} AS INTEGER) AS TEXT) "
        f"WHEN CAST(CAST({expression} AS TEXT) AS REAL) = {expression} "
        f"THEN CAST({expression} AS TEXT) ELSE '<recheck>' END"
    )


def _suspects_sql(dialect: str, declaration: RecordType) -> str:
    """The seqs of the rows whose SQL rendering is not byte for byte their chained content."""
    joins: list[str] = []
    before: list[str] = []  # the rendered "key":value parts, in key order, before "v"
    after: list[str] = []
    by_key = {c.key: c for c in declaration.chained}
    # On PostgreSQL each time column is formatted once per row (to_char is the costly part,
    # and a column can appear in several keys and in the ref), in a lateral subquery that
    # OFFSET 0 keeps from being flattened back into every use.
    times: dict[str, str] = {}

    def formatted(expression: str) -> str:
        if dialect != "postgresql":
            return _time_sql(dialect, expression)
        if expression not in times:
            times[expression] = f"f{len(times)}"
        return f"x.{times[expression]}"

    def with_times(expression: str) -> str:
        while "{time:" in expression:
            inner = expression.split("{time:")[1].split("}")[0]
            expression = expression.replace("{time:" + inner + "}", formatted(inner))
        return expression

    seen_v = False
    for key in declaration.keys:
        if key == "v":
            seen_v = True
            continue
        if key == "type":
            constant = re.fullmatch(r"'([a-z_]+)'", declaration.kind_sql)
            value = (
                f"""'"{constant.group(1)}"'"""
                if constant
                else _sql_text(dialect, declaration.kind_sql)
            )
        else:
            chained = by_key[key]
            expression = with_times(chained.sql or f"t.{chained.attribute}")
            if chained.encoding == TIME:
                value = f"""COALESCE('"' || {formatted(expression)} || '"', 'null')"""
            elif chained.encoding == USER:
                alias = f"u{len(joins)}"
                joins.append(f"LEFT JOIN app_user {alias} ON {alias}.id = {expression}")
                value = _sql_text(dialect, f"{alias}.username")
            elif chained.encoding == NUMBER:
                value = _sql_number(dialect, expression)
            elif chained.encoding == JSON:
                value = f"COALESCE({expression}, 'null')"
            else:
                value = _sql_text(dialect, expression)
        (after if seen_v else before).append((key, value))

    def joined(parts: list[tuple[str, str]], lead: str) -> str:
        pieces = []
        for n, (key, value) in enumerate(parts):
            pieces.append(f"""'{lead if n == 0 else ","}"{key}":' || {value}""")
        return " || ".join(pieces) if pieces else "''"

    prefix = joined(before, "{") + """ || ',"v":'"""
    suffix = (joined(after, ",") + " || '}'") if after else "'}'"
    if dialect == "postgresql":
        version = f"substr(l.content, length(l.content) - length({suffix}), 1)"
    else:
        version = f"substr(l.content, -(length({suffix}) + 1), 1)"
    rendered = f"{prefix} || {version} || {suffix}"
    kinds = ", ".join(f"'{k}'" for k in declaration.kinds)
    id_chained = by_key["id"]
    id_expression = with_times(id_chained.sql or f"t.{id_chained.attribute}")
    if times:
        columns = ", ".join(
            f"{_time_sql(dialect, expression)} AS {alias}" for expression, alias in times.items()
        )
        joins.insert(0, f"CROSS JOIN LATERAL (SELECT {columns} OFFSET 0) x")
    differs = (
        f"({rendered}) <> l.content OR l.kind NOT IN ({kinds}) "
        f"OR l.kind <> {declaration.kind_sql} OR l.ref <> {id_expression}"
    )
    if dialect == "postgresql":
        suspects = f"string_agg(CASE WHEN {differs} THEN l.seq::text END, ',')"
    else:
        suspects = f"group_concat(CASE WHEN {differs} THEN l.seq END)"
    # One pass: how many rows join their entry, and the seqs of those that may differ.
    return (
        f"SELECT count(*), {suspects} FROM {declaration.table} t "  # noqa: S608 (constants only)
        f"JOIN ledger_entry l ON l.seq = t.ledger_seq {' '.join(joins)}"
    )


def _column_index(keys: list[str], key: str) -> int:
    """Where a key's column is among the selected ones ("v" has no column)."""
    return [k for k in keys if k != "v"].index(key)


def _check_typed_rows(dbapi, dialect: str, report: VerifyReport, thorough: bool) -> None:
    problems = report.problems
    cursor = dbapi.cursor()
    try:
        cursor.execute("SELECT id, username FROM app_user")
        usernames: dict = {user_id: _encode_text(name) for user_id, name in cursor.fetchall()}
    finally:
        cursor.close()
    usernames[None] = "null"

    if dialect == "postgresql":
        cursor = dbapi.cursor()
        try:  # times arrive in UTC, ready for isoformat
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        finally:
            cursor.close()
    # A kind of record in the chain that no loaded declaration covers would go unchecked.
    cursor = dbapi.cursor()
    try:
        cursor.execute("SELECT kind, count(*) FROM ledger_entry GROUP BY kind")
        entries_of = dict(cursor.fetchall())
    finally:
        cursor.close()
    undeclared = sorted(set(entries_of) - declared_kinds())
    for kind in undeclared:
        problems.append(
            Problem(
                None,
                kind,
                None,
                f"records of kind {kind} have no declaration loaded: their rows were not "
                "checked (import qms.models before verifying)",
            )
        )
    for table, declaration in RECORD_TYPES.items():
        query = _typed_query(dialect, declaration, usernames)
        render, kinds = query.render, declaration.kinds
        type_at, id_at = query.type_at, query.id_at
        cursor = dbapi.cursor()
        try:
            cursor.execute(_suspects_sql(dialect, declaration))
            joined, listed = cursor.fetchone()
        finally:
            cursor.close()
        report.rows_checked += joined
        if declaration.model.__table__.c.ledger_seq.nullable:
            # A table chained after it had rows (equipment): a row without its entry was
            # added outside qms.
            cursor = dbapi.cursor()
            try:
                cursor.execute(f"SELECT id FROM {table} WHERE ledger_seq IS NULL LIMIT 100")  # noqa: S608 (a declared table)
                for (ref,) in cursor.fetchall():
                    problems.append(
                        Problem(
                            None,
                            declaration.kinds[0],
                            ref if isinstance(ref, str) else ref.decode(),
                            f"its {table} row is not chained (added outside qms)",
                        )
                    )
            finally:
                cursor.close()
        suspects = None if thorough else [int(seq) for seq in (listed or "").split(",") if seq]
        if suspects is None:
            queries = [query.sql]
        else:
            queries = [
                query.sql.replace(
                    " ORDER BY l.seq",
                    f" WHERE l.seq IN ({', '.join(str(int(seq)) for seq in suspects[at : at + 500])})"
                    " ORDER BY l.seq",
                )
                for at in range(0, len(suspects), 500)
            ]
        for rows in (
            batch for sql in queries for batch in _rows(dbapi, dialect, sql, query.pg_types)
        ):
            for row in rows:
                try:
                    rendered = render(row)
                except (TypeError, ValueError) as exc:
                    rendered = f"<unreadable: {exc}>"
                if rendered != row[3]:
                    problems.append(
                        Problem(
                            row[0],
                            row[1],
                            row[2],
                            f"the {table} row no longer matches what the chain covers (altered)",
                        )
                    )
                elif row[1] not in kinds or row[1] != row[type_at] or row[2] != row[id_at]:
                    problems.append(
                        Problem(
                            row[0],
                            row[1],
                            row[2],
                            f"the ledger index names another record than the {table} row",
                        )
                    )
            if len(problems) >= MAX_PROBLEMS:
                return
        # Every ledger entry of these kinds has its typed row (none deleted or detached);
        # the counts say so, and only when they differ are the entries named.
        if joined == sum(entries_of.get(kind, 0) for kind in kinds):
            continue
        placeholders = ", ".join(f"'{k}'" for k in kinds)
        orphan_sql = (
            f"SELECT l.seq, l.kind, l.ref FROM ledger_entry l LEFT JOIN {table} t "  # noqa: S608 (constants only)
            f"ON t.ledger_seq = l.seq WHERE l.kind IN ({placeholders}) AND t.ledger_seq IS NULL "
            "ORDER BY l.seq LIMIT 100"
        )
        cursor = dbapi.cursor()
        try:
            cursor.execute(orphan_sql)
            for seq, kind, ref in cursor.fetchall():
                problems.append(Problem(seq, kind, ref, f"its {table} row is missing (removed)"))
        finally:
            cursor.close()


def _check_protection(connection: Connection, report: VerifyReport) -> None:
    dialect = connection.dialect.name
    if dialect == "postgresql":
        # Enabled in origin mode ('O') or always ('A'): a trigger set to fire only for
        # replicas ('R') or disabled ('D') lets ordinary sessions change the rows.
        rows = connection.execute(
            text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled IN ('O', 'A')")
        )
    else:
        rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    present = {row[0] for row in rows}
    if dialect == "postgresql":
        for table in _checked_per_statement():
            name = parents_trigger_name(table)
            if name not in present:
                report.problems.append(
                    Problem(
                        None,
                        None,
                        None,
                        f"table {table} no longer refuses rows whose parent is missing (missing or disabled trigger {name})",
                    )
                )
    for table in protected_tables():
        missing = [name for name in trigger_names(dialect, table) if name not in present]
        if missing:
            report.problems.append(
                Problem(
                    None,
                    None,
                    None,
                    f"table {table} is no longer protected against UPDATE/DELETE (missing or disabled trigger {', '.join(missing)})",
                )
            )


def _checked_per_statement() -> list[str]:
    """Tables whose references PostgreSQL checks by a statement-level trigger
    (`qms.core.models.CHECKED_PER_STATEMENT`) rather than by foreign keys."""
    return sorted(
        table.name
        for table in SQLModel.metadata.tables.values()
        if any(fk.info.get(CHECKED_PER_STATEMENT) for fk in table.foreign_keys)
    )
