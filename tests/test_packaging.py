"""A wheel built from the project carries its templates, checklists and translations."""

from __future__ import annotations

import subprocess
import sys
import zipfile


def test_wheel_carries_templates_and_checklists(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            ".",
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("qms-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "qms/_bundled/templates/base.html" in names
    assert "qms/migrations/env.py" in names and any(
        n.startswith("qms/migrations/versions/0001") for n in names
    )
    assert "qms/web/static/qms.css" in names
    assert any(n.startswith("qms/_bundled/checklists/") and n.endswith(".yaml") for n in names)
    # The compiled catalogs are committed beside their .po files and ship as they are.
    assert "qms/translations/zh_CN/LC_MESSAGES/messages.mo" in names
    assert "qms/translations/en/LC_MESSAGES/messages.mo" in names
