"""The testing kit: what a shop needs to test its checkout against the sandbox (docs/testing.md).

- `plugin`: pytest fixtures, registered through the `pytest11` entry point when the package is
  installed (`pip install "django-invoicepay[testing]"`): `invoicepay_sandbox`, `invoicepay_webhook`,
  `invoicepay_notification`, `invoicepay_payer`, `invoicepay_signals`.
- `factories`: factory-boy factories for invoices, quotes, transactions, consents and holds, each
  made through the sandbox so the mirror and the provider agree.
- `cases.InvoicePayTestMixin`: the same helpers for Django's `TestCase`.

Nothing here is imported by the app itself. The names below are loaded on first use, so the pytest
plugin (which every project with the package installed loads) costs nothing until a test uses it.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TEST_WEBHOOK_SECRET": ".sandbox",
    "isolated_sandbox": ".sandbox",
    "sandbox_settings": ".sandbox",
    "Payer": ".payer",
    "SignalRecorder": ".signals",
    "OnePipeNotificationSender": ".webhooks",
    "RehiveWebhookSender": ".webhooks",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name], __name__), name)
