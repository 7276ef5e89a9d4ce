"""The append-only, hash-chained ledger of regulated records, and its verification.

Every regulated record (unit registration, step record, correction, signature,
temperature reading; later audit decisions) is one ``ledger_entry`` row holding the
record's canonical JSON (contract: ``qms.records.canonical``) and
``hash = sha256(prev_hash + content)``; ``seq`` runs 1, 2, 3, ... without gaps. The
typed row (``step_record``, ``reading``, ...) points at its entry and must render to
exactly the same canonical JSON, which ``verify`` checks.

Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock taken
before the head is read; on SQLite by the write transaction itself (BEGIN IMMEDIATE,
``Database.session(write=True)`` / ``Database.transaction()``). ``prev_hash`` is also
UNIQUE, so a fork is impossible even if a writer forgot the lock. The database refuses
UPDATE and DELETE (and TRUNCATE on PostgreSQL) on the tables in ``PROTECTED_TABLES``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlmodel import Session

from qms.records.canonical import (
    CANONICAL_VERSION,
    GENESIS,
    canonical_json,
    canonical_time,
    chain_hash,
)
from qms.records.models import LedgerEntry

# pg_advisory_xact_lock key for ledger appends (the migration lock is 7_347_001).
LEDGER_LOCK_KEY = 7_347_002

# Tables the database itself keeps append-only (migration 0002 makes the triggers).
LEDGER_TABLES = ("ledger_entry", "unit", "step_record", "signature", "reading", "unit_status")
PROTECTED_TABLES = (*LEDGER_TABLES, "login_event", "audit_trail")


def trigger_names(dialect: str, table: str) -> tuple[str, ...]:
    if dialect == "postgresql":
        return (f"{table}_append_only", f"{table}_no_truncate")
    return (f"{table}_refuse_update", f"{table}_refuse_delete")


# --- appending -----------------------------------------------------------------------


def lock(session: Session) -> None:
    """Serialise ledger appends until the transaction ends (call before reading the head)."""
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEDGER_LOCK_KEY})
    elif not (
        connection.get_execution_options().get("qms_write") or connection.in_nested_transaction()
    ):
        # A deferred SQLite transaction that has read cannot safely become a writer.
        raise RuntimeError(
            "ledger appends on SQLite need a write session (Database.session(write=True))"
        )


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest entry; (0, GENESIS) for an empty ledger."""
    row = session.connection().execute(
        text("SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
    )
    found = row.first()
    return (found[0], found[1]) if found else (0, GENESIS)


def append(session: Session, kind: str, ref: str, content: Mapping[str, Any]) -> LedgerEntry:
    """Chain one record's canonical content after the current head; the caller commits."""
    if content.get("type") != kind or str(content.get("id")) != ref:
        raise ValueError(f"ledger content of {kind} {ref} names another record")
    lock(session)
    seq, previous = head(session)
    body = canonical_json(content)
    entry = LedgerEntry(
        seq=seq + 1,
        kind=kind,
        ref=ref,
        content=body,
        prev_hash=previous,
        hash=chain_hash(previous, body),
    )
    session.add(entry)
    session.flush()
    return entry


# --- the canonical content of each record type ----------------------------------------


def _time(value: datetime | None) -> str | None:
    return None if value is None else canonical_time(value)


def unit_content(
    *,
    id: str,
    site: str,
    checklist: str,
    checklist_version: str,
    profile: str | None,
    coi_id: str | None,
    patient: str,
    attributes: Mapping[str, Any],
    registered_at: datetime,
    registered_by: str | None,  # None: imported (the file does not name the registrar)
    imported_at: datetime | None,
    imported_by: str | None,
) -> dict[str, Any]:
    return {
        "type": "unit",
        "v": CANONICAL_VERSION,
        "id": id,
        "site": site,
        "checklist": checklist,
        "checklist_version": checklist_version,
        "profile": profile,
        "coi_id": coi_id,
        "patient": patient,
        "attributes": dict(attributes),
        "registered_at": _time(registered_at),
        "registered_by": registered_by,
        "imported_at": _time(imported_at),
        "imported_by": imported_by,
    }


def step_content(
    *,
    id: str,
    unit: str,
    step: str,
    fields: Mapping[str, Any],
    performed_at: datetime,
    recorded_at: datetime,
    performed_by: str,
    performed_by_role: str,
    witness: str | None,
    witness_role: str | None,
    recorded_by: str,
    meaning: str,
    checklist: str,
    checklist_version: str,
    corrects: str | None,
    reason: str | None,
    findings: list[Mapping[str, Any]],
    imported_at: datetime | None,
    imported_by: str | None,
) -> dict[str, Any]:
    return {
        "type": "correction" if corrects else "step",
        "v": CANONICAL_VERSION,
        "id": id,
        "unit": unit,
        "step": step,
        "fields": dict(fields),
        "performed_at": _time(performed_at),
        "recorded_at": _time(recorded_at),
        "performed_by": performed_by,
        "performed_by_role": performed_by_role,
        "witness": witness,
        "witness_role": witness_role,
        "recorded_by": recorded_by,
        "meaning": meaning,
        "checklist": checklist,
        "checklist_version": checklist_version,
        "corrects": corrects,
        "reason": reason,
        "findings": [dict(f) for f in findings],
        "imported_at": _time(imported_at),
        "imported_by": imported_by,
    }


def signature_content(
    *,
    id: str,
    record: str,
    signer: str,
    printed_name: str,
    meaning: str,
    signed_at: datetime,
    method: str,
    imported_at: datetime | None,
    imported_by: str | None,
) -> dict[str, Any]:
    return {
        "type": "signature",
        "v": CANONICAL_VERSION,
        "id": id,
        "record": record,
        "signer": signer,
        "printed_name": printed_name,
        "meaning": meaning,
        "signed_at": _time(signed_at),
        "method": method,
        "imported_at": _time(imported_at),
        "imported_by": imported_by,
    }


def unit_status_content(
    *,
    id: str,
    unit: str,
    status: str,
    at: datetime,
    recorded_at: datetime,
    by: str | None,
    by_role: str | None,
    method: str,
    reason: str | None,
    findings: Any,
    imported_at: datetime | None,
    imported_by: str | None,
) -> dict[str, Any]:
    return {
        "type": "unit_status",
        "v": CANONICAL_VERSION,
        "id": id,
        "unit": unit,
        "status": status,
        "at": _time(at),
        "recorded_at": _time(recorded_at),
        "by": by,
        "by_role": by_role,
        "method": method,
        "reason": reason,
        "findings": findings,
        "imported_at": _time(imported_at),
        "imported_by": imported_by,
    }


def reading_ref(equipment: str, at: datetime) -> str:
    return f"{equipment}@{canonical_time(at)}"


def reading_content(
    *,
    equipment: str,
    at: datetime,
    temperature_c: float,
    recorded_at: datetime,
    recorded_by: str,
    source: str,
    imported_at: datetime | None,
    imported_by: str | None,
) -> dict[str, Any]:
    return {
        "type": "reading",
        "v": CANONICAL_VERSION,
        "id": reading_ref(equipment, at),
        "equipment": equipment,
        "at": _time(at),
        "temperature_c": temperature_c,
        "recorded_at": _time(recorded_at),
        "recorded_by": recorded_by,
        "source": source,
        "imported_at": _time(imported_at),
        "imported_by": imported_by,
    }


# --- verification ----------------------------------------------------------------------


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

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_problem(self) -> Problem | None:
        return min(self.problems, key=lambda p: (p.seq is None, p.seq or 0), default=None)


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
) -> VerifyReport:
    """Check the whole chain, then that every typed row matches what the chain covers.

    `expect_hashes` are head hashes quoted earlier (in reports): each must still be in
    the chain, which catches records removed from the end. Reads with plain cursors and
    hashes the stored bytes (no ORM objects): this is the hot path of `qms verify`.
    """
    connection, dbapi = _raw(session_or_connection)
    dialect = connection.dialect.name
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
    sql = "SELECT seq, content, prev_hash, hash FROM ledger_entry ORDER BY seq"
    # Text as bytes: hashed as stored, without decoding and encoding again.
    sqlite_factory = None
    if dialect == "sqlite":
        sqlite_factory, dbapi.text_factory = dbapi.text_factory, bytes
    try:
        for rows in _rows(dbapi, dialect, sql, ["int4", "bytea", "bytea", "bytea"]):
            for seq, content, prev_hash, stored in rows:
                if sha256(prev_hash + content).hexdigest().encode() != stored:
                    problems.append(
                        Problem(seq, None, None, "altered: its content no longer matches its hash")
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
    if check_rows and len(problems) < MAX_PROBLEMS:
        _check_typed_rows(dbapi, dialect, report)
    _check_protection(connection, report)
    return report


# --- typed rows: rendered to canonical JSON straight from their columns -------------------
#
# Each typed table is declared as (key, SQL expression, how to write the value) per key
# of its canonical content; the query selects them in sorted key order, so rendering is
# one %-format of encoded values. Times are formatted by the database itself in the
# canonical form (an altered time column then no longer matches). A unit test keeps
# these declarations equal to the content builders above.

_encode_text = json.encoder.encode_basestring  # the encoder json.dumps(ensure_ascii=False) uses


def _as_text(value: Any) -> str:
    return "null" if value is None else _encode_text(value)


def _as_json(value: Any) -> str:
    return "null" if value is None else value  # stored canonical JSON, embedded as it is


def _as_number(value: Any) -> str:
    if value is None:
        return "null"
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _time_sql(dialect: str, column: str) -> str:
    if dialect == "postgresql":
        return f"""to_char({column} AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')"""
    return f"(replace({column}, ' ', 'T') || 'Z')"  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff'


T, J, N = _as_text, _as_json, _as_number


def _as_pg_time(value: datetime | None) -> str:
    if value is None:
        return "null"
    if value.utcoffset():
        value = value.astimezone(UTC)
    return '"' + value.isoformat(timespec="microseconds")[:-6] + 'Z"'


_TIME = object()  # marker: a time column, formatted in SQL, written as text
_USER = object()  # marker: a user id, written as the username (people are named by username)

# table -> (ledger kinds, FROM clause, [(key, column or SQL, encoder)])
TYPED_TABLES: dict[str, tuple[tuple[str, ...], str, list[tuple[str, str, Any]]]] = {
    "unit": (
        ("unit",),
        "unit t",
        [
            ("type", "'unit'", T),
            ("v", str(CANONICAL_VERSION), J),
            ("id", "t.id", T),
            ("site", "t.site_id", T),
            ("checklist", "t.checklist_id", T),
            ("checklist_version", "t.checklist_version", T),
            ("profile", "t.profile", T),
            ("coi_id", "t.coi_id", T),
            ("patient", "t.patient_ref", T),
            ("attributes", "t.attributes", J),
            ("registered_at", "t.registered_at", _TIME),
            ("registered_by", "t.registered_by_id", _USER),
            ("imported_at", "t.imported_at", _TIME),
            ("imported_by", "t.imported_by", T),
        ],
    ),
    "step_record": (
        ("step", "correction"),
        "step_record t",
        [
            ("type", "CASE WHEN t.corrects_id IS NULL THEN 'step' ELSE 'correction' END", T),
            ("v", str(CANONICAL_VERSION), J),
            ("id", "t.id", T),
            ("unit", "t.unit_id", T),
            ("step", "t.step", T),
            ("fields", "t.fields", J),
            ("performed_at", "t.performed_at", _TIME),
            ("recorded_at", "t.recorded_at", _TIME),
            ("performed_by", "t.performed_by_id", _USER),
            ("performed_by_role", "t.performed_by_role", T),
            ("witness", "t.witness_id", _USER),
            ("witness_role", "t.witness_role", T),
            ("recorded_by", "t.recorded_by_id", _USER),
            ("meaning", "t.meaning", T),
            ("checklist", "t.checklist_id", T),
            ("checklist_version", "t.checklist_version", T),
            ("corrects", "t.corrects_id", T),
            ("reason", "t.reason", T),
            ("findings", "t.findings", J),
            ("imported_at", "t.imported_at", _TIME),
            ("imported_by", "t.imported_by", T),
        ],
    ),
    "signature": (
        ("signature",),
        "signature t",
        [
            ("type", "'signature'", T),
            ("v", str(CANONICAL_VERSION), J),
            ("id", "t.id", T),
            ("record", "t.record_id", T),
            ("signer", "t.signer_id", _USER),
            ("printed_name", "t.printed_name", T),
            ("meaning", "t.meaning", T),
            ("signed_at", "t.signed_at", _TIME),
            ("method", "t.method", T),
            ("imported_at", "t.imported_at", _TIME),
            ("imported_by", "t.imported_by", T),
        ],
    ),
    "unit_status": (
        ("unit_status",),
        "unit_status t",
        [
            ("type", "'unit_status'", T),
            ("v", str(CANONICAL_VERSION), J),
            ("id", "t.id", T),
            ("unit", "t.unit_id", T),
            ("status", "t.status", T),
            ("at", "t.at", _TIME),
            ("recorded_at", "t.recorded_at", _TIME),
            ("by", "t.by_id", _USER),
            ("by_role", "t.by_role", T),
            ("method", "t.method", T),
            ("reason", "t.reason", T),
            ("findings", "t.findings", J),
            ("imported_at", "t.imported_at", _TIME),
            ("imported_by", "t.imported_by", T),
        ],
    ),
    "reading": (
        ("reading",),
        "reading t",
        [
            ("type", "'reading'", T),
            ("v", str(CANONICAL_VERSION), J),
            ("id", "(t.equipment_id || '@' || {time:t.at})", T),
            ("equipment", "t.equipment_id", T),
            ("at", "t.at", _TIME),
            ("temperature_c", "t.temperature_c", N),
            ("recorded_at", "t.recorded_at", _TIME),
            ("recorded_by", "t.recorded_by", T),
            ("source", "t.source", T),
            ("imported_at", "t.imported_at", _TIME),
            ("imported_by", "t.imported_by", T),
        ],
    ),
}


def _typed_query(dialect: str, table: str) -> tuple[str, list[str], str, list]:
    """(SQL, PostgreSQL column types, %-template, encoders) for one typed table."""
    _, source, spec = TYPED_TABLES[table]
    ordered = sorted(spec, key=lambda item: item[0])
    columns, types, encoders = [], ["int4", "text", "text", "text"], []
    for key, expression, encoder in ordered:
        if encoder is _TIME and dialect == "postgresql":
            encoder = _as_pg_time  # decoded by psycopg's C loader, formatted by isoformat
        elif encoder is _TIME:
            expression, encoder = _time_sql(dialect, expression), T
        elif "{time:" in expression:
            inner = expression.split("{time:")[1].split("}")[0]
            expression = expression.replace("{time:" + inner + "}", _time_sql(dialect, inner))
        if key == "v":
            expression = f"'{CANONICAL_VERSION}'"
        columns.append(f"{expression} AS c_{key}")
        types.append(
            "float8"
            if encoder is N
            else "int4"
            if encoder is _USER
            else "timestamptz"
            if encoder is _as_pg_time
            else "text"
        )
        encoders.append(encoder)
    template = "{" + ",".join(f'"{key}":%s' for key, _, _ in ordered) + "}"
    sql = (
        f"SELECT l.seq, l.kind, l.ref, l.content, {', '.join(columns)} "  # noqa: S608 (constants only)
        f"FROM {source} JOIN ledger_entry l ON l.seq = t.ledger_seq ORDER BY l.seq"
    )
    return sql, types, template, encoders


def _check_typed_rows(dbapi, dialect: str, report: VerifyReport) -> None:
    problems = report.problems
    cursor = dbapi.cursor()
    try:
        cursor.execute("SELECT id, username FROM app_user")
        usernames = {user_id: _as_text(name) for user_id, name in cursor.fetchall()}
    finally:
        cursor.close()

    def as_username(user_id: int | None) -> str:
        return "null" if user_id is None else usernames.get(user_id, "<unknown user>")

    if dialect == "postgresql":
        cursor = dbapi.cursor()
        try:  # times arrive in UTC, ready for isoformat (ends the read transaction's use only)
            cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        finally:
            cursor.close()
    for table, (kinds, _, spec) in TYPED_TABLES.items():
        sql, types, template, encoders = _typed_query(dialect, table)
        encoders = [as_username if e is _USER else e for e in encoders]
        keys = sorted(key for key, _, _ in spec)
        type_at, id_at = 4 + keys.index("type"), 4 + keys.index("id")
        for rows in _rows(dbapi, dialect, sql, types):
            for row in rows:
                try:
                    rendered = template % tuple(
                        encode(value) for encode, value in zip(encoders, row[4:], strict=True)
                    )
                except (TypeError, ValueError) as exc:
                    rendered = f"<unreadable: {exc}>"
                seq, kind, ref = row[0], row[1], row[2]
                if rendered != row[3]:
                    problems.append(
                        Problem(
                            seq,
                            kind,
                            ref,
                            f"the {table} row no longer matches what the chain covers (altered)",
                        )
                    )
                elif kind not in kinds or kind != row[type_at] or ref != row[id_at]:
                    problems.append(
                        Problem(
                            seq,
                            kind,
                            ref,
                            f"the ledger index names another record than the {table} row",
                        )
                    )
            report.rows_checked += len(rows)
            if len(problems) >= MAX_PROBLEMS:
                return
        # Every ledger entry of these kinds has its typed row (none deleted or detached).
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
        rows = connection.execute(
            text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal AND tgenabled <> 'D'")
        )
    else:
        rows = connection.execute(text("SELECT name FROM sqlite_master WHERE type = 'trigger'"))
    present = {row[0] for row in rows}
    for table in PROTECTED_TABLES:
        missing = [name for name in trigger_names(dialect, table) if name not in present]
        if missing:
            report.problems.append(
                Problem(
                    None,
                    None,
                    None,
                    f"table {table} is no longer protected against UPDATE/DELETE (missing trigger {', '.join(missing)})",
                )
            )
