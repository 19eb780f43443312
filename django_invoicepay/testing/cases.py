"""The testing kit for shops that write Django `TestCase`s rather than pytest functions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .payer import Payer
from .sandbox import isolated_sandbox
from .signals import SignalRecorder
from .webhooks import OnePipeNotificationSender, RehiveWebhookSender

if TYPE_CHECKING:
    from ..sandbox import SandboxState


class InvoicePayTestMixin:
    """Mix into a `TestCase` (before it): each test gets an empty sandbox switched on, and

    - `self.invoicepay_sandbox`: its state;
    - `self.invoicepay_webhook` / `self.invoicepay_notification`: the providers' webhook senders;
    - `self.invoicepay_payer`: the customer's actions, each followed by the provider's webhook;
    - `self.invoicepay_signals`: every public signal sent during the test.

    Signals go out after commit: the senders run those callbacks, as a real request's commit would.
    Set `invoicepay_sandbox_path` to a file to share the sandbox with other processes.
    """

    invoicepay_sandbox_path: str | None = None
    invoicepay_sandbox: SandboxState
    invoicepay_webhook: RehiveWebhookSender
    invoicepay_notification: OnePipeNotificationSender
    invoicepay_payer: Payer
    invoicepay_signals: SignalRecorder

    def setUp(self) -> None:
        super().setUp()  # type: ignore[misc]  # the TestCase it is mixed into has one
        enter: Any = self.enterContext  # type: ignore[attr-defined]
        self.invoicepay_sandbox = enter(isolated_sandbox(self.invoicepay_sandbox_path))
        client = self.client  # type: ignore[attr-defined]
        self.invoicepay_webhook = RehiveWebhookSender(client)
        self.invoicepay_notification = OnePipeNotificationSender(client)
        self.invoicepay_payer = Payer(self.invoicepay_webhook, self.invoicepay_notification)
        self.invoicepay_signals = enter(SignalRecorder())
