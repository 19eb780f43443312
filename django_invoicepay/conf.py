"""The one `INVOICEPAY` settings dict, read lazily.

Nothing is read at import time: every attribute access looks at
`django.conf.settings.INVOICEPAY` again, so `override_settings` and settings
changed in tests take effect at once. The nested provider dicts and THROTTLE_RATES are
merged over their defaults key by key; every other key replaces its default whole.
"""

from __future__ import annotations

import copy
import re
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from django.conf import settings

from .statuses import InvoiceStatus

#: Every invoice status this app knows (`InvoiceStatus`): what ORDER_STATES may map.
INVOICE_STATUSES: tuple[str, ...] = tuple(InvoiceStatus.values)

DEFAULT_ORDER_STATES: dict[str, str | None] = {
    InvoiceStatus.DRAFT: None,
    InvoiceStatus.INITIATED: None,
    InvoiceStatus.PROCESSING: "awaiting_payment",
    InvoiceStatus.RECEIVED: "payment_received",
    InvoiceStatus.PAID: "completed",
    InvoiceStatus.COMPLETE: "completed",
    InvoiceStatus.OVERPAID: "completed",
    InvoiceStatus.LATE: "completed",
    InvoiceStatus.UNDERPAID: "awaiting_payment",
    InvoiceStatus.EXPIRED: "expired",
    InvoiceStatus.CANCELLED: "cancelled",
    InvoiceStatus.FAILED: "payment_failed",
}

DEFAULTS: dict[str, Any] = {
    "REHIVE": {
        "API_KEY": "",
        "BUSINESS_ID": "",
        "BUSINESS_URL": "https://business.services.rehive.com/api/",
        "PAYMENT_REQUESTS_URL": "https://payment-requests.services.rehive.com/api/",
        "WEBHOOK_SECRET": "",
        "QR_SCHEME": "rehive",
        "QR_NAME": "",
    },
    "ONEPIPE": {
        "API_KEY": "",
        "CLIENT_SECRET": "",
        "BASE_URL": "https://api.onepipe.io/v2/",
        "MOCK_MODE": "inspect",
        "AUTH_PROVIDER": "",
        "SECURE_ENCODING": "utf-16-le",  # inferred: docs/reference/wire-format.md#onepipe-secure-encoding
        "OTP_OVERRIDE": False,
        "ALLOWED_AUTH_TYPES": ["bank.account", "wallet"],
        # OnePipe does not sign notifications: optionally require ?token=<WEBHOOK_TOKEN> on the URL you
        # register, and/or accept them only from these addresses or networks (docs/webhooks.md).
        "WEBHOOK_TOKEN": "",
        "WEBHOOK_ALLOWED_IPS": [],
    },
    "ORDER_STATES": DEFAULT_ORDER_STATES,
    "ORDER_ADAPTER": "django_invoicepay.orders.StatusFieldOrderAdapter",
    "ORDER_STATUS_FIELD": "status",
    "HTTP_TIMEOUT": 10.0,
    "HTTP_MAX_RETRIES": 2,
    "PHONE_REGION": None,
    "OTP_MAX_ATTEMPTS": 5,
    "OTP_COOLDOWN": 900,
    "THROTTLE_RATES": {"otp": "10/min", "payer": "10/min", "read": "120/min", "webhook": "120/min"},
    "AUTO_REFUND_OVERPAYMENT": False,
    "AUTO_RENEW_EXPIRED": False,
    "SANDBOX": False,
    "SANDBOX_STATE_FILE": None,
    # Reverse proxies whose X-Forwarded-For is believed: addresses, CIDR networks, "unix" (clientip.py).
    "TRUSTED_PROXIES": [],
    # Untrusted webhook bodies: larger is a 413, deeper nesting a 400 (docs/webhooks.md).
    "WEBHOOK_MAX_BYTES": 256 * 1024,
    "WEBHOOK_MAX_DEPTH": 32,
    # Webhook deliveries older than this are deleted by `invoicepay_prune` (None: kept for ever).
    "WEBHOOK_RETENTION_DAYS": 90,
    # May clients that are not logged in ask for a consent to hold funds? (docs/hold-funds.md)
    "HOLDS_ALLOW_ANONYMOUS": False,
    # The shop's order model, "app_label.Model" (optional): lets API clients name their order (by pk).
    "ORDER_MODEL": None,
}

NESTED = ("REHIVE", "ONEPIPE")
#: Dicts merged over their defaults key by key (a partial THROTTLE_RATES keeps the other limits).
MERGED = (*NESTED, "THROTTLE_RATES")

# Credentials used when SANDBOX is on and the shop configured none.
SANDBOX_API_KEY = "sandbox-api-key"
SANDBOX_BUSINESS_ID = "sandbox-business"
SANDBOX_ONEPIPE_KEY = "sandbox-onepipe-key"
SANDBOX_ONEPIPE_SECRET = "sandbox-onepipe-secret"  # noqa: S105 - the sandbox's public test value
#: (provider, key) -> what `InvoicePaySettings.credential` gives when the shop configured nothing.
SANDBOX_CREDENTIALS = {
    ("REHIVE", "API_KEY"): SANDBOX_API_KEY,
    ("REHIVE", "BUSINESS_ID"): SANDBOX_BUSINESS_ID,
    ("ONEPIPE", "API_KEY"): SANDBOX_ONEPIPE_KEY,
    ("ONEPIPE", "CLIENT_SECRET"): SANDBOX_ONEPIPE_SECRET,
    ("ONEPIPE", "AUTH_PROVIDER"): "Sandbox",
}


class InvoicePaySettings:
    """Attribute access to `settings.INVOICEPAY` with defaults, e.g. `invoicepay_settings.SANDBOX`."""

    def user_settings(self) -> dict[str, Any]:
        value = getattr(settings, "INVOICEPAY", None)
        return value if isinstance(value, dict) else {}

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown INVOICEPAY setting {name!r}")
        user = self.user_settings()
        # Read per request (a provider call reads ten), so resolved once per INVOICEPAY dict: a new dict
        # (override_settings, the settings fixture) resolves again. Treat the values as read-only.
        cache = self.__dict__.setdefault("_resolved", {})
        key = (id(user), name)
        if key not in cache:
            if len(cache) > 256:
                cache.clear()
            cache[key] = (user, self._resolve(name, user))  # the dict is kept: its id is not reused meanwhile
        return cache[key][1]

    def _resolve(self, name: str, user: dict[str, Any]) -> Any:
        default = copy.deepcopy(DEFAULTS[name])
        if name not in user:
            return default
        value = user[name]
        if name in MERGED and isinstance(value, dict):
            return {**default, **value}
        return value

    @property
    def sandbox_on(self) -> bool:
        """SANDBOX is on only when it is True: a string such as "False" (from the environment) is not
        (and is check error E019)."""
        return self.SANDBOX is True

    def credential(self, provider: str, key: str, *, sandbox: bool | None = None) -> str:
        """`INVOICEPAY[provider][key]`, or the sandbox's public value when that is empty and the sandbox
        answers: with SANDBOX on (`sandbox=None`), or always (`sandbox=True`: the standalone simulator)."""
        value: str = getattr(self, provider).get(key) or ""
        answers = self.sandbox_on if sandbox is None else sandbox
        return value or (SANDBOX_CREDENTIALS[provider, key] if answers else "")


invoicepay_settings = InvoicePaySettings()


#: A DRF rate: requests per second, minute, hour or day ("10/min", "100/hour", "5/s").
RATE = re.compile(r"[0-9]+/[smhd][a-z]*")


def is_rate(value: object) -> TypeGuard[str]:
    """True for a rate DRF can parse (None, no limit, is the caller's business)."""
    return isinstance(value, str) and RATE.fullmatch(value) is not None


def is_url(value: object) -> TypeGuard[str]:
    """True for an absolute http(s) URL with a host: what the provider clients can use as a base URL."""
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:  # e.g. "https://[::1/" (an unclosed IPv6 bracket)
        return False
    return parts.scheme in {"http", "https"} and bool(parts.hostname)


def onepipe_configured() -> bool:
    """Can the OnePipe client be built? A usable BASE_URL, and both credentials unless the sandbox is on."""
    onepipe = invoicepay_settings.ONEPIPE
    if not isinstance(onepipe, dict) or not is_url(onepipe.get("BASE_URL")):
        return False
    if invoicepay_settings.sandbox_on:
        return True
    return all(isinstance(onepipe.get(key), str) and onepipe.get(key) for key in ("API_KEY", "CLIENT_SECRET"))
