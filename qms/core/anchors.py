"""Anchored heads of the ledger: the head each `qms verify`, audit run and report saw.

A hash chain shows that nothing *inside* it changed, but records removed from the end
(with the triggers restored) leave a shorter chain that is still whole. Each anchor
records the head (seq and hash) someone relied on; a later `qms verify` checks that the
record at every anchored seq still has the anchored hash, and names the anchor that no
longer matches. Anchors are a log: append-only, never chained themselves (an anchor
refers to the chain; chaining it would move the head it records).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, Integer
from sqlmodel import Field, Session, SQLModel

from qms.core.ledger import keep_append_only
from qms.db import UTCDateTime, utcnow

SOURCES = ("verify", "audit", "report")


@keep_append_only
class LedgerAnchor(SQLModel, table=True):
    """One head someone relied on: by `qms verify`, an audit run or a report."""

    __tablename__ = "ledger_anchor"

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True))
    recorded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    source: str = Field(max_length=16)  # one of SOURCES
    source_ref: str | None = Field(default=None, max_length=128)  # the run's or report's id
    head_seq: int
    head_hash: str = Field(max_length=64)


def anchor(
    session: Session,
    *,
    source: str,
    head_seq: int,
    head_hash: str,
    source_ref: str | None = None,
    at: datetime | None = None,
) -> LedgerAnchor | None:
    """Record that `source` relied on the ledger up to (head_seq, head_hash); the caller commits.

    An empty ledger (seq 0) has nothing to anchor."""
    if source not in SOURCES:
        raise ValueError(f"unknown anchor source {source!r}; one of {', '.join(SOURCES)}")
    if head_seq <= 0:
        return None
    row = LedgerAnchor(
        recorded_at=at or utcnow(),
        source=source,
        source_ref=source_ref,
        head_seq=head_seq,
        head_hash=head_hash,
    )
    session.add(row)
    session.flush()
    return row
