"""`qms import`, `qms export` and `qms verify` as an operator runs them."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import func, select

from qms.accounts import service as accounts
from qms.cli import cli as qms_cli
from qms.core import ledger
from qms.core.anchors import LedgerAnchor
from qms.core.migration import append_only_sql
from qms.core.models import LedgerEntry
from qms.core.verify import verify
from qms.runtime import Runtime

UNIT = '{"type": "unit", "id": "U-1", "checklist": "testcart", "site": "SH-01", "patient": "P-0042", "attributes": {"age_years": 34}}'
RECEIPT = '{"type": "step", "unit": "U-1", "step": "receipt", "at": "2026-10-02T09:00:00+08:00", "by": "li.na", "fields": {"temperature_c": -150}, "record_id": "U-1#1", "recorded_at": "2026-10-02T09:01:00+08:00"}'
THAW = '{"type": "step", "unit": "U-1", "step": "thaw_end", "at": "2026-10-02T09:30:00+08:00", "by": "li.na", "fields": {"temperature_c": 21}, "record_id": "U-1#2", "recorded_at": "2026-10-02T09:31:00+08:00"}'


@pytest.fixture
def cli(settings, database, registry, make_site):
    """The `qms` command line, on the test's database and checklists, without a web app."""
    make_site("SH-01")
    runtime = Runtime(settings, database=database, registry=registry)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(qms_cli, list(args), obj=runtime)

    return run


def _ledger_size(session) -> int:
    return session.exec(select(func.count()).select_from(LedgerEntry)).one()


def test_import_then_export_then_verify(cli, session, tmp_path, make_user):
    make_user("nurse", username="li.na")
    source = tmp_path / "sh01.jsonl"
    source.write_text("\n".join([UNIT, RECEIPT, THAW]) + "\n")
    result = cli("import", str(source))
    assert result.exit_code == 0, result.output
    assert "imported 1 unit(s), 2 step record(s)" in result.output
    exported = cli("export", "--site", "SH-01")
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [line["type"] for line in lines] == ["unit", "step", "step"]
    assert lines[1]["at"] == "2026-10-02T09:00:00+08:00" and lines[1]["by"] == "li.na"
    verified = cli("verify")
    assert verified.exit_code == 0, verified.output
    # The thaw came with no identity check before it: a major finding, whose deviation
    # the import opened (the sixth ledger record).
    from qms.quality.models import Deviation

    (deviation,) = session.exec(select(Deviation)).all()
    assert deviation.step_record_id == "U-1#2"
    head = verify(session).head_hash
    assert f"head: record 6, hash {head}" in verified.output
    assert "ledger OK" in verified.output


def test_a_bad_file_is_refused_with_its_lines(cli, session, tmp_path, make_user):
    make_user("nurse", username="li.na")
    source = tmp_path / "bad.jsonl"
    source.write_text(
        "\n".join([UNIT, RECEIPT, '{"type": "stp"}', THAW.replace("li.na", "who.else")]) + "\n"
    )
    before = _ledger_size(session)
    result = cli("import", str(source))
    assert result.exit_code != 0
    assert 'bad.jsonl:3: unknown type "stp"' in result.output
    assert "nothing was imported: 1 problem(s) in bad.jsonl" in result.output
    assert _ledger_size(session) == before
    # Once the format is right, the unknown author is named with its line.
    source.write_text("\n".join([UNIT, RECEIPT, THAW.replace("li.na", "who.else")]) + "\n")
    result = cli("import", str(source))
    assert result.exit_code != 0
    assert "bad.jsonl:3: unknown user 'who.else'" in result.output
    assert _ledger_size(session) == before


def test_import_can_create_placeholder_authors(cli, session, tmp_path):
    source = tmp_path / "other-site.jsonl"
    source.write_text("\n".join([UNIT, RECEIPT]) + "\n")
    result = cli("import", str(source), "--create-missing-users")
    assert result.exit_code == 0, result.output
    assert "inactive placeholder accounts created: li.na" in result.output
    assert not accounts.get_user_by_username(session=session, username="li.na").active


def test_verify_fails_and_names_the_altered_record(cli, session, tmp_path, make_user, backend):
    make_user("nurse", username="li.na")
    source = tmp_path / "sh01.jsonl"
    source.write_text("\n".join([UNIT, RECEIPT, THAW]) + "\n")
    assert cli("import", str(source)).exit_code == 0
    seq = session.exec(select(LedgerEntry.seq).where(LedgerEntry.ref == "U-1#2")).one()
    for name in ledger.trigger_names(backend, "ledger_entry"):
        on = " ON ledger_entry" if backend == "postgresql" else ""
        session.exec(text(f"DROP TRIGGER {name}{on}"))
    session.exec(
        text("UPDATE ledger_entry SET content = replace(content, :old, :new) WHERE seq = :s"),
        params={"old": '"temperature_c":21', "new": '"temperature_c":24', "s": seq},
    )
    result = cli("verify")
    assert result.exit_code == 1
    assert f"ledger FAILED: record {seq} (step U-1#2): altered" in result.output


def test_verify_anchors_its_head_and_a_later_verify_sees_the_end_removed(
    cli, session, tmp_path, make_user, backend
):
    make_user("nurse", username="li.na")
    source = tmp_path / "sh01.jsonl"
    source.write_text("\n".join([UNIT, RECEIPT, THAW]) + "\n")
    assert cli("import", str(source)).exit_code == 0
    first = cli("verify")
    assert first.exit_code == 0, first.output
    head = session.exec(select(func.max(LedgerEntry.seq))).one()
    anchored = session.exec(select(LedgerAnchor)).all()
    assert [(a.source, a.head_seq) for a in anchored] == [("verify", head)]
    # The newest record removed, the triggers put back: the chain alone still looks whole.
    kind = session.exec(select(LedgerEntry.kind).where(LedgerEntry.seq == head)).one()
    typed = next(d.table for d in ledger.RECORD_TYPES.values() if kind in d.kinds)
    for table in (typed, "ledger_entry"):
        for name in ledger.trigger_names(backend, table):
            on = f" ON {table}" if backend == "postgresql" else ""
            session.exec(text(f"DROP TRIGGER {name}{on}"))
    session.exec(text(f"DELETE FROM {typed} WHERE ledger_seq = :s"), params={"s": head})  # noqa: S608 (a declared table name)
    session.exec(text("DELETE FROM ledger_entry WHERE seq = :s"), params={"s": head})
    for table in (typed, "ledger_entry"):
        for statement in append_only_sql(backend, table):
            session.exec(text(statement))
    result = cli("verify")
    assert result.exit_code == 1
    assert f"ledger FAILED: record {head}: the head anchored by qms verify" in result.output
    assert f"record {head} was removed" in result.output
    # A failed verify anchors nothing.
    assert len(session.exec(select(LedgerAnchor)).all()) == 1


def test_export_rejects_a_time_without_offset(cli):
    result = cli("export", "--since", "2026-10-02T09:00:00")
    assert result.exit_code != 0 and "has no UTC offset" in result.output
