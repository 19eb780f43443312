"""Rate limits per client (user or IP) and per invoice.

Rates come from REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] when set there under the scope
name (e.g. "invoicepay_otp"), otherwise from INVOICEPAY["THROTTLE_RATES"]. They use
Django's default cache: with several processes, configure a shared cache (Redis, Memcached)
so the limits hold across them (check W010).

Counted with the cache's atomic `add`/`incr`, not DRF's history list: DRF reads the list,
appends and writes it back, so requests arriving together in several processes all read the
same list and all pass (10 of 12 on a limit of 4, tests/test_shared_cache.py). The count is
a sliding window approximated from two fixed windows (this one, and the last one weighted by
how much of it still overlaps the sliding window); a refused request is not counted.

When the cache fails (Redis down), the payer API's limits let requests through and say so in
the log, at most once a minute per process: a cache outage must not stop every checkout, OTP
guessing stays bounded by the lock-out on the invoice/consent row, and the provider limits
its own API. The webhook receiver's limit fails closed: its error reaches the receiver, which
answers 503 and the provider delivers again later (docs/security.md).

Guests are counted by `clientip.client_ident`: the connection's address, never a header the
client chooses (DRF's own `get_ident` believes X-Forwarded-For); behind reverse proxies, the
address that INVOICEPAY["TRUSTED_PROXIES"] vouches for.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time

from rest_framework.request import Request
from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle
from rest_framework.views import APIView

from ..clientip import client_ident
from ..conf import DEFAULTS, invoicepay_settings, is_rate

logger = logging.getLogger("django_invoicepay.api")
#: While the cache is down, one log line per this many seconds (per process), not one per request.
OUTAGE_LOG_SECONDS = 60.0
_outage_logged_at = -math.inf


class InvoicePayThrottle(SimpleRateThrottle):
    rate_name = "read"
    per_invoice = False
    #: When the cache fails: True lets the request through (logged), False lets the error reach the caller.
    fail_open = True
    #: Requests counted in this window (this one included, when allowed) and in the previous one.
    count = previous = 0
    num_requests: int  # DRF's parse_rate sets both (None only when the rate is None: then nothing is counted)
    duration: int

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

    def allow_request(self, request: Request, view: APIView) -> bool:
        """Count this request atomically; refuse it (uncounted) when the window already holds the rate."""
        if self.rate is None:
            return True
        self.key = self.get_cache_key(request, view)
        if self.key is None:
            return True
        self.now = self.timer()
        window = int(self.now // self.duration)
        current = f"{self.key}:{window}"
        try:
            self.previous = int(self.cache.get(f"{self.key}:{window - 1}") or 0)
            self.count = self._increment(current)
            if self.count + self.previous * (1 - self._elapsed()) <= self.num_requests:
                return True
            self.count = self.cache.decr(current)
        except Exception as exc:  # noqa: BLE001 - any backend's failure (redis.ConnectionError, TimeoutError, ...)
            if not self.fail_open:
                raise
            _log_outage(self.scope, exc)
            return True
        return False

    def _increment(self, key: str) -> int:
        # a window's key lives through the next window, where it is the previous one
        if self.cache.add(key, 1, 2 * self.duration + 1):
            return 1
        try:
            return int(self.cache.incr(key))
        except ValueError:  # it expired between add and incr
            self.cache.add(key, 1, 2 * self.duration + 1)
            return 1

    def _elapsed(self) -> float:
        """How much of the current fixed window has passed, from 0 to 1."""
        return (self.now % self.duration) / self.duration

    def wait(self) -> float | None:
        """Seconds until a request would be allowed (for Retry-After), at least 1."""
        limit = self.num_requests
        room = limit - self.count - 1  # what the previous window's weight must shrink to in this window
        if room >= 0:
            needed = 1 - room / self.previous if self.previous else 0.0
        else:  # this window is full: in the next one, this window's count is the weighted one
            needed = 1 + (1 - (limit - 1) / max(self.count, 1))
        seconds = needed * self.duration - self.now % self.duration
        return float(max(1, math.ceil(seconds - 1e-6)))  # 16.000000000000004 s is 16 s


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
    fail_open = False  # the receiver answers 503 and the provider delivers again: nothing is lost


def _log_outage(scope: str, exc: Exception) -> None:
    global _outage_logged_at
    now = time.monotonic()
    if now - _outage_logged_at >= OUTAGE_LOG_SECONDS:
        _outage_logged_at = now
        logger.error("The cache failed (%s: %s): the API's rate limits are off until it is back (%s).",
                     type(exc).__name__, exc, scope)
