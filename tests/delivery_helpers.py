"""A real SMTP server on loopback (aiosmtpd) that accepts, refuses for a while, or refuses."""

from __future__ import annotations

import socket
from email import message_from_bytes, policy

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Mailbox:
    """Answers DATA with `answers` in turn (then 250), keeping what it accepted."""

    def __init__(self, answers=()):
        self.answers = list(answers)
        self.received = []  # email.message.EmailMessage
        self.refused = 0

    async def handle_DATA(self, server, session, envelope):
        if self.answers:
            self.refused += 1
            return self.answers.pop(0)
        self.received.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 2.0.0 Ok: queued as TEST"


class SmtpServer:
    def __init__(self, mailbox: Mailbox):
        self.mailbox = mailbox
        self.port = free_port()
        self.controller = Controller(mailbox, hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> SmtpServer:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}"
