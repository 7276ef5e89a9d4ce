"""A live `qms serve` process and Debian's Chromium driven by Playwright.

Never a downloaded browser: CHROMIUM_PATH (default /usr/bin/chromium) must exist, or
the run fails saying how to install it.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("QMS_CHROMIUM", "/usr/bin/chromium")
# Chromium cannot reach the network here: keep it from trying.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _qms(*args: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qms", *args], env=env, capture_output=True, text=True, timeout=120
    )


class LiveServer:
    def __init__(self, url: str, env: dict, process: subprocess.Popen):
        self.url = url
        self.env = env
        self.process = process

    def qms(self, *args: str) -> subprocess.CompletedProcess:
        return _qms(*args, env=self.env)


@pytest.fixture(scope="session")
def _demo_templates(empty_databases, tmp_path_factory) -> dict:
    """{(backend, site file text): (database url, instance path)} made by `qms demo` once
    per run and worker: each test serves a copy of its own (`qms demo` hashes every demo
    password and signs every demo record at full Argon2 cost: seconds, each time)."""
    return {}


def _demo_copy(backend, site_text, templates, empty_databases, tmp_path_factory, tmp_path):
    """A database and an instance folder holding the demonstration data, for one test."""
    key = (backend, site_text)
    if key not in templates:
        made = tmp_path_factory.mktemp(f"demo-{backend}")
        env = dict(os.environ)
        env.update(
            QMS_DATABASE_URL=empty_databases.new(backend),
            QMS_INSTANCE_PATH=str(made / "instance"),
        )
        if site_text is not None:
            (made / "site.yaml").write_text(site_text, encoding="utf-8")
            env["QMS_SITE_FILE"] = str(made / "site.yaml")
        loaded = _qms("demo", env=env)
        assert loaded.returncode == 0, loaded.stderr
        templates[key] = (env["QMS_DATABASE_URL"], made / "instance")
    url, instance = templates[key]
    shutil.copytree(instance, tmp_path / "instance")
    return empty_databases.copy_of(backend, url)


@pytest.fixture
def live_server(backend, empty_databases, _demo_templates, tmp_path_factory, tmp_path, request):
    """`qms serve` on a database and instance of the test's own, with the demonstration
    data (each a copy of one `qms demo` made for the run: `_demo_templates`)."""
    marker = request.node.get_closest_marker("site_file")
    site_text = marker.args[0] if marker is not None else None
    url = _demo_copy(
        backend, site_text, _demo_templates, empty_databases, tmp_path_factory, tmp_path
    )
    env = dict(os.environ)
    env.update(
        QMS_DATABASE_URL=url,
        QMS_INSTANCE_PATH=str(tmp_path / "instance"),
        QMS_SECURE_COOKIES="0",
    )
    if site_text is not None:  # an institution's own parameters (docs/checklists.md)
        site_file = tmp_path / "site.yaml"
        site_file.write_text(site_text, encoding="utf-8")
        env["QMS_SITE_FILE"] = str(site_file)
    port = _free_port()
    log = (tmp_path / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "qms", "serve", "--port", str(port)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            with urllib.request.urlopen(url + "/healthz", timeout=1) as response:
                if response.status == 200:
                    break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(
                    "qms serve did not start:\n" + Path(log.name).read_text()
                ) from None
            time.sleep(0.2)
    yield LiveServer(url, env, process)
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} not found: install Debian's chromium (apt-get install chromium); .ci/run does"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        yield instance
        instance.close()


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1024, "height": 768})
    page = context.new_page()
    page.set_default_timeout(10_000)
    yield page
    context.close()
