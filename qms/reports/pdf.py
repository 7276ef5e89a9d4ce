"""What a report PDF carries beyond its pages: XMP metadata, signatures, attachments.

The XMP adds the report's own properties (report id, type, site, period, the ledger
head hash, the generator) under the qms namespace, described by a PDF/A extension
schema as PDF/A requires for a custom namespace. Signing (PAdES, pyHanko) comes after
the PDF/A step, as an incremental update, so the signed bytes keep the PDF/A file.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from xml.sax.saxutils import escape

from qms.reports.keys import SigningKey

XMP_NAMESPACE = "https://qms.invalid/ns/report/1.0/"
XMP_PREFIX = "qmsr"
XMP_PROPERTIES = (
    ("reportId", "the report version's id in the registry"),
    ("reportType", "site-monthly, unit-dossier or regional-annual"),
    ("site", "the site the report is about"),
    ("scope", "the site, unit or region the report covers"),
    ("period", "the period the report covers"),
    ("ledgerHeadSeq", "the last ledger entry the report covers"),
    ("ledgerHeadHash", "the hash of that ledger entry"),
    ("generator", "the software that generated the report"),
)


def report_xmp(*, title: str, values: dict[str, str]) -> bytes:
    """The rdf:Description blocks added inside the XMP packet's rdf:RDF (render.py)."""
    schema_properties = "".join(
        f"""<rdf:li rdf:parseType="Resource">
<pdfaProperty:name>{name}</pdfaProperty:name>
<pdfaProperty:valueType>Text</pdfaProperty:valueType>
<pdfaProperty:category>external</pdfaProperty:category>
<pdfaProperty:description>{escape(description)}</pdfaProperty:description>
</rdf:li>"""
        for name, description in XMP_PROPERTIES
    )
    properties = "".join(
        f"<{XMP_PREFIX}:{name}>{escape(str(values.get(name, '')))}</{XMP_PREFIX}:{name}>"
        for name, _ in XMP_PROPERTIES
    )
    del title  # WeasyPrint writes dc:title from the HTML <title>
    return f"""<rdf:Description rdf:about=""
 xmlns:pdfaExtension="http://www.aiim.org/pdfa/ns/extension/"
 xmlns:pdfaSchema="http://www.aiim.org/pdfa/ns/schema#"
 xmlns:pdfaProperty="http://www.aiim.org/pdfa/ns/property#">
<pdfaExtension:schemas><rdf:Bag><rdf:li rdf:parseType="Resource">
<pdfaSchema:schema>qms report</pdfaSchema:schema>
<pdfaSchema:namespaceURI>{XMP_NAMESPACE}</pdfaSchema:namespaceURI>
<pdfaSchema:prefix>{XMP_PREFIX}</pdfaSchema:prefix>
<pdfaSchema:property><rdf:Seq>{schema_properties}</rdf:Seq></pdfaSchema:property>
</rdf:li></rdf:Bag></pdfaExtension:schemas>
</rdf:Description>
<rdf:Description rdf:about="" xmlns:{XMP_PREFIX}="{XMP_NAMESPACE}">{properties}</rdf:Description>
""".encode()


def _outside_event_loop(function, *args, **kwargs):
    """Call `function` where asyncio.run works: pyHanko's synchronous API runs its own
    event loop, which fails inside a running one (Playwright's, an async server's), so
    there it runs in a worker thread of its own."""
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return function(*args, **kwargs)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=1) as worker:
        return worker.submit(function, *args, **kwargs).result()


def sign(*args, **kwargs) -> tuple[bytes, str]:
    """The PDF with one more PAdES signature (an incremental update); and its level."""
    return _outside_event_loop(_sign, *args, **kwargs)


def load_signer(key: SigningKey):
    """The key and certificate opened for `sign(signer=...)` (pyHanko imported on the way:
    a report loads it while its PDF renders in the child process)."""
    from pyhanko.pdf_utils import incremental_writer  # noqa: F401  (what signing needs next)
    from pyhanko.sign import signers

    signer = signers.SimpleSigner.load_pkcs12(str(key.pkcs12), passphrase=key.passphrase)
    if signer is None:
        from qms.core.errors import Conflict

        raise Conflict(f"the signing key {key.pkcs12} could not be opened with its passphrase")
    return signer


def _sign(
    pdf: bytes,
    key: SigningKey,
    *,
    field_name: str,
    reason: str,
    name: str | None = None,
    tsa_url: str | None = None,
    xmp_values: dict[str, str] | None = None,
    signer=None,
) -> tuple[bytes, str]:
    """The PDF with one more PAdES signature (an incremental update); and its level.

    `xmp_values` replace report properties of the XMP in the same update (an approved
    version is the draft's rendering, but its metadata names the approved version).
    `signer`: the key already opened (`load_signer`), else it is opened here."""
    from pyhanko.pdf_utils.incremental_writer import IncrementalPdfFileWriter
    from pyhanko.sign import fields, signers

    _register_xmp_prefix()
    signer = signer or load_signer(key)
    meta = signers.PdfSignatureMetadata(
        field_name=field_name,
        reason=reason,
        name=name,
        subfilter=fields.SigSeedSubFilter.PADES,
        md_algorithm="sha256",
    )
    timestamper = None
    if tsa_url:  # B-T: an RFC 3161 time stamp from the configured authority
        from pyhanko.sign.timestamps.requests_client import RequestsHTTPTimeStamper

        timestamper = RequestsHTTPTimeStamper(tsa_url, timeout=20)
    writer = IncrementalPdfFileWriter(io.BytesIO(pdf), strict=False)
    if xmp_values:
        _replace_xmp_values(writer, xmp_values)
    out = signers.sign_pdf(
        writer,
        meta,
        signer=signer,
        timestamper=timestamper,
        bytes_reserved=None if timestamper else _container_bytes(signer),
    )
    return out.getvalue(), ("B-T" if timestamper else "B-B")


def _container_bytes(signer) -> int:
    """Room for the CMS container of a signature without a time stamp: the certificates
    it carries and 8 KiB for the rest (signed attributes, the signature value: a few
    hundred bytes). Given, pyHanko does not sign a dummy first to measure it (half of the
    signing time); with a time stamp, whose size the authority decides, it measures."""
    certificates = [signer.signing_cert, *signer.cert_registry]
    size = 8192 + sum(len(c.dump()) for c in certificates if c is not None)
    return size + size % 2  # pyHanko reserves whole bytes of hex: an even count


def _register_xmp_prefix() -> None:
    """pyHanko rewrites the XMP packet when it signs (lxml, properties as attributes) and
    names a namespace lxml does not know `ns0`; registered, ours keeps the prefix its PDF/A
    extension schema declares (`pdfaSchema:prefix`)."""
    from pyhanko.pdf_utils.metadata.xmp_xml import etree  # the lxml pyHanko writes with

    etree.register_namespace(XMP_PREFIX, XMP_NAMESPACE)


def _replace_xmp_values(writer, values: dict[str, str]) -> None:
    """A new XMP stream with the qms properties in `values` replaced (pyHanko writes the
    properties as attributes; files signed before `_register_xmp_prefix` name the
    namespace `ns0`: whatever prefix is bound to it is matched, in either form)."""
    import re

    from pyhanko.pdf_utils.metadata.xmp_xml import MetadataStream

    packet = writer.root["/Metadata"].data.decode("utf-8")
    namespace = re.escape(XMP_NAMESPACE)
    prefixes = set(re.findall(rf'xmlns:(\w+)="{namespace}"', packet)) or {XMP_PREFIX}
    for name, value in values.items():
        shown = escape(value).replace("\\", "\\\\")
        for prefix in prefixes:
            packet = re.sub(rf'({prefix}:{name}=")[^"]*(")', rf"\g<1>{shown}\g<2>", packet)
            packet = re.sub(
                rf"(<{prefix}:{name}>)[^<]*(</{prefix}:{name}>)", rf"\g<1>{shown}\g<2>", packet
            )
    writer.root["/Metadata"] = writer.add_object(MetadataStream(stream_data=packet.encode()))
    writer.update_root()


def xmp_properties(pdf: bytes) -> dict[str, str]:
    """The qms report properties of a PDF's (latest) XMP packet."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as document:
        meta = document.open_metadata()
        return {name: str(meta.get(f"{{{XMP_NAMESPACE}}}{name}", "")) for name, _ in XMP_PROPERTIES}


@dataclass(frozen=True)
class SignatureCheck:
    field: str
    signer: str
    intact: bool
    valid: bool
    trusted: bool
    covers_whole_file: bool
    timestamped: bool

    @property
    def ok(self) -> bool:
        return self.intact and self.valid and self.trusted


def check_signatures(pdf: bytes, trust_roots: list[bytes]) -> list[SignatureCheck]:
    """Every signature in the PDF, validated against `trust_roots` (PEM or DER certs)."""
    return _outside_event_loop(_check_signatures, pdf, trust_roots)


def _check_signatures(pdf: bytes, trust_roots: list[bytes]) -> list[SignatureCheck]:
    from asn1crypto import pem, x509
    from pyhanko.pdf_utils.reader import PdfFileReader
    from pyhanko.sign.validation import validate_pdf_signature
    from pyhanko_certvalidator import ValidationContext

    roots = []
    for blob in trust_roots:
        if pem.detect(blob):
            roots += [x509.Certificate.load(der) for _, _, der in pem.unarmor(blob, multiple=True)]
        else:
            roots.append(x509.Certificate.load(blob))
    reader = PdfFileReader(io.BytesIO(pdf), strict=False)
    checks = []
    for embedded in reader.embedded_signatures:
        context = ValidationContext(trust_roots=roots, allow_fetching=False)
        status = validate_pdf_signature(embedded, context)
        checks.append(
            SignatureCheck(
                field=embedded.field_name,
                signer=status.signing_cert.subject.human_friendly,
                intact=status.intact,
                valid=status.valid,
                trusted=status.trusted,
                covers_whole_file=status.coverage is not None
                and status.coverage.name == "ENTIRE_FILE",
                timestamped=status.timestamp_validity is not None,
            )
        )
    return checks


def attachments(pdf: bytes) -> dict[str, bytes]:
    """The embedded files of a PDF, by name."""
    import pikepdf

    with pikepdf.open(io.BytesIO(pdf)) as document:
        return {name: spec.get_file().read_bytes() for name, spec in document.attachments.items()}


def pdfa_problems(pdf: bytes) -> list[str]:
    """What pikepdf can check of PDF/A-3 (veraPDF checks far more): the identification in
    the XMP, an output intent with an ICC profile, every font embedded, no encryption,
    every attachment with its AF relationship and listed in the catalog's /AF."""
    import pikepdf

    problems = []
    with pikepdf.open(io.BytesIO(pdf)) as document:
        if document.is_encrypted:
            problems.append("encrypted")
        meta = document.open_metadata()
        if meta.get("pdfaid:part") != "3":
            problems.append(f"XMP pdfaid:part is {meta.get('pdfaid:part')!r}, not '3'")
        intents = document.Root.get("/OutputIntents")
        if not intents or "/DestOutputProfile" not in intents[0]:
            problems.append("no output intent with an ICC profile")
        listed = {spec.objgen for spec in document.Root.get("/AF", [])}
        for name, spec in document.attachments.items():
            obj = spec.obj
            if "/AFRelationship" not in obj:
                problems.append(f"attachment {name} has no AFRelationship")
            if obj.objgen not in listed:
                problems.append(f"attachment {name} is not in the catalog's /AF")
        for number, page in enumerate(document.pages, start=1):
            fonts = page.get("/Resources", {}).get("/Font", {})
            for font in fonts.values():
                descendants = font.get("/DescendantFonts")
                described = descendants[0] if descendants is not None else font
                descriptor = described.get("/FontDescriptor")
                if descriptor is None or not any(
                    key in descriptor for key in ("/FontFile", "/FontFile2", "/FontFile3")
                ):
                    problems.append(f"page {number}: font {font.get('/BaseFont')} not embedded")
    return problems
