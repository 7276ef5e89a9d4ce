"""HTML to PDF/A-3, always in a child process with a timeout (never in a request thread).

WeasyPrint can take seconds and hundreds of megabytes on a large document, and a page
that makes it loop would hold a web worker for ever: the parent hands the HTML, the
attachments and the XMP metadata to `python -m qms.reports.render_child` on standard
input and reads the PDF from its standard output, killing the child when the timeout
passes.

The child can be started before the HTML exists (`start_render`): it imports WeasyPrint
and loads its fonts while the parent reads the data and fills the template, then renders
what it is handed (`PendingRender.submit`), while the parent does something else (loads
the signing key) until it asks for the PDF (`PendingRender.result`). `render_pdf` does
the three in a row.
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
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


def payload_of(html: str, *, base_url: str, attachments: list[Attachment], xmp: bytes) -> bytes:
    """What the child reads on its standard input."""
    return json.dumps(
        {
            "html": html,
            "base_url": base_url,
            "xmp": xmp.decode("utf-8"),
            "pdf_variant": PDF_VARIANT,
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


class PendingRender:
    """A child process started ahead of its HTML; `cancel` it if the HTML never comes."""

    def __init__(self) -> None:
        self._child = subprocess.Popen(
            [sys.executable, "-m", "qms.reports.render_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._thread: threading.Thread | None = None
        self._outcome: tuple[bytes, bytes] | BaseException | None = None
        self._timeout_s = DEFAULT_TIMEOUT_S

    def submit(
        self,
        html: str,
        *,
        base_url: str,
        attachments: list[Attachment],
        xmp: bytes,
        timeout_s: float = DEFAULT_TIMEOUT_S,
    ) -> None:
        """Hand the document to the child; it renders while the caller goes on."""
        payload = payload_of(html, base_url=base_url, attachments=attachments, xmp=xmp)
        self._timeout_s = timeout_s

        def communicate() -> None:
            try:
                self._outcome = self._child.communicate(input=payload, timeout=timeout_s)
            except BaseException as exc:  # handed to `result`, in the caller's thread
                self._outcome = exc

        self._thread = threading.Thread(target=communicate, name="qms-render", daemon=True)
        self._thread.start()

    def result(self) -> bytes:
        """The PDF the child made within the timeout (counted from `submit`)."""
        if self._thread is None:
            raise RuntimeError("PendingRender.result before submit")
        self._thread.join()
        outcome = self._outcome
        if isinstance(outcome, subprocess.TimeoutExpired):
            self.cancel()
            raise RenderFailed(
                _(
                    "the report took longer than %(seconds)s s to render and was stopped; "
                    "nothing was stored",
                    seconds=int(self._timeout_s),
                )
            ) from None
        if isinstance(outcome, BaseException):
            self.cancel()
            raise outcome
        stdout, stderr = outcome
        if self._child.returncode != 0 or not stdout.startswith(b"%PDF-"):
            last = (stderr.decode("utf-8", "replace").strip().splitlines() or ["?"])[-1]
            raise RenderFailed(
                _(
                    "the report could not be rendered (%(problem)s); nothing was stored",
                    problem=last,
                )
            )
        return stdout

    def cancel(self) -> None:
        """Stop the child (nothing to render after all, or it ran out of time)."""
        if self._child.poll() is None:
            self._child.kill()
        self._child.wait()
        if self._thread is not None:
            self._thread.join()  # its pipes are at their end: the child is gone
        for stream in (self._child.stdin, self._child.stdout, self._child.stderr):
            if stream is not None and not stream.closed:
                stream.close()

    def __enter__(self) -> PendingRender:
        return self

    def __exit__(self, *exc) -> None:
        if self._thread is None or exc[0] is not None:
            self.cancel()


def start_render() -> PendingRender:
    """A child process that prepares WeasyPrint now and renders what `submit` hands it."""
    return PendingRender()


def render_pdf(
    html: str,
    *,
    base_url: str,
    attachments: list[Attachment],
    xmp: bytes,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> bytes:
    """The PDF/A-3 rendering of `html`, made by a child process within `timeout_s`."""
    with start_render() as pending:
        pending.submit(html, base_url=base_url, attachments=attachments, xmp=xmp,
                       timeout_s=timeout_s)  # fmt: skip
        return pending.result()
