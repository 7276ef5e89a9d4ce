"""A unit dossier read back from its PDF: text, data, PDF/A-3 facts, signature, registry."""

from __future__ import annotations

import csv
import io
import json

import pikepdf
import pytest
from sqlalchemy.exc import DBAPIError
from sqlmodel import select

from qms.accounts.models import User
from qms.core.errors import Denied, NotFound, SignatureError
from qms.core.verify import verify
from qms.records.signatures import PasswordEntry
from qms.reports import files, pdf, service
from qms.reports.models import ReportVersion
from tests.reports.conftest import pdf_text


def _file(settings, row) -> bytes:
    return (files.reports_dir(settings) / row.file_name).read_bytes()


def test_english_dossier_carries_every_record_and_the_identifiers(dossier, settings, session):
    row = dossier("en")
    content = _file(settings, row)
    text = pdf_text(content)
    assert "Unit dossier: K-2026-001" in text
    # The dossier stays inside the hospital: patient reference and COI id in clear.
    assert "P-0042" in text and "CHG123426ABC123" in text
    # The correction and the original it corrects are both there, and said to be.
    assert "correction of K-2026-001#10" in text
    assert "typing error" in text and "rate_ml_min = 150" in text
    assert "Page 1 of" in text and row.id in text


def test_chinese_dossier_text_is_extracted_back_in_chinese(dossier, settings):
    content = _file(settings, dossier("zh"))
    text = pdf_text(content)
    assert "单元档案" in text
    assert "第 1 页" in text
    assert "P-0042" in text


def test_attachments_are_the_ledger_contents_as_json_and_csv(dossier, settings, session):
    row = dossier()
    attached = pdf.attachments(_file(settings, row))
    assert set(attached) == {"report.json", "report.csv"}
    document = json.loads(attached["report.json"])
    assert document["report"]["id"] == row.id
    assert document["report"]["ledger_head"] == {
        "seq": row.ledger_head_seq,
        "hash": row.ledger_head_hash,
    }
    assert document["data"] == service.build_data(session, document["report"])
    lines = list(csv.DictReader(io.StringIO(attached["report.csv"].decode("utf-8"))))
    assert [line["record"] for line in lines] == [r["id"] for r in document["data"]["records"]]


def test_pdf_a3_facts_that_pikepdf_can_check(dossier, settings):
    content = _file(settings, dossier("zh"))
    with pikepdf.open(io.BytesIO(content)) as document:
        assert not document.is_encrypted
        meta = document.open_metadata()
        assert meta["pdfaid:part"] == "3" and meta["pdfaid:conformance"] == "B"
        assert meta["{https://qms.invalid/ns/report/1.0/}reportType"] == "unit-dossier"
        assert meta["{https://qms.invalid/ns/report/1.0/}ledgerHeadHash"]
        intents = document.Root.OutputIntents
        assert intents[0].S == "/GTS_PDFA1" and "/DestOutputProfile" in intents[0]
        relationships = {str(spec.AFRelationship) for spec in document.Root.AF}
        assert relationships == {"/Data"}
        fonts = 0
        for page in document.pages:
            for font in page.Resources.Font.values():
                fonts += 1
                descendants = font.get("/DescendantFonts")
                described = descendants[0] if descendants is not None else font
                descriptor = described.FontDescriptor
                assert any(k in descriptor for k in ("/FontFile", "/FontFile2", "/FontFile3")), (
                    font.BaseFont
                )
        assert fonts > 0


def _xmp_facts(content: bytes) -> tuple[set[str], set[str], set[str], set[str]]:
    """Of a PDF's XMP packet, parsed as XML (it must be well formed): the prefixes bound to
    the qms namespace, the prefixes its PDF/A extension schemas declare for it, the qms
    properties used (as elements or attributes) and the properties the schema describes."""
    from lxml import etree

    namespace = pdf.XMP_NAMESPACE
    ns = {
        "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
        "pdfaSchema": "http://www.aiim.org/pdfa/ns/schema#",
        "pdfaProperty": "http://www.aiim.org/pdfa/ns/property#",
    }
    with pikepdf.open(io.BytesIO(content)) as document:
        packet = document.Root.Metadata.read_bytes()
    root = etree.fromstring(packet.split(b"?>", 1)[1].rsplit(b"<?xpacket", 1)[0])
    bound = {p for e in root.iter() for p, uri in e.nsmap.items() if uri == namespace}

    def field(node, name):  # a struct field, as an attribute or as a child element
        prefix, local = name.split(":")
        value = node.get(f"{{{ns[prefix]}}}{local}")
        child = node.find(name, ns)
        if value is None and child is not None:
            value = child.text or child.get(f"{{{ns['rdf']}}}resource")
        return value

    declared, described = set(), set()
    for schema in root.iterfind(".//pdfaSchema:property/..", ns):
        if field(schema, "pdfaSchema:namespaceURI") != namespace:
            continue
        declared.add(field(schema, "pdfaSchema:prefix"))
        for item in schema.iterfind("pdfaSchema:property/rdf:Seq/rdf:li", ns):
            holder = item.find("rdf:Description", ns)
            described.add(field(holder if holder is not None else item, "pdfaProperty:name"))
    used = {etree.QName(e).localname for e in root.iter() if etree.QName(e).namespace == namespace}
    used |= {
        etree.QName(a).localname
        for e in root.iter()
        for a in e.attrib
        if etree.QName(a).namespace == namespace
    }
    return bound, declared, used, described


def test_the_xmp_keeps_the_prefix_its_extension_schema_declares_through_signing(
    dossier, settings, session
):
    draft = dossier()
    officer = session.exec(select(User).where(User.username == "liu.yang")).one()
    approved = service.approve_report(
        session=session,
        settings=settings,
        version_id=draft.id,
        by=officer,
        credential=PasswordEntry("demo-quality-2026"),
        freshness_minutes=5,
    )
    # The seal and the approval each rewrite the XMP (pyHanko serialises it again).
    for row in (draft, approved):
        bound, declared, used, described = _xmp_facts(_file(settings, row))
        assert bound == declared == {pdf.XMP_PREFIX}
        assert used == described == {name for name, _ in pdf.XMP_PROPERTIES}
        assert pdf.xmp_properties(_file(settings, row))["reportId"] == row.id


def test_signature_validates_against_the_demo_ca_and_not_another(
    dossier, settings, tmp_path, demo_keys
):
    content = _file(settings, dossier())
    ca = (settings.instance_path / "keys" / "ca.pem").read_bytes()
    (check,) = pdf.check_signatures(content, [ca])
    assert check.intact and check.valid and check.trusted and check.covers_whole_file
    from qms.config import Settings
    from qms.reports.keys import make_demo_keys

    other = make_demo_keys(
        Settings(instance_path=tmp_path / "other", database_url="sqlite://"), site_name="Other"
    )
    (untrusted,) = pdf.check_signatures(content, [other[0].read_bytes()])
    assert untrusted.intact and not untrusted.trusted


def test_verify_passes_then_a_flipped_byte_fails(dossier, settings, session):
    row = dossier()
    content = _file(settings, row)
    good = service.verify_file(session, settings, content)
    assert good.ok, good.checks
    flipped = bytearray(content)
    middle = len(flipped) // 2
    flipped[middle] ^= 0x01
    bad = service.verify_file(session, settings, bytes(flipped))
    assert not bad.ok
    assert not next(c for c in bad.checks if c.name == "registry").ok


def test_regenerating_supersedes_and_verify_says_so(dossier, settings, session):
    first = dossier()
    second = dossier()
    assert (first.version, second.version) == (1, 2)
    assert service.status_of(session, first).superseded_by == second.id
    assert service.status_of(session, second).current
    result = service.verify_file(session, settings, _file(settings, first))
    assert result.ok  # still genuine, and said to be superseded
    status = next(c for c in result.checks if c.name == "status")
    assert second.id in status.detail
    # Both files stay; the registry keeps both rows and the ledger verifies.
    assert _file(settings, first) != _file(settings, second)
    assert verify(session.connection()).ok


def test_data_altered_in_the_ledger_after_the_report_fails_verify(dossier, settings, session):
    row = dossier()
    content = _file(settings, row)
    # A later record of the unit (after the head the report covers) changes nothing.
    result = service.verify_file(session, settings, content)
    assert result.ok
    document = json.loads(pdf.attachments(content)["report.json"])
    document["data"]["records"][0]["fields"]["diagnosis"] = "altered"
    assert document["data"] != service.build_data(session, document["report"])


def test_registry_rows_are_append_only(dossier, session):
    row = dossier()
    session.commit()
    with pytest.raises(DBAPIError):
        with session.begin_nested():
            session.connection().exec_driver_sql(
                "UPDATE report_version SET sha256 = 'x' WHERE id = ?"
                if session.bind.dialect.name == "sqlite"
                else "UPDATE report_version SET sha256 = 'x' WHERE id = %s",
                (row.id,),
            )


def test_a_rolled_back_generation_leaves_no_file(demo, settings, demo_keys):
    from qms.accounts.service import Actor

    row = service.generate_report(
        session=demo,
        settings=settings,
        who=Actor.system("test"),
        report_type="unit-dossier",
        scope="K-2026-001",
    )
    path = files.reports_dir(settings) / row.file_name
    assert path.exists()
    demo.rollback()
    assert not path.exists()
    assert demo.exec(select(ReportVersion)).all() == []


def test_approval_needs_the_officers_password_and_signs_again(dossier, settings, session):
    draft = dossier()
    officer = session.exec(select(User).where(User.username == "liu.yang")).one()
    with pytest.raises(SignatureError):
        service.approve_report(
            session=session,
            settings=settings,
            version_id=draft.id,
            by=officer,
            credential=PasswordEntry("wrong"),
            freshness_minutes=5,
        )
    approved = service.approve_report(
        session=session,
        settings=settings,
        version_id=draft.id,
        by=officer,
        credential=PasswordEntry("demo-quality-2026"),
        freshness_minutes=5,
    )
    assert approved.approves_id == draft.id and approved.approved_by_id == officer.id
    assert service.status_of(session, draft).superseded_by == approved.id
    content = _file(settings, approved)
    ca = (settings.instance_path / "keys" / "ca.pem").read_bytes()
    seal, approval = pdf.check_signatures(content, [ca])
    assert seal.ok and approval.ok and approval.covers_whole_file
    assert service.verify_file(session, settings, content).ok


def test_only_quality_officers_of_the_site_generate_and_approve(
    dossier, session, settings, make_user
):
    from qms.accounts.models import Site

    nurse = session.exec(select(User).where(User.username == "li.na")).one()
    with pytest.raises(Denied):
        service.generate_report(
            session=session,
            settings=settings,
            who=nurse,
            report_type="unit-dossier",
            scope="K-2026-001",
        )
    draft = dossier()
    session.add(Site(id="BJ-01", name="Beijing"))
    other = make_user("quality_officer", sites=("BJ-01",))
    with pytest.raises(NotFound):  # another site's report answers like a missing one
        service.approve_report(
            session=session,
            settings=settings,
            version_id=draft.id,
            by=other,
            credential=PasswordEntry("correct-horse-battery"),
            freshness_minutes=5,
        )


def test_a_render_over_its_timeout_is_stopped_and_stores_nothing(demo, settings, demo_keys):
    from qms.accounts.service import Actor
    from qms.reports.render import RenderFailed

    with pytest.raises(RenderFailed, match="longer than"):
        service.generate_report(
            session=demo,
            settings=settings,
            who=Actor.system("test"),
            report_type="unit-dossier",
            scope="K-2026-001",
            timeout_s=0.05,
        )
    assert demo.exec(select(ReportVersion)).all() == []
    folder = files.reports_dir(settings)
    assert not folder.exists() or not [p for p in folder.rglob("*.pdf")]


def test_the_pdf_a_check_tells_a_plain_pdf_from_the_report(dossier, settings):
    from pypdf import PdfWriter

    assert pdf.pdfa_problems(_file(settings, dossier())) == []
    plain = io.BytesIO()
    writer = PdfWriter()
    writer.add_blank_page(595, 842)
    writer.write(plain)
    problems = pdf.pdfa_problems(plain.getvalue())
    assert any("pdfaid:part" in p for p in problems)
    assert any("output intent" in p for p in problems)


def test_signing_and_checking_work_inside_a_running_event_loop(dossier, settings):
    # Playwright's sync API, or an async server, keeps a loop running in the thread.
    import asyncio

    content = _file(settings, dossier())
    ca = (settings.instance_path / "keys" / "ca.pem").read_bytes()

    async def inside():
        from qms.reports.keys import signing_key

        signed, _level = pdf.sign(content, signing_key(settings), field_name="again", reason="t")
        return pdf.check_signatures(signed, [ca])

    from concurrent.futures import ThreadPoolExecutor

    # In a thread of its own: this thread may already run a loop (Playwright's, earlier).
    with ThreadPoolExecutor(max_workers=1) as thread:
        checks = thread.submit(asyncio.run, inside()).result()
    assert len(checks) == 2 and all(c.ok for c in checks)
