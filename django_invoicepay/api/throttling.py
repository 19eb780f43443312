"""Rate limits per client (user or IP) and per invoice.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] when set there under the scope
name (e.g. "invoicepay_otp"), otherwise from INVOICEPAY["THROTTLE_RATES"]. They use
Django's cache: with several processes, configure a shared cache (Redis, Memcached,
database) so the limits hold across them.

Guests are counted by `clientip.client_ident`: the connection's address, never a header the
client chooses (DRF's own `get_ident` believes X-Forwarded-For); behind reverse proxies, the
address that INVOICEPAY["TRUSTED_PROXIES"] vouches for.
"""

from __future__ import annotations

import hashlib

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from ..clientip import client_ident
from ..conf import DEFAULTS, invoicepay_settings, is_rate


class InvoicePayThrottle(SimpleRateThrottle):
    rate_name = "read"
    per_invoice = False

    # DRF declares `scope` a class attribute; ours is computed from the rate name (a property overrides it).
    @property
    def scope(self) -> str:  # type: ignore[override]
        return f"invoicepay_{self.rate_name}{'_invoice' if self.per_invoice else ''}"

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        rate = rates.get(self.scope) or None
        if rate is None:
            configured = invoicepay_settings.THROTTLE_RATES  # merged over the defaults key by key
            if not isinstance(configured, dict):
                configured = DEFAULTS["THROTTLE_RATES"]
            rate = configured.get(self.rate_name)
            if rate is None:
                return None  # the shop turned this limit off on purpose
        if not is_rate(rate):  # a mistake (check E016) keeps the default limit rather than failing every call
            rate = DEFAULTS["THROTTLE_RATES"].get(self.rate_name)
        return rate

    def get_ident(self, request: Request) -> str:
        """The client's address, never a value the client can choose (see `clientip`)."""
        return client_ident(request)

    def get_cache_key(self, request: Request, view: APIView) -> str:
        if self.per_invoice:  # hashed: a URL token may hold anything, and cache keys must stay plain
            ident = hashlib.sha256(str(view.kwargs.get("token", "")).encode()).hexdigest()[:32]
        elif getattr(request, "user", None) and request.user.is_authenticated:
            ident = f"user-{request.user.pk}"
        else:
            ident = self.get_ident(request)
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ReadThrottle(InvoicePayThrottle):
    rate_name = "read"


class PayerThrottle(InvoicePayThrottle):
    rate_name = "payer"


class OtpClientThrottle(InvoicePayThrottle):
    rate_name = "otp"


class OtpInvoiceThrottle(InvoicePayThrottle):
    rate_name = "otp"
    per_invoice = True


class WebhookThrottle(InvoicePayThrottle):
    """Per client, on receivers whose provider does not authenticate its deliveries (OnePipe)."""

    rate_name = "webhook"
