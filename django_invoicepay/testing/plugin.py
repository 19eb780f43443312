"""pytest fixtures for shops (docs/testing.md), registered through the `pytest11` entry point.

They need pytest-django (the `client` and database fixtures). Nothing is autouse: a test that takes
`invoicepay_sandbox`, or any fixture built on it, gets an empty sandbox switched on. To give every
test one, add to the shop's conftest.py::

    @pytest.fixture(autouse=True)
    def _sandbox(invoicepay_sandbox):
        return invoicepay_sandbox
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from ..sandbox import SandboxState
    from .payer import Payer
    from .signals import SignalRecorder
    from .webhooks import OnePipeNotificationSender, RehiveWebhookSender


@pytest.fixture
def invoicepay_sandbox_path() -> str | os.PathLike | None:
    """Where the test's sandbox lives: None (the default) keeps it in memory. Override it to return a
    file (e.g. under `tmp_path`) when the test starts other processes that must share the sandbox."""
    return None


@pytest.fixture
def invoicepay_sandbox(settings: Any, invoicepay_sandbox_path: str | os.PathLike | None) -> Iterator[SandboxState]:
    """The sandbox switched on and empty for this test; its state (`.requests`, `.add_fault(...)`).

    The settings change goes through pytest-django's `settings` fixture, so it is undone in order with
    whatever else the test changes there."""
    from .. import sandbox
    from .sandbox import sandbox_settings

    settings.INVOICEPAY = sandbox_settings()
    with sandbox.isolated(invoicepay_sandbox_path) as state:
        yield state


@pytest.fixture
def invoicepay_webhook(invoicepay_sandbox: SandboxState, client: Any) -> RehiveWebhookSender:
    """`invoicepay_webhook.send(invoice)`: Rehive's webhook for the invoice's state, posted to the shop."""
    from .webhooks import RehiveWebhookSender

    return RehiveWebhookSender(client)


@pytest.fixture
def invoicepay_notification(invoicepay_sandbox: SandboxState, client: Any) -> OnePipeNotificationSender:
    """`invoicepay_notification.send(hold)`: OnePipe's notification for the hold, posted to the shop."""
    from .webhooks import OnePipeNotificationSender

    return OnePipeNotificationSender(client)


@pytest.fixture
def invoicepay_payer(invoicepay_webhook: RehiveWebhookSender,
                     invoicepay_notification: OnePipeNotificationSender) -> Payer:
    """The customer: `invoicepay_payer.pay(invoice)`, `.underpay(...)`, `.crypto_deposit(...)`, `.expire(...)`."""
    from .payer import Payer

    return Payer(invoicepay_webhook, invoicepay_notification)


@pytest.fixture
def invoicepay_signals() -> Iterator[SignalRecorder]:
    """Every public signal sent during the test, as `(name, kwargs)`; see `SignalRecorder`."""
    from .signals import SignalRecorder

    with SignalRecorder() as recorder:
        yield recorder
