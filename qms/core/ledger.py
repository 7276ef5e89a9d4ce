"""The append-only, hash-chained ledger: how a regulated record type is declared, and appends.

Every regulated record (unit, step record, correction, signature, reading, unit status;
next audit runs, deviations, CAPA, reports, deliveries) is one typed row plus one
``ledger_entry`` holding the record's canonical JSON (contract: ``qms.core.canonical``)
and ``hash = sha256(prev_hash + content)``; ``seq`` runs 1, 2, 3, ... without gaps.

A record type is declared once, beside its model, with `declare`: which keys its
canonical content has and which column (and encoding) each comes from. From that one
declaration come the content that is hashed (`RecordType.content`), the row that is
written and chained (`write`), the typed-row check of `qms verify`
(``qms.core.verify``) and the append-only protection a migration installs
(``qms.core.migration.append_only``). See docs/architecture.md for the recipe.

Appends are serialised: on PostgreSQL by a transaction-scoped advisory lock taken
before the head is read; on SQLite by the write transaction itself (BEGIN IMMEDIATE,
``Database.session(write=True)`` / ``Database.transaction()``). ``prev_hash`` is also
UNIQUE, so a fork is impossible even if a writer forgot the lock. Once a transaction
holds the lock its head is kept in the session, so a batch of appends (an import)
reads the head once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from itertools import islice
from typing import Any

from pydantic_core import PydanticUndefined
from sqlalchemy import event, insert, text
from sqlmodel import Session, SQLModel

from qms.core.canonical import (
    CANONICAL_VERSION,
    GENESIS,
    CanonicalError,
    canonical_json,
    canonical_time,
    chain_hash,
    dumps_normalised,
    normalise,
)
from qms.core.models import LedgerEntry
from qms.db import SEAL_KEY

# pg_advisory_xact_lock key for ledger appends (the migration lock is 7_347_001).
LEDGER_LOCK_KEY = 7_347_002

# How a chained key's value is written in the canonical content.
TEXT = "text"  # a string column, as it is
JSON = "json"  # a column holding canonical JSON, embedded as the value
TIME = "time"  # an aware time column, as canonical UTC text
USER = "user"  # a column holding app_user.id, chained as the username (stable everywhere)
NUMBER = "number"  # a float column, in the canonical number form
ENCODINGS = (TEXT, JSON, TIME, USER, NUMBER)


@dataclass(frozen=True)
class Chained:
    """One key of a record type's canonical content and where its value comes from.

    `column` defaults to the key. A key computed from other columns (a reading's id)
    gives `value` (from a row getter) and `sql` (the same in SQL, for `qms verify`;
    ``{time:t.col}`` stands for the canonical text of a time column).
    """

    key: str
    column: str | None = None
    encoding: str = TEXT
    value: Callable[[Callable[[str], Any]], Any] | None = None
    sql: str | None = None

    @property
    def attribute(self) -> str:
        return self.column or self.key


@dataclass(frozen=True)
class RecordType:
    """A declared ledger record type (see `declare`)."""

    model: type[SQLModel]
    kinds: tuple[str, ...]
    chained: tuple[Chained, ...]
    kind_of: Callable[[Callable[[str], Any]], str]
    kind_sql: str  # the same as kind_of, as an SQL expression over the typed table `t`

    @property
    def table(self) -> str:
        return self.model.__tablename__

    @property
    def keys(self) -> list[str]:
        """Every key of the canonical content, sorted (as it is written)."""
        return sorted(["type", "v", *(c.key for c in self.chained)])

    def content(self, row: Any, username: Callable[[int], str]) -> dict[str, Any]:
        """The canonical content of a row (a model instance or a mapping of its columns)."""
        get = row.get if isinstance(row, Mapping) else row.__getattribute__
        doc: dict[str, Any] = {"type": self.kind_of(get), "v": CANONICAL_VERSION}
        for chained in self.chained:
            value = chained.value(get) if chained.value else get(chained.attribute)
            if value is not None:
                encoding = chained.encoding
                if encoding == TIME:
                    value = canonical_time(value)
                elif encoding == USER:
                    value = username(value)
                elif encoding == JSON and isinstance(value, str):
                    value = json.loads(value)
            doc[chained.key] = value
        return doc

    @cached_property
    def _layout(self) -> list[tuple[str, str, Chained | None]]:
        by_key = {c.key: c for c in self.chained}
        return [
            (("{" if n == 0 else ",") + _json_text(key) + ":", key, by_key.get(key))
            for n, key in enumerate(self.keys)
        ]

    def body(self, row: Any, username: Callable[[int], str]) -> tuple[str, str, str]:
        """(kind, ref, canonical JSON) of a row: `canonical_json(self.content(row))`, written
        directly. A JSON column's text goes in as it is stored: the writers store canonical
        JSON there, and `qms verify` compares that text with the chain as it is, too."""
        get = row.get if isinstance(row, Mapping) else row.__getattribute__
        kind = self.kind_of(get)
        ref = ""
        parts: list[str] = []
        for prefix, key, chained in self._layout:
            parts.append(prefix)
            if chained is None:
                parts.append(_json_text(kind) if key == "type" else str(CANONICAL_VERSION))
                continue
            value = chained.value(get) if chained.value else get(chained.attribute)
            if key == "id":
                ref = str(value)
            encoding = chained.encoding
            if value is None:
                parts.append("null")
            elif encoding == TIME:
                parts.append('"' + canonical_time(value) + '"')
            elif encoding == USER:
                parts.append(_json_text(username(value)))
            elif encoding == JSON and isinstance(value, str):
                parts.append(value)
            elif isinstance(value, str):
                try:
                    value.encode("utf-8")
                except UnicodeEncodeError:
                    raise CanonicalError(
                        "text contains an invalid character (lone surrogate)"
                    ) from None
                parts.append(_json_text(value))
            else:
                parts.append(dumps_normalised(normalise(value)))
        parts.append("}")
        return kind, ref, "".join(parts)


_json_text = json.encoder.encode_basestring  # what json.dumps(ensure_ascii=False) writes


RECORD_TYPES: dict[str, RecordType] = {}  # table name -> declaration
_BY_MODEL: dict[type, RecordType] = {}


def declare(
    model: type[SQLModel],
    *,
    chained: Sequence[Chained],
    kind: str | None = None,
    kinds: tuple[str, ...] | None = None,
    kind_of: Callable[[Callable[[str], Any]], str] | None = None,
    kind_sql: str | None = None,
) -> RecordType:
    """Declare a ledger record type, once, beside its model.

    A type with one kind gives `kind`; a type whose rows are of several kinds (a step
    record or a correction) gives `kinds`, `kind_of` (from a row getter) and `kind_sql`.
    The model must have a `ledger_seq` column (`qms.core.models.ledger_seq_column`).
    """
    if kind is not None:
        kinds, kind_of, kind_sql = (kind,), (lambda get: kind), f"'{kind}'"
    if not kinds or kind_of is None or kind_sql is None:
        raise TypeError(f"{model.__name__}: declare a kind, or kinds with kind_of and kind_sql")
    keys = [c.key for c in chained]
    if "id" not in keys or len(set(keys)) != len(keys) or {"type", "v"} & set(keys):
        raise TypeError(f"{model.__name__}: chained keys must be unique, include id, not type or v")
    for c in chained:
        if c.encoding not in ENCODINGS:
            raise TypeError(f"{model.__name__}.{c.key}: unknown encoding {c.encoding!r}")
    declaration = RecordType(model, tuple(kinds), tuple(chained), kind_of, kind_sql)
    RECORD_TYPES[declaration.table] = declaration
    _BY_MODEL[model] = declaration
    return declaration


def declaration_of(model: type) -> RecordType:
    try:
        return _BY_MODEL[model]
    except KeyError:
        raise TypeError(f"{model.__name__} is not a declared ledger record type") from None


# --- appending -----------------------------------------------------------------------

_HEAD = "qms_ledger_head"  # session.info: (seq, hash) while this transaction holds the lock
_USERNAMES = "qms_ledger_usernames"
_BATCH = "qms_ledger_batch"
_LOCKED = "qms_ledger_locked"  # session.info: this transaction has taken the lock


@event.listens_for(Session, "after_transaction_end")
def _forget_head(session, transaction) -> None:
    # The end of the transaction or of a savepoint (committed or rolled back) ends what we
    # knew; the inner transactions a flush opens do not.
    if transaction.parent is None or transaction.nested:
        session.info.pop(_HEAD, None)
        session.info.pop(_USERNAMES, None)
        session.info.pop(_LOCKED, None)


def lock(session: Session) -> None:
    """Serialise ledger appends until the transaction ends (call before reading the head)."""
    if _HEAD in session.info or _LOCKED in session.info:
        return  # this transaction holds the lock already
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": LEDGER_LOCK_KEY})
    elif not _sqlite_writer(connection):
        # A deferred SQLite transaction that has read cannot safely become a writer.
        raise RuntimeError(
            "ledger appends on SQLite need a write session (Database.session(write=True))"
        )
    session.info[_LOCKED] = True


def _sqlite_writer(connection) -> bool:
    return bool(
        connection.get_execution_options().get("qms_write") or connection.in_nested_transaction()
    )


def holds_lock(session: Session) -> bool:
    """Whether nothing can be appended by others until this transaction ends: it has taken
    the lock, or it is a SQLite write transaction (which holds the database's write lock
    from its BEGIN IMMEDIATE). A check made now stays true until the commit."""
    if _HEAD in session.info or _LOCKED in session.info:
        return True
    connection = session.connection()
    return connection.dialect.name == "sqlite" and _sqlite_writer(connection)


def known_usernames(session: Session, usernames: Mapping[int, str]) -> None:
    """Usernames the caller has loaded already (the signer's): `write` chains a user id as
    its username and need not look these up."""
    session.info.setdefault(_USERNAMES, {}).update(usernames)


def head(session: Session) -> tuple[int, str]:
    """(seq, hash) of the newest entry; (0, GENESIS) for an empty ledger."""
    known = session.info.get(_HEAD)
    if known is not None:
        return known
    row = session.connection().execute(
        text("SELECT seq, hash FROM ledger_entry ORDER BY seq DESC LIMIT 1")
    )
    found = row.first()
    return (found[0], found[1]) if found else (0, GENESIS)


def seal_of(key: bytes | None, digest: str) -> str | None:
    """An entry's seal: HMAC-SHA256 of its hash under the installation's ledger key."""
    return hmac.digest(key, digest.encode(), "sha256").hex() if key else None


def _sealer(key: bytes | None) -> Callable[[str], str | None]:
    """`seal_of` under one key, for many entries: the HMAC's inner and outer hashes are
    keyed once (RFC 2104) and copied for each entry, half the time of `hmac.digest`."""
    if not key:
        return lambda digest: None
    block = (hashlib.sha256(key).digest() if len(key) > 64 else key).ljust(64, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in block))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in block))

    def seal(digest: str) -> str:
        i = inner.copy()
        i.update(digest.encode())
        o = outer.copy()
        o.update(i.digest())
        return o.hexdigest()

    return seal


def append(session: Session, kind: str, ref: str, content: Mapping[str, Any]) -> LedgerEntry:
    """Chain one record's canonical content after the current head; the caller commits."""
    if content.get("type") != kind or str(content.get("id")) != ref:
        raise ValueError(f"ledger content of {kind} {ref} names another record")
    return _append(session, kind, ref, canonical_json(content))


def _append(session: Session, kind: str, ref: str, body: str) -> LedgerEntry:
    lock(session)
    seq, previous = head(session)
    digest = chain_hash(previous, body)
    entry = LedgerEntry(
        seq=seq + 1,
        kind=kind,
        ref=ref,
        content=body,
        prev_hash=previous,
        hash=digest,
        seal=seal_of(session.info.get(SEAL_KEY), digest),
    )
    session.add(entry)
    session.info[_HEAD] = (entry.seq, entry.hash)
    return entry


def _username_lookup(session: Session) -> Callable[[int], str]:
    known: dict[int, str] = session.info.setdefault(_USERNAMES, {})

    def username(user_id: int) -> str:
        name = known.get(user_id)
        if name is None:
            name = (
                session.connection()
                .execute(text("SELECT username FROM app_user WHERE id = :id"), {"id": user_id})
                .scalar_one()
            )
            known[user_id] = name
        return name

    return username


def write(session: Session, row: SQLModel) -> SQLModel:
    """Chain a new typed row and add it: its content derives from its declaration.

    The row carries every column but `ledger_seq`; the caller has checked who may write
    it and commits. The row is flushed at once, except inside `batch(session)`.
    """
    declaration = declaration_of(row.model if isinstance(row, Draft) else type(row))
    kind, ref, body = declaration.body(row, _username_lookup(session))
    pending: _Batch | None = session.info.get(_BATCH)
    if pending is None:
        entry = _append(session, kind, ref, body)
        row.ledger_seq = entry.seq
        session.add(row)
        session.flush()
        return row
    lock(session)
    seq, previous = head(session)
    digest = chain_hash(previous, body)
    pending.entries.append(
        {
            "seq": seq + 1,
            "kind": kind,
            "ref": ref,
            "content": body,
            "prev_hash": previous,
            "hash": digest,
            "seal": seal_of(session.info.get(SEAL_KEY), digest),
        }
    )
    session.info[_HEAD] = (seq + 1, digest)
    row.ledger_seq = seq + 1
    pending.rows.setdefault(declaration.table, []).append(row)
    return row


class Draft(dict):
    """A typed row inside `batch`: its column values, readable as attributes like the model's.

    A batch inserts rows with Core statements and never loads them into the session, so
    the ORM instance a model's constructor builds (a quarter of an import's time) is not
    needed: `new_row` gives a draft there, and `write` chains it like a row."""

    __slots__ = ("model",)

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"{self.model.__name__} draft has no {name!r}") from None

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "model":
            object.__setattr__(self, name, value)
        else:
            self[name] = value


_DEFAULTS: dict[type, dict[str, Any]] = {}


def _defaults_of(model: type[SQLModel]) -> dict[str, Any]:
    known = _DEFAULTS.get(model)
    if known is None:
        known = _DEFAULTS[model] = {
            name: info.default
            for name, info in model.model_fields.items()
            if info.default is not PydanticUndefined and info.default_factory is None
        }
    return known


def new_row(session: Session, model: type[SQLModel], **values: Any) -> SQLModel:
    """A new typed row of `model`, to give to `write`: the model itself, or inside `batch`
    a `Draft` with the same values (and the model's defaults)."""
    if _BATCH not in session.info:
        return model(**values)
    draft = Draft(_defaults_of(model))
    draft.update(values)
    draft.model = model
    return draft


@dataclass
class _Batch:
    entries: list[dict] = field(default_factory=list)
    rows: dict[str, list[SQLModel]] = field(default_factory=dict)


@contextmanager
def batch(session: Session) -> Iterator[None]:
    """Many appends at once (an import): inside the block `write` chains each row as
    usual but inserts nothing; `flush_batch` (and the end of the block) inserts the
    ledger entries and then each table's rows, one multi-row INSERT per table, in
    foreign-key order. The rows are not loaded into the session: read them back with a
    query after a flush."""
    session.info[_BATCH] = _Batch()
    try:
        yield
        flush_batch(session)
    finally:
        session.info.pop(_BATCH, None)


_SORTED: list = []  # (how many tables, the tables in foreign-key order)


def _tables_in_order() -> list:
    """The tables in foreign-key order: `sorted_tables` sorts them again at every call
    (a millisecond, at every step recorded), so once for as long as no table is added."""
    tables = SQLModel.metadata.tables
    if not _SORTED or _SORTED[0][0] != len(tables):
        _SORTED[:] = [(len(tables), SQLModel.metadata.sorted_tables)]
    return _SORTED[0][1]


def flush_batch(session: Session) -> None:
    """Insert what `batch` holds so far (queries then see it)."""
    pending: _Batch | None = session.info.get(_BATCH)
    if pending is None or not pending.entries:
        return
    session.flush()  # whatever the ORM holds (users, equipment) goes first
    session.execute(insert(LedgerEntry.__table__), pending.entries)
    for table in _tables_in_order():
        rows = pending.rows.get(table.name)
        if rows:
            session.execute(insert(table), [_columns_of(table, row) for row in rows])
    pending.entries.clear()
    pending.rows.clear()


def write_many(
    session: Session,
    model: type[SQLModel],
    items: Iterable[tuple[str, str, tuple]],
    *,
    columns: Sequence[str],
    constants: Mapping[str, Any] | None = None,
    chunk: int = 20_000,
) -> int:
    """Chain and insert many new rows of one single-kind record type (an import); returns how
    many. The fast path of `write`: no model objects, no per-row statement processing.

    Each item is ``(ref, body, values)``: `body` is the row's canonical JSON, byte for byte
    what `RecordType.body` writes for it (the caller's renderer is tested against it, and
    `qms verify` recomputes it from the typed row), `values` the row's `columns` (without
    ``ledger_seq``, which this assigns) already in the form the database takes them (a
    time on SQLite as the text `qms.db.UTCDateTime` stores, on PostgreSQL a datetime or
    ISO 8601 text). `constants` are the columns whose value is the same in every row (an
    import's equipment, time and author): given once, written once per chunk's format.
    Entries and rows go in by chunks, with the driver's ``executemany`` on SQLite and
    ``COPY`` on PostgreSQL, in this transaction, under the ledger lock; the caller has
    checked who may write them."""
    declaration = declaration_of(model)
    if len(declaration.kinds) != 1:
        raise TypeError(f"{model.__name__}: write_many needs a record type of one kind")
    if not columns:
        raise TypeError("write_many needs at least one column that varies by row")
    lock(session)
    flush_batch(session)
    session.flush()  # whatever the ORM holds (users, equipment) goes first
    connection = session.connection()
    raw = connection.connection.dbapi_connection
    constants = dict(constants or {})
    if connection.dialect.name == "postgresql":
        return _write_chunks(session, raw, True, declaration, items, columns, constants, chunk)
    # The chain's hash indexes take each entry at a random place: with SQLite's default
    # page cache (2 MB) a large import spills and rereads pages again and again.
    cache = raw.execute("PRAGMA cache_size").fetchone()[0]
    raw.execute(f"PRAGMA cache_size = {-SQLITE_IMPORT_CACHE_KIB}")
    try:
        return _write_chunks(session, raw, False, declaration, items, columns, constants, chunk)
    finally:
        raw.execute(f"PRAGMA cache_size = {int(cache)}")


SQLITE_IMPORT_CACHE_KIB = 256 * 1024  # at most: SQLite allocates pages as it needs them
_ENTRY_COLUMNS = ("seq", "kind", "ref", "content", "prev_hash", "hash", "seal")
_COPY_BLOCK = 1_000  # entries sent to PostgreSQL at a time within a chunk's COPY


def _write_chunks(session, raw, postgres, declaration, items, columns, constants, chunk) -> int:
    kind = declaration.kinds[0]
    row_columns = (*columns, *constants, "ledger_seq")
    fixed = tuple(constants.values())
    seq, previous = head(session)
    seal = _sealer(session.info.get(SEAL_KEY))
    count = 0
    iterator = iter(items)
    if postgres:
        # COPY's text format written here, a line a row (psycopg's `write_row` adapts value
        # by value: a third of an import's time on the client). Hex digests, the seq and
        # the kind need no escaping; the constants are formatted once. The entries are sent
        # as they are chained, a block at a time, so that the server stores (and indexes)
        # one block while the next is hashed; the rows follow, one COPY a chunk.
        kind_text = _copy_text(kind)
        fixed_text = "".join("\t" + _copy_text(v) for v in fixed)
        entry_copy = f"COPY ledger_entry ({', '.join(_ENTRY_COLUMNS)}) FROM STDIN"
        while True:
            rows: list[str] = []
            with raw.cursor() as cursor:
                with cursor.copy(entry_copy) as copy:
                    block: list[str] = []
                    for ref, body, values in islice(iterator, chunk):
                        seq += 1
                        digest = chain_hash(previous, body)
                        mark = seal(digest)
                        block.append(
                            f"{seq}\t{kind_text}\t{_copy_text(ref)}\t{_copy_text(body)}"
                            f"\t{previous}\t{digest}\t{mark if mark is not None else NULL_TEXT}\n"
                        )
                        rows.append(
                            "\t".join([_copy_text(v) for v in values]) + f"{fixed_text}\t{seq}\n"
                        )
                        previous = digest
                        if len(block) == _COPY_BLOCK:
                            copy.write("".join(block))
                            block.clear()
                    if block:
                        copy.write("".join(block))
                if not rows:
                    return count
                _copy_block(cursor, declaration.table, row_columns, rows)
            count += len(rows)
            session.info[_HEAD] = (seq, previous)
    entry_sql = _insert_sql("ledger_entry", _ENTRY_COLUMNS)
    row_sql = _insert_sql(declaration.table, row_columns)
    while True:
        entry_rows: list[tuple] = []
        typed_rows: list[tuple] = []
        for ref, body, values in islice(iterator, chunk):
            seq += 1
            digest = chain_hash(previous, body)
            entry_rows.append((seq, kind, ref, body, previous, digest, seal(digest)))
            typed_rows.append((*values, *fixed, seq))
            previous = digest
        if not entry_rows:
            return count
        cursor = raw.cursor()
        try:
            cursor.executemany(entry_sql, entry_rows)
            cursor.executemany(row_sql, typed_rows)
        finally:
            cursor.close()
        count += len(entry_rows)
        session.info[_HEAD] = (seq, previous)


def _insert_sql(table: str, columns: Sequence[str]) -> str:
    # Names from the declarations, never from input.
    marks = ", ".join("?" * len(columns))
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608


def _copy_block(cursor, table: str, columns: Sequence[str], lines: list[str]) -> None:
    """COPY lines already in PostgreSQL's text format, in one block."""
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        copy.write("".join(lines))


NULL_TEXT = "\\N"  # COPY's NULL


_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})


def _copy_text(value: Any) -> str:
    """One value in COPY's text format (NULL is \\N; backslash, tab and line ends escaped)."""
    if value is None:
        return NULL_TEXT
    if isinstance(value, str):
        if "\\" in value or "\t" in value or "\n" in value or "\r" in value:
            return value.translate(_COPY_ESCAPES)
        return value
    if isinstance(value, bool):
        return "t" if value else "f"
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: record times must carry an offset")
        return value.isoformat(sep=" ")
    if isinstance(value, int | float):
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{value!r} cannot be stored")
        return repr(value)
    raise TypeError(f"COPY of a {type(value).__name__} is not supported")


def _columns_of(table, row: SQLModel | Mapping[str, Any]) -> dict[str, Any]:
    if isinstance(row, Mapping):
        values = {column.name: row.get(column.name) for column in table.columns}
    else:
        values = {column.name: getattr(row, column.name) for column in table.columns}
    for column in table.primary_key.columns:  # an autoincrement id the database assigns
        if values.get(column.name) is None:
            values.pop(column.name)
    return values


def content_of(row: SQLModel, usernames: Mapping[int, str]) -> dict[str, Any]:
    """The canonical content of a row, with the usernames of the user ids it names."""
    return declaration_of(type(row)).content(row, usernames.__getitem__)


# Tables the database keeps append-only without chaining them (the account logs).
APPEND_ONLY_LOGS: set[str] = set()


def keep_append_only(model: type[SQLModel]) -> type[SQLModel]:
    """Mark a table that is never updated or deleted though not chained (a log)."""
    APPEND_ONLY_LOGS.add(model.__tablename__)
    return model


def protected_tables() -> tuple[str, ...]:
    """Every table the database must refuse UPDATE and DELETE on, as the models imported so
    far declare them (import `qms.models` first to have them all: `qms verify` does)."""
    return ("ledger_entry", *RECORD_TYPES, *sorted(APPEND_ONLY_LOGS))


def declared_kinds() -> set[str]:
    return {kind for declaration in RECORD_TYPES.values() for kind in declaration.kinds}


def trigger_names(dialect: str, table: str) -> tuple[str, ...]:
    """The triggers `qms.core.migration.append_only` makes on a table."""
    if dialect == "postgresql":
        return (f"{table}_append_only", f"{table}_no_truncate")
    return (f"{table}_refuse_update", f"{table}_refuse_delete")


def parents_trigger_name(table: str) -> str:
    """The PostgreSQL trigger that checks `table`'s references once per INSERT statement
    (`qms.core.migration.parents_checked_per_statement`), which `qms verify` checks."""
    return f"{table}_parents"
