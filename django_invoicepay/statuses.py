"""An invoice's status: the provider's codes, their words, and the groups the app decides by.

`InvoiceStatus` is the one list of Rehive's invoice statuses (docs/invoices.md). Its values are the
codes the provider sends and the app stores (lower case); its labels are what a person reads, in the
active language ("paid" -> "payée"). The labels carry the context "invoice status" so a translation
can agree them with "invoice" (e.g. French "payée", feminine) apart from a hold's "expired".

A status the provider sends that is not listed here is still stored as it is (and logged): nothing
may assume `Invoice.status` is a member, so compare with the groups (`status in InvoiceStatus.FINAL`)
rather than by converting (`InvoiceStatus(status)` raises for an unknown one).

This module imports no model, so that `conf`, the models and the sandbox can all use it.
"""

from __future__ import annotations

from typing import ClassVar

from django.db import models
from django.utils.translation import pgettext_lazy


class InvoiceStatus(models.TextChoices):
    """Rehive's invoice statuses, in the order an invoice usually moves through them."""

    DRAFT = "draft", pgettext_lazy("invoice status", "draft")
    INITIATED = "initiated", pgettext_lazy("invoice status", "initiated")
    PROCESSING = "processing", pgettext_lazy("invoice status", "processing")
    RECEIVED = "received", pgettext_lazy("invoice status", "received")
    PAID = "paid", pgettext_lazy("invoice status", "paid")
    COMPLETE = "complete", pgettext_lazy("invoice status", "complete")
    LATE = "late", pgettext_lazy("invoice status", "late")
    OVERPAID = "overpaid", pgettext_lazy("invoice status", "overpaid")
    UNDERPAID = "underpaid", pgettext_lazy("invoice status", "underpaid")
    CANCELLED = "cancelled", pgettext_lazy("invoice status", "cancelled")
    EXPIRED = "expired", pgettext_lazy("invoice status", "expired")
    FAILED = "failed", pgettext_lazy("invoice status", "failed")

    # The groups (set below the class: inside an enum's body they would become members).
    # NEW, AWAITING_PAYMENT, PAID_IN_FULL and CLOSED partition the statuses; OPEN and FINAL too.
    #: Created, no payment asked for yet: the payer has not chosen how to pay.
    NEW: ClassVar[frozenset[InvoiceStatus]]
    #: A way to pay is chosen and the (rest of the) money is awaited: polled more often (docs/polling.md).
    #: `received` is not final by inference: docs/reference/wire-format.md#rehive-received-status
    AWAITING_PAYMENT: ClassVar[frozenset[InvoiceStatus]]
    #: The whole amount arrived, late or in excess included: the order is completed (docs/invoices.md).
    PAID_IN_FULL: ClassVar[frozenset[InvoiceStatus]]
    #: Over without the money: the invoice can no longer be paid.
    CLOSED: ClassVar[frozenset[InvoiceStatus]]
    #: Can still change: polled, payable, cancellable.
    OPEN: ClassVar[frozenset[InvoiceStatus]]
    #: Will not change any more: never polled again, never paid again.
    FINAL: ClassVar[frozenset[InvoiceStatus]]


InvoiceStatus.NEW = frozenset({InvoiceStatus.DRAFT, InvoiceStatus.INITIATED})
InvoiceStatus.AWAITING_PAYMENT = frozenset({InvoiceStatus.PROCESSING, InvoiceStatus.RECEIVED, InvoiceStatus.UNDERPAID})
InvoiceStatus.PAID_IN_FULL = frozenset(
    {InvoiceStatus.PAID, InvoiceStatus.COMPLETE, InvoiceStatus.LATE, InvoiceStatus.OVERPAID}
)
InvoiceStatus.CLOSED = frozenset({InvoiceStatus.CANCELLED, InvoiceStatus.EXPIRED, InvoiceStatus.FAILED})
InvoiceStatus.OPEN = InvoiceStatus.NEW | InvoiceStatus.AWAITING_PAYMENT
InvoiceStatus.FINAL = InvoiceStatus.PAID_IN_FULL | InvoiceStatus.CLOSED


def label(status: object) -> str:
    """`status` in words in the active language; a status this app does not know, as it is."""
    text = "" if status is None else str(status)
    code = text.lower()
    return str(InvoiceStatus(code).label) if code in InvoiceStatus.values else text
