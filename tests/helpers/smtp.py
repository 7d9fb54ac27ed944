"""A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps every message it receives."""

from __future__ import annotations

from contextlib import contextmanager

from aiosmtpd.controller import Controller
from aiosmtpd.handlers import Message

from pitwall_testing.cluster import free_port


@contextmanager
def smtp_server():
    """Yields ``(port, received)``; ``received`` fills with ``email.message.Message`` objects."""
    received: list = []

    class Keep(Message):
        def handle_message(self, message):
            received.append(message)

    port = free_port()  # aiosmtpd connects to its own port to check it is up: no port 0
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, received
    finally:
        controller.stop()


def plain_text(message) -> str:
    return "".join(
        part.get_payload(decode=True).decode()
        for part in message.walk()
        if part.get_content_type() == "text/plain"
    )
