"""HTML to PDF/A-3, always in a child process with a timeout (never in a request thread).

WeasyPrint can take seconds and hundreds of megabytes on a large document, and a page
that makes it loop would hold a web worker for ever: the parent hands the HTML, the
attachments and the XMP metadata to `python -m qms.reports.render` on standard input
and reads the PDF from its standard output, killing the child when the timeout passes.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from dataclasses import dataclass

from qms.core.errors import Conflict
from qms.core.i18n import _

PDF_VARIANT = "pdf/a-3b"
DEFAULT_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Attachment:
    """A file embedded in the PDF with its AF relationship (PDF/A-3)."""

    name: str
    data: bytes
    mime_type: str
    description: str
    relationship: str = "Data"


class RenderFailed(Conflict):
    """The child process did not produce a PDF (timeout or an error it reported)."""


def render_pdf(
    html: str,
    *,
    base_url: str,
    attachments: list[Attachment],
    xmp: bytes,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """The PDF/A-3 rendering of `html`, made by a child process within `timeout_s`."""
    payload = json.dumps(
        {
            "html": html,
            "base_url": base_url,
            "xmp": xmp.decode("utf-8"),
            "attachments": [
                {
                    "name": a.name,
                    "data": base64.b64encode(a.data).decode("ascii"),
                    "mime_type": a.mime_type,
                    "description": a.description,
                    "relationship": a.relationship,
                }
                for a in attachments
            ],
        }
    ).encode("utf-8")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "qms.reports.render"],
            input=payload,
            capture_output=True,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        # subprocess.run kills the child before raising.
        raise RenderFailed(
            _(
                "the report took longer than %(seconds)s s to render and was stopped; "
                "nothing was stored",
                seconds=int(timeout_s),
            )
        ) from None
    if done.returncode != 0 or not done.stdout.startswith(b"%PDF-"):
        last = (done.stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
        raise RenderFailed(
            _("the report could not be rendered (%(problem)s); nothing was stored", problem=last)
        )
    return done.stdout


def _child() -> None:
    """Run in the child: read the payload on stdin, write the PDF on stdout."""
    import logging

    from weasyprint import HTML
    from weasyprint import Attachment as PdfAttachment

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    payload = json.loads(sys.stdin.buffer.read())
    attachments = [
        PdfAttachment(
            string=base64.b64decode(a["data"]),
            name=a["name"],
            description=a["description"],
            relationship=a["relationship"],
        )
        for a in payload["attachments"]
    ]
    document = HTML(string=payload["html"], base_url=payload["base_url"]).render()
    descriptions = payload["xmp"].encode("utf-8")

    def add_report_properties(_document, pdf) -> None:
        # WeasyPrint has written its XMP packet (PDF/A id, title, dates): the report's
        # own properties go inside the same rdf:RDF, as XMP allows one per packet.
        metadata = pdf.objects[int(pdf.catalog["Metadata"].split()[0])]
        packet = b"".join(metadata.stream)
        metadata.stream = [packet.replace(b"</rdf:RDF>", descriptions + b"</rdf:RDF>", 1)]

    pdf = document.write_pdf(
        pdf_variant=PDF_VARIANT, attachments=attachments, finisher=add_report_properties
    )
    sys.stdout.buffer.write(pdf)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    _child()
