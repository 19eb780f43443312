"""Typed errors shared by both provider clients and the services above them.

Each provider error carries the provider's message (meant for display to the payer
where the provider says so), the HTTP status it came with, and any field errors, so
an interface can forward it with its meaning kept.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

if TYPE_CHECKING:
    from .models import Invoice


class InvoicePayError(Exception):
    """Base class of every error this app raises on purpose."""


class ProviderError(InvoicePayError):
    """A provider call did not succeed."""

    default_message = _("The payment provider could not handle the request.")

    def __init__(
        self,
        message: str = "",
        *,
        provider: str = "",
        status: int | None = None,
        field_errors: dict | None = None,
        code: str = "",
    ) -> None:
        self.message = message or self.default_message
        self.provider = provider
        self.status = status
        self.field_errors = field_errors or {}
        self.code = code
        super().__init__(self.message)

    def __str__(self) -> str:
        where = f"{self.provider} " if self.provider else ""
        status = f" (HTTP {self.status})" if self.status else ""
        return f"{where}{self.message}{status}"


class ProviderUnavailable(ProviderError):
    """Timeouts, connection failures, 5xx answers: try again later."""

    default_message = _("The payment provider is unavailable right now. Please try again shortly.")


class ProviderBadResponse(ProviderUnavailable):
    """The provider answered something that is not its documented format."""

    default_message = _("The payment provider sent an answer we could not read. Please try again shortly.")


class ProviderRejected(ProviderError):
    """A 4xx answer: the provider refused the request and said why."""


class ProviderValidationError(ProviderRejected):
    """HTTP 400: the provider refused the data; `field_errors` says which fields."""


class ProviderAuthError(ProviderRejected):
    """HTTP 401/403: the shop's credentials are missing, wrong or lack permission."""

    default_message = _("The payment provider refused our credentials.")


class ProviderNotFound(ProviderRejected):
    """HTTP 404: the provider does not know this object."""

    default_message = _("Not found.")


class ProviderConflict(ProviderRejected):
    """HTTP 409: the request conflicts with the object's current state."""


class ProviderRateLimited(ProviderRejected):
    """HTTP 429: too many requests."""


def error_for_status(status: int) -> type[ProviderError]:
    """The error class for an HTTP status that is not a success."""
    if status >= 500:
        return ProviderUnavailable
    return {
        400: ProviderValidationError,
        401: ProviderAuthError,
        403: ProviderAuthError,
        404: ProviderNotFound,
        409: ProviderConflict,
        429: ProviderRateLimited,
    }.get(status, ProviderRejected)


class OrderAdapterError(InvoicePayError):
    """The shop's order could not follow its invoice because of the app's settings (ORDER_STATUS_FIELD,
    ORDER_STATES, ORDER_ADAPTER). The message names the setting to fix; nothing was changed."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class InvoiceStateError(InvoicePayError):
    """The invoice's state does not allow this (e.g. paying an invoice that is already paid)."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(message)


class OpenInvoiceExists(InvoiceStateError):
    """`create_for` was asked for a second invoice while the order has one that can still be paid."""

    def __init__(self, existing: Invoice) -> None:
        self.existing = existing
        super().__init__(
            str(_("This order already has an invoice that can still be paid (%(invoice)s, %(status)s). Let the "
                  "customer pay it, cancel it first, or pass allow_another=True."))
            % {"invoice": existing.reference or existing.remote_id, "status": existing.get_status_display()})


class OtpLocked(InvoicePayError):
    """Too many wrong codes for this invoice: OTP payment is refused for a cooling-off period."""

    def __init__(self, retry_after: int) -> None:
        self.retry_after = retry_after
        minutes = max(1, -(-retry_after // 60))
        self.message = ngettext("Too many wrong codes. For your security, try again in %(minutes)d minute.",
                                "Too many wrong codes. For your security, try again in %(minutes)d minutes.",
                                minutes) % {"minutes": minutes}
        super().__init__(self.message)


class OtpBusy(InvoicePayError):
    """Another code for the same invoice or consent is being checked right now: try again in a moment.
    Not a wrong attempt: the code was not sent."""

    def __init__(self, retry_after: int = 1) -> None:
        self.retry_after = retry_after
        self.message = str(_("A code is being checked, try again in a moment."))
        super().__init__(self.message)


class HoldError(InvoicePayError):
    """A consent or hold could not go ahead; `message` says why in words for the shop or customer."""

    def __init__(self, message: str, *, code: str = "") -> None:
        self.message = message
        self.code = code
        super().__init__(message)
