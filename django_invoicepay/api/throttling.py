"""Rate limits per client (user or IP) and per invoice.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] when set there under the scope
name (e.g. "invoicepay_otp"), otherwise from INVOICEPAY["THROTTLE_RATES"]. They use
Django's cache: with several processes, configure a shared cache (Redis, Memcached,
database) so the limits hold across them.
"""

from __future__ import annotations

import hashlib

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from ..conf import invoicepay_settings


class InvoicePayThrottle(SimpleRateThrottle):
    rate_name = "read"
    per_invoice = False

    @property
    def scope(self) -> str:  # type: ignore[override]
        return f"invoicepay_{self.rate_name}{'_invoice' if self.per_invoice else ''}"

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope) or invoicepay_settings.THROTTLE_RATES.get(self.rate_name)

    def get_cache_key(self, request, view) -> str:
        if self.per_invoice:  # hashed: a URL token may hold anything, and cache keys must stay plain
            ident = hashlib.sha256(str(view.kwargs.get("token", "")).encode()).hexdigest()[:32]
        elif request.user and request.user.is_authenticated:
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
