"""The rendering child: started ahead of its HTML, handed it later, stopped when not needed."""

from __future__ import annotations

import time

import pytest

from qms.reports import render
from tests.reports.conftest import pdf_text

PAGE = "<html><body><p>Report rendered by the child started ahead: 报告</p></body></html>"


def _render(pending: render.PendingRender, timeout_s: float = 60) -> bytes:
    pending.submit(PAGE, base_url="/", attachments=[], xmp=b"", timeout_s=timeout_s)
    return pending.result()


def test_a_child_started_ahead_renders_what_it_is_handed_later():
    with render.start_render() as pending:
        time.sleep(0.2)  # the caller reads its data meanwhile
        content = _render(pending)
    assert content.startswith(b"%PDF-")
    assert "started ahead: 报告" in pdf_text(content)
    assert pending._child.returncode == 0


def test_a_child_never_handed_its_html_is_stopped():
    with pytest.raises(LookupError):
        with render.start_render() as pending:
            child = pending._child
            raise LookupError("the audit before the report failed")
    assert child.poll() is not None  # stopped and reaped, not left waiting on its input


def test_the_timeout_counts_from_the_html_handed_and_stops_the_child():
    with render.start_render() as pending:
        with pytest.raises(render.RenderFailed, match="longer than"):
            _render(pending, timeout_s=0.01)
    assert pending._child.poll() is not None
