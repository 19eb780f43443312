"""The services behind the models' convenience methods: `Invoice.objects.create_for()`, `invoice.sync()`,
`.cancel()`, `.renew()` and `.refund_overpayment()`.

The services import the models, so the models import no service (docs/development.md#layers):
AppConfig.ready() installs the service functions here, and the methods call them through
`invoice_actions`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import ImproperlyConfigured


class Actions:
    """Named service functions, installed once when the app is ready."""

    def __init__(self, *names: str) -> None:
        self.names = frozenset(names)
        self._functions: dict[str, Callable[..., Any]] = {}

    def install(self, **functions: Callable[..., Any]) -> None:
        unknown = set(functions) - self.names
        if unknown:
            raise TypeError(f"Unknown action(s): {', '.join(sorted(unknown))}")
        self._functions.update(functions)

    def __getitem__(self, name: str) -> Callable[..., Any]:
        try:
            return self._functions[name]
        except KeyError:
            raise ImproperlyConfigured(f"{name}() needs the app to be ready: add 'django_invoicepay' to "
                                       "INSTALLED_APPS and call it after django.setup().") from None


invoice_actions = Actions("create_for", "sync", "cancel", "renew", "refund_overpayment")
