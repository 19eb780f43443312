"""One OTP guard for every row that takes a code: invoices (OTP payment) and hold consents.

- One code is checked at a time per row: a submission takes the row's `otp_checking_until`
  lease for as long as the provider calls can take. A submission that arrives meanwhile gets
  `OtpBusy` (the API's 409 "a code is being checked"), is not sent and is not counted.
- The attempt is counted in the same UPDATE that takes the lease, so parallel guesses can never
  exceed the limit; after OTP_MAX_ATTEMPTS wrong codes the row refuses codes for OTP_COOLDOWN
  seconds (`OtpLocked`). A correct code resets the count; an outage does not count.
- All of it lives on the row, so the limit holds across processes, whatever the cache.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from django.db.models import F, QuerySet
from django.utils import timezone

from .. import leases
from ..conf import invoicepay_settings
from ..errors import OtpBusy, OtpLocked
from ..models.otp import OtpGuarded
from ..reconnect import on_fresh_connection

logger = logging.getLogger("django_invoicepay.otp")


@dataclass
class Attempt:
    """The submission in progress: say how the provider answered (a wrong code stays counted)."""

    row: OtpGuarded

    def _rows(self) -> QuerySet[OtpGuarded]:
        return type(self.row)._default_manager.filter(pk=self.row.pk)

    def accepted(self) -> None:
        self._rows().update(otp_failures=0, otp_locked_until=None)

    def not_counted(self) -> None:
        """Nothing was decided (an outage, a closed invoice): give the attempt back."""
        self._rows().filter(otp_failures__gt=0).update(otp_failures=F("otp_failures") - 1)

    def wrong(self) -> None:
        limit = int(invoicepay_settings.OTP_MAX_ATTEMPTS)
        cooldown = timedelta(seconds=int(invoicepay_settings.OTP_COOLDOWN))
        self._rows().filter(otp_failures__gte=limit, otp_locked_until__isnull=True).update(
            otp_locked_until=timezone.now() + cooldown)


@contextlib.contextmanager
def checking(row: OtpGuarded, *, provider_calls: int = 1) -> Iterator[Attempt]:
    """Check one code for `row`: raises OtpLocked or OtpBusy before any provider call, else yields
    the counted attempt and gives the row back when the block ends, however it ends."""
    model, limit = type(row), int(invoicepay_settings.OTP_MAX_ATTEMPTS)
    rows = model._default_manager.filter(pk=row.pk)
    rows.filter(otp_locked_until__lte=timezone.now()).update(otp_failures=0, otp_locked_until=None)  # ended
    open_rows = rows.filter(otp_locked_until__isnull=True, otp_failures__lt=limit)
    if not leases.take(open_rows, "otp_checking_until", leases.provider_call_budget(provider_calls),
                       otp_failures=F("otp_failures") + 1):
        _refuse(row, limit)
    try:
        yield Attempt(row)
    finally:
        on_fresh_connection(lambda: rows.update(otp_checking_until=None))


def _refuse(row: OtpGuarded, limit: int) -> None:
    model = type(row)
    state = (model._default_manager.filter(pk=row.pk)
             .values("otp_locked_until", "otp_checking_until", "otp_failures").first())
    if state is None:
        raise model.DoesNotExist
    label = f"{model._meta.model_name} {row.pk}"
    locked = leases.seconds_left(state["otp_locked_until"])
    if not locked and state["otp_failures"] >= limit:  # the limit was reached by the last attempt: lock now
        locked = int(invoicepay_settings.OTP_COOLDOWN)
        model._default_manager.filter(pk=row.pk, otp_locked_until__isnull=True).update(
            otp_locked_until=timezone.now() + timedelta(seconds=locked))
    if locked:
        logger.warning("%s: OTP refused, locked for %d s", label, locked)
        raise OtpLocked(locked)
    logger.info("%s: OTP refused while another code is being checked", label)
    raise OtpBusy(max(leases.seconds_left(state["otp_checking_until"]), 1))
