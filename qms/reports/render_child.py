"""The child process of `qms.reports.render`: PDF/A-3 from the HTML it reads on stdin.

Imports WeasyPrint alone (no Flask, no database code) and loads its fonts before it reads
its input, so that a child started ahead of its HTML (`render.start_render`) is ready when
the HTML comes. Writes the PDF on stdout; a failure is its last line on stderr.
"""

from __future__ import annotations

import base64
import json
import logging
import sys

# A paragraph in the reports' font: rendering it once loads fontconfig and the font files
# while the parent is still preparing the document.
WARM_UP = (
    "<html><head><style>html{font-family:'Noto Sans CJK SC','Noto Sans CJK JP',sans-serif}"
    "</style></head><body><p>qms 质量</p></body></html>"
)


def main() -> None:
    from weasyprint import HTML
    from weasyprint import Attachment as PdfAttachment

    logging.getLogger("weasyprint").setLevel(logging.ERROR)
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    HTML(string=WARM_UP).render()
    raw = sys.stdin.buffer.read()
    if not raw:  # the parent gave up before handing a document (or was killed)
        return
    payload = json.loads(raw)
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
        pdf_variant=payload["pdf_variant"],
        attachments=attachments,
        finisher=add_report_properties,
    )
    sys.stdout.buffer.write(pdf)
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
