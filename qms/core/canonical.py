"""The canonical JSON of a regulated record: the exact bytes the ledger hashes.

This is a contract (reports quote head hashes; other tools recompute them). Version 2
is version 1 with one change: the findings a record carries are chained as their code,
parameters and record ids (`Finding.to_record()`: unit, kind, rule, severity, steps,
limit, actual, code, params, record_ids), never as prose; version 1 records carry each
finding's English "message" instead of code, params and record_ids. Records keep the
version they were chained with, and both verify. Version 1 (and 2):

* The document is one JSON object, UTF-8, with keys sorted by code point at every
  level, no insignificant whitespace (separators "," and ":"), non-ASCII characters
  written as themselves (not \\u escapes). NaN and infinities are refused.
* Every record object carries ``"type"`` (``unit``, ``step``, ``correction``,
  ``signature``, ``reading``, ``unit_status``) and ``"v"`` (its version, one digit), and always the full key set of its type:
  a missing value is written as ``null``, never omitted.
* Times are UTC, written ``YYYY-MM-DDTHH:MM:SS.ffffffZ`` (always six fractional
  digits, always ``Z``). Naive times are refused.
* Numbers: integers (and booleans, as ``true``/``false``) as JSON integers; a float
  with an integral value is written as that integer (``21.0`` → ``21``); any other
  float in Python's shortest round-trip form (``repr``, e.g. ``2.5``, ``-151.3``).
  ``Decimal`` values follow the same rule after conversion. So the text read back and
  canonicalised again is byte-identical (the form is idempotent).
* Strings are kept exactly as given (no Unicode normalisation: that would alter the
  record); lone surrogates are refused.
* People are named by username (stable, never reused), never by database id, so the
  same record hashes the same in every database.

The chain: ``hash = sha256(previous_hash_hex + canonical_json)`` over UTF-8 bytes, as
lowercase hex; the first record's previous hash is 64 zeros (``GENESIS``).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

CANONICAL_VERSION = 2
GENESIS = "0" * 64


class CanonicalError(ValueError):
    """A value that has no canonical form (naive time, NaN, unsupported type)."""


def canonical_time(value: datetime) -> str:
    if value.tzinfo is None or value.utcoffset() is None:
        raise CanonicalError(f"naive datetime {value!r}: record times must carry an offset")
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_canonical_time(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def normalise(value: Any) -> Any:
    """The JSON-ready value whose dump is canonical (see the module docstring)."""
    if value is None or isinstance(value, bool | str):
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                raise CanonicalError(
                    "text contains an invalid character (lone surrogate)"
                ) from None
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float | Decimal):
        if isinstance(value, Decimal):
            if not value.is_finite():
                raise CanonicalError(f"{value} is not a finite number")
            if value == value.to_integral_value():
                return int(value)
            value = float(value)
        if not math.isfinite(value):
            raise CanonicalError(f"{value} is not a finite number")
        if value.is_integer():
            return int(value)
        return value
    if isinstance(value, datetime):
        return canonical_time(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise CanonicalError(f"object keys must be text, not {key!r}")
            out[key] = normalise(item)
        return out
    if isinstance(value, list | tuple):
        return [normalise(item) for item in value]
    raise CanonicalError(f"a {type(value).__name__} has no canonical JSON form")


def dumps_normalised(value: Any) -> str:
    """Dump a value that is already normalised (the fast path of `qms verify`)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    )


def canonical_json(value: Any) -> str:
    return dumps_normalised(normalise(value))


def chain_hash(previous_hash: str, content: str) -> str:
    return hashlib.sha256((previous_hash + content).encode("utf-8")).hexdigest()
