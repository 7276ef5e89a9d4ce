"""kill -9 between the SMTP server's acceptance and the log entry, then a restart."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from sqlmodel import select

from qms.delivery.models import DeliveryAttempt
from tests.delivery.test_outbox import _deliveries, dossier  # noqa: F401 (fixture)
from tests.delivery_helpers import Mailbox, SmtpServer

pytestmark = pytest.mark.slow


def _run_due(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "qms", "schedule", "run-due"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_crash_after_acceptance_resends_the_same_message_id_once(dossier):  # noqa: F811
    database, settings, report = dossier
    (delivery,) = _deliveries(database, report, regulators=[])
    with SmtpServer(Mailbox()) as server:
        env = dict(
            os.environ,
            QMS_DATABASE_URL=database.url,
            QMS_INSTANCE_PATH=str(settings.instance_path),
            QMS_SMTP_URL=server.url,
            QMS_MAIL_FROM="qms@hospital.example",
        )
        crashed = _run_due(dict(env, QMS_DELIVERY_CRASH_AT="after-accept"))
        assert crashed.returncode == -9  # killed after the server accepted the message
        assert len(server.mailbox.received) == 1
        with database.transaction(write=False) as session:
            assert session.exec(select(DeliveryAttempt)).all() == []  # the log never saw it

        again = _run_due(env)
        assert again.returncode == 0, again.stderr
        assert "delivery: email to bureau@example.org: accepted 250" in again.stdout
        third = _run_due(env)
        assert "delivery:" not in third.stdout  # delivered: nothing more is sent
        first, second = server.mailbox.received
    assert first["Message-ID"] == second["Message-ID"] == delivery.message_id
    with database.transaction(write=False) as session:
        attempts = session.exec(select(DeliveryAttempt)).all()
    assert [(a.number, a.outcome) for a in attempts] == [(1, "accepted")]
