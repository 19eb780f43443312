"""App and provider errors -> API responses, with the provider's meaning (HTTP status) kept.

The provider's message is meant for the payer, so it is forwarded: as a field error when
the provider named one of the fields the payer sent, otherwise on the view's main field
or as a non-field error. Outages become 503 with a retry hint. Nothing becomes a 500.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.utils.translation import gettext as _
from rest_framework import status
from rest_framework.response import Response
from rest_framework.settings import api_settings

from ..errors import (
    InvoicePayError,
    InvoiceStateError,
    OtpBusy,
    OtpLocked,
    ProviderAuthError,
    ProviderError,
    ProviderUnavailable,
    ProviderValidationError,
)

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

logger = logging.getLogger("django_invoicepay.api")

RETRY_AFTER = 30
#: Provider field name -> the API's field name.
FIELD_NAMES = {
    "payer_email": "payer_email",
    "payer_mobile_number": "payer_mobile_number",
    "otp": "otp",
    "primary_payment_processor": "processor",
}


def _field_errors(exc: ProviderValidationError, field: str | None) -> dict[str, list[StrOrPromise]]:
    errors: dict[str, list[StrOrPromise]] = {}
    other: list[StrOrPromise] = []
    for name, messages in exc.field_errors.items():
        if name in FIELD_NAMES:
            errors.setdefault(FIELD_NAMES[name], []).extend(messages)
        else:
            other.extend(messages)
    if not errors and not other:
        other.append(exc.message)
    if other:
        errors.setdefault(field or api_settings.NON_FIELD_ERRORS_KEY, []).extend(other)
    return errors


def log_provider_failure(exc: ProviderError, what: str) -> None:
    """A provider failure the payer is spared from: the shop still needs to know."""
    if isinstance(exc, ProviderAuthError):
        logger.error("%s: the provider refused the shop's credentials (HTTP %s): check INVOICEPAY settings",
                     what, exc.status)
    else:
        logger.warning("%s: %s", what, exc)


def error_response(exc: InvoicePayError, *, field: str | None = None) -> Response:
    if isinstance(exc, OtpLocked):
        return Response({"detail": exc.message, "code": "otp_locked"}, status=status.HTTP_429_TOO_MANY_REQUESTS,
                        headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, OtpBusy):
        return Response({"detail": exc.message, "code": "otp_in_progress"}, status=status.HTTP_409_CONFLICT,
                        headers={"Retry-After": str(exc.retry_after)})
    if isinstance(exc, InvoiceStateError):
        return Response({"detail": exc.message, "code": "invoice_closed"}, status=status.HTTP_409_CONFLICT)
    if isinstance(exc, ProviderAuthError):
        # The shop's credentials are wrong: tell the shop in the log, not the payer.
        log_provider_failure(exc, "Payer request")
        exc = ProviderUnavailable(_("Payments are not available right now. Please try again later."))
    if isinstance(exc, ProviderUnavailable):
        return Response({"detail": exc.message, "code": "provider_unavailable", "retry_after": RETRY_AFTER},
                        status=status.HTTP_503_SERVICE_UNAVAILABLE, headers={"Retry-After": str(RETRY_AFTER)})
    if isinstance(exc, ProviderValidationError):
        return Response(_field_errors(exc, field), status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, ProviderError):
        code = exc.status if exc.status and 400 <= exc.status < 500 else status.HTTP_400_BAD_REQUEST
        return Response({"detail": exc.message, "code": "provider_rejected"}, status=code)
    logger.exception("Unexpected invoicepay error")
    return Response({"detail": str(exc) or _("The request could not be handled.")}, status=status.HTTP_400_BAD_REQUEST)
