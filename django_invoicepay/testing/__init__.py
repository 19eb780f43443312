"""The testing kit: what a shop needs to test its checkout against the sandbox (docs/testing.md).

- `plugin`: pytest fixtures, registered through the `pytest11` entry point when the package is
  installed (`pip install "django-invoicepay[testing]"`): `invoicepay_sandbox`, `invoicepay_webhook`,
  `invoicepay_notification`, `invoicepay_payer`, `invoicepay_signals`.
- `factories`: factory-boy factories for invoices, quotes, transactions, consents and holds, each
  made through the sandbox so the mirror and the provider agree.
- `cases.InvoicePayTestMixin`: the same helpers for Django's `TestCase`.

Nothing here is imported by the app itself, and importing this package touches no model, so the
plugin loads before Django is set up.
"""

from .payer import Payer
from .sandbox import TEST_WEBHOOK_SECRET, isolated_sandbox
from .signals import SignalRecorder
from .webhooks import OnePipeNotificationSender, RehiveWebhookSender

__all__ = [
    "TEST_WEBHOOK_SECRET",
    "OnePipeNotificationSender",
    "Payer",
    "RehiveWebhookSender",
    "SignalRecorder",
    "isolated_sandbox",
]
