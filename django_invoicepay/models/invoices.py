"""The local mirror of the provider's invoices, quotes and transactions.

Typed fields for what the app reads and queries; the raw JSON beside them for
everything else. Amounts are integers in minor units with their divisibility.
Only the services (`django_invoicepay.services`) change these rows' state: models/actions.py.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING, Any

from django.contrib.contenttypes.fields import GenericForeignKey
from django.contrib.contenttypes.models import ContentType
from django.db import models
from django.utils.functional import cached_property
from django.utils.translation import gettext_lazy as _

from ..money import Money
from ..statuses import InvoiceStatus
from .actions import invoice_actions
from .amounts import MinorUnits
from .order_link import OrderQuerySet
from .otp import OtpGuarded
from .transitions import Transition

if TYPE_CHECKING:
    from datetime import datetime

    from .refunds import Refund


def new_public_token() -> str:
    """An unguessable token: the capability that lets a guest see and pay one invoice.

    Never starting with "-", so it can be passed to a command (`--invoice <token>`) as it is.
    """
    token = secrets.token_urlsafe(32)
    while token.startswith("-"):
        token = secrets.token_urlsafe(32)
    return token


class InvoiceQuerySet(OrderQuerySet["Invoice"]):
    def open(self) -> InvoiceQuerySet:
        """Invoices whose status can still change (the provider's 404s aside: see `missing_since`)."""
        return self.exclude(status__in=InvoiceStatus.FINAL)

    def with_announcing_state(self) -> InvoiceQuerySet:
        """Each invoice with `has_unannounced`: whether a transition of it still waits for its signals.
        Read with the row, it lets `apply_invoice` announce a new transition without looking first."""
        waiting = InvoiceStatusChange.objects.filter(invoice=models.OuterRef("pk"), announced_at__isnull=True)
        return self.annotate(has_unannounced=models.Exists(waiting))


# A module-level name for the generated base, so that django-stubs can type the manager's queryset methods.
_InvoiceManagerBase = models.Manager.from_queryset(InvoiceQuerySet)


class InvoiceManager(_InvoiceManagerBase):
    def create_for(
        self,
        order: models.Model | None,
        *,
        amount: int,
        description: str = "",
        payer_email: str = "",
        payer_mobile_number: str = "",
        items: Any = (),
        expires_at: datetime | None = None,
        **extra: Any,
    ) -> Invoice:
        """Create the remote invoice for `order` and mirror it. See `services.invoices.create_for`
        (extra keywords: `due_at`, `return_url`, `metadata`, `reference`, `allow_another`: a second
        invoice while the order has one that can still be paid raises OpenInvoiceExists without it)."""
        return invoice_actions["create_for"](
            order,
            amount=amount,
            description=description,
            payer_email=payer_email,
            payer_mobile_number=payer_mobile_number,
            items=items,
            expires_at=expires_at,
            **extra,
        )


class Invoice(MinorUnits, OtpGuarded):
    amount_field = "request_amount"

    remote_id = models.CharField(_("remote id"), max_length=64, unique=True)
    reference = models.CharField(_("reference"), max_length=128, blank=True)
    request_reference = models.CharField(_("order reference"), max_length=128, blank=True, db_index=True)
    #: An `InvoiceStatus` value, or one the provider sent that this app does not know, stored as it is.
    status = models.CharField(_("status"), max_length=32, db_index=True, choices=InvoiceStatus.choices)
    request_amount = models.BigIntegerField(_("amount (minor units)"))
    remote_user_id = models.CharField(_("business user id"), max_length=64, blank=True)
    primary_processor = models.CharField(_("primary payment processor"), max_length=100, blank=True)
    payer_email = models.CharField(_("payer email"), max_length=254, blank=True)
    payer_mobile_number = models.CharField(_("payer mobile number"), max_length=32, blank=True)
    description = models.TextField(_("description"), blank=True)
    return_url = models.CharField(_("return URL"), max_length=500, blank=True)
    redirect_url = models.CharField(_("hosted checkout URL"), max_length=500, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    due_at = models.DateTimeField(_("due at"), null=True, blank=True)
    remote_created = models.DateTimeField(_("created at the provider"), null=True, blank=True)
    remote_updated = models.DateTimeField(_("updated at the provider"), null=True, blank=True)
    raw = models.JSONField(_("raw payload"), default=dict, blank=True)

    content_type = models.ForeignKey(
        ContentType, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    object_id = models.CharField(_("order id"), max_length=64, blank=True)
    order = GenericForeignKey("content_type", "object_id")

    renewal_of = models.OneToOneField(
        "self", on_delete=models.SET_NULL, null=True, blank=True, related_name="renewed_by",
        verbose_name=_("renews"), help_text=_("The expired invoice this one replaces."),
    )
    #: Set when the provider answered 404 for it several polls in a row: no longer polled (docs/polling.md).
    missing_since = models.DateTimeField(_("unknown to the provider since"), null=True, blank=True)
    #: When the first attempt to renew this (expired) invoice began: every retry sends the same dates, so
    #: the same body goes with the same Idempotency-Key (services/renewals.py).
    renewal_started_at = models.DateTimeField(_("renewal started at"), null=True, blank=True, editable=False)
    public_token = models.CharField(max_length=64, unique=True, default=new_public_token, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = InvoiceManager()

    class Meta:
        ordering = ("-created_at", "-pk")
        indexes = [models.Index(fields=("content_type", "object_id"), name="invoicepay_invoice_order")]
        verbose_name = _("invoice")
        verbose_name_plural = _("invoices")
        # Admin actions that act at the provider (docs/security.md, "Admin permissions").
        permissions = [
            ("cancel_invoice", "Can cancel invoices at the provider"),
            ("refund_invoice", "Can refund an invoice's overpayment to the payer"),
            ("renew_invoice", "Can renew expired invoices (a new invoice at the provider)"),
        ]

    def __str__(self) -> str:
        return f"{self.reference or self.remote_id} ({self.status})"

    # -- reading ------------------------------------------------------------------------------

    @property
    def amount(self) -> Money:
        return self.money

    @property
    def is_final(self) -> bool:
        """The status will not change any more (`InvoiceStatus.FINAL`)."""
        return self.status in InvoiceStatus.FINAL

    @property
    def is_paid(self) -> bool:
        """The whole amount arrived, late or in excess included (`InvoiceStatus.PAID_IN_FULL`)."""
        return self.status in InvoiceStatus.PAID_IN_FULL

    @property
    def is_awaiting_payment(self) -> bool:
        """A way to pay is chosen and (the rest of) the money is awaited (`InvoiceStatus.AWAITING_PAYMENT`)."""
        return self.status in InvoiceStatus.AWAITING_PAYMENT

    @cached_property
    def _quotes(self) -> list[Quote]:
        return list(self.quotes.all())

    @property
    def primary_quote(self) -> Quote | None:
        """The quote of the payment processor the payer chose (what open loop shows)."""
        if not self.primary_processor:
            return None
        return next((q for q in self._quotes if q.processor == self.primary_processor), None)

    @property
    def native_quote(self) -> Quote | None:
        """The wallet quote for Scan to Pay: processor `native`, status `processing`."""
        return next((q for q in self._quotes if q.processor == "native" and q.status == "processing"), None)

    @property
    def outstanding(self) -> int:
        """What is still owed, in minor units of the primary quote's currency (or the invoice's)."""
        if self.is_final:
            return 0
        quote = self.primary_quote
        if quote is None:
            return self.request_amount
        return max(quote.amount - quote.total_paid, 0)

    @property
    def overpaid_by(self) -> int:
        """Paid minus quoted, in minor units of the primary quote's currency; 0 unless overpaid."""
        quote = self.primary_quote
        if quote is None:
            return 0
        return max(quote.total_paid - quote.amount, 0)

    def in_quote_currency(self, minor: int) -> Money:
        """`minor` units of the primary quote's currency (the invoice's when no quote is chosen)."""
        quote = self.primary_quote
        return (quote or self).as_money(minor)

    @property
    def outstanding_money(self) -> Money:
        return self.in_quote_currency(self.outstanding)

    @property
    def overpaid_money(self) -> Money:
        return self.in_quote_currency(self.overpaid_by)

    def scan_to_pay_uri(self, name: str | None = None) -> str | None:
        """The wallet URI for Scan to Pay, or None when there is no native quote in processing.

        The request currency's code with the native quote's amount and divisibility
        (docs/reference/wire-format.md#scan-to-pay-uri); `name` defaults to INVOICEPAY["REHIVE"]["QR_NAME"].
        """
        from ..conf import invoicepay_settings
        from ..rehive.scan_to_pay import scan_to_pay_uri

        quote = self.native_quote
        if quote is None or not self.remote_user_id:
            return None
        rehive = invoicepay_settings.REHIVE
        return scan_to_pay_uri(
            scheme=rehive["QR_SCHEME"],
            user_id=self.remote_user_id,
            currency=self.currency_code,
            amount=quote.amount,
            divisibility=quote.currency_divisibility,
            reference=quote.reference,
            name=rehive["QR_NAME"] if name is None else name,
            subtype=quote.processor_subtype,
        )

    # -- acting (delegates to the services, the one place that changes state: models/actions.py) -------

    def sync(self, *, source: str = "sync", transactions: bool | None = None) -> Invoice:
        """Re-fetch from the provider and apply; this instance is refreshed in place. `transactions`:
        fetch them too (True), or not (False); by default only while deposits are in flight."""
        invoice_actions["sync"](self, source=source, transactions=transactions)
        self.refresh_from_db()
        return self

    def cancel(self) -> Invoice:
        """Cancel at the provider and apply the answer; this instance is refreshed in place."""
        invoice_actions["cancel"](self)
        self.refresh_from_db()
        return self

    def renew(self) -> Invoice:
        """A new invoice with the same fields for this expired one (idempotent). See `services.renewals.renew`."""
        renewal: Invoice = invoice_actions["renew"](self)
        return renewal

    def refund_overpayment(self) -> Refund:
        """Refund exactly `overpaid_by` to the payer (idempotent). See `services.refunds.refund_overpayment`."""
        refund: Refund = invoice_actions["refund_overpayment"](self)
        return refund

    @property
    def pending_transactions(self) -> list[InvoiceTransaction]:
        """Deposits seen but not final (e.g. crypto waiting for confirmations), oldest first."""
        return [tx for tx in self.transactions.all() if tx.is_pending]

    def refresh_from_db(self, *args: Any, **kwargs: Any) -> None:
        super().refresh_from_db(*args, **kwargs)
        self.__dict__.pop("_quotes", None)


class Quote(MinorUnits):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="quotes")
    remote_id = models.BigIntegerField(_("remote id"))
    reference = models.CharField(_("reference"), max_length=255, blank=True)
    status = models.CharField(_("status"), max_length=32)
    processor = models.CharField(_("processor"), max_length=100, db_index=True)
    processor_name = models.CharField(_("processor name"), max_length=200, blank=True)
    processor_type = models.CharField(_("processor type"), max_length=32, blank=True)
    processor_native = models.BooleanField(_("native processor"), default=False)
    processor_subtype = models.CharField(_("processor subtype"), max_length=100, blank=True)
    deposit_details = models.JSONField(_("deposit details"), default=dict, blank=True)
    amount = models.BigIntegerField(_("amount (minor units)"), default=0)
    total_paid = models.BigIntegerField(_("total paid (minor units)"), default=0)
    total_pending = models.BigIntegerField(_("total pending (minor units)"), default=0)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    remote_updated = models.DateTimeField(_("updated at the provider"), null=True, blank=True)
    raw = models.JSONField(_("raw payload"), default=dict, blank=True)

    class Meta:
        ordering = ("remote_id",)
        constraints = [
            models.UniqueConstraint(fields=("invoice", "remote_id"), name="invoicepay_quote_unique_remote")
        ]
        verbose_name = _("quote")
        verbose_name_plural = _("quotes")

    def __str__(self) -> str:
        return f"{self.processor} quote {self.remote_id} ({self.status})"


class InvoiceTransaction(MinorUnits):
    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="transactions")
    code = models.CharField(_("transaction code"), max_length=64)
    quote_remote_id = models.BigIntegerField(_("quote remote id"), null=True, blank=True)
    settled = models.BooleanField(_("settled"), default=False)
    status = models.CharField(_("status"), max_length=32)
    tx_type = models.CharField(_("type"), max_length=32, blank=True)
    subtype = models.CharField(_("subtype"), max_length=100, blank=True)
    amount = models.BigIntegerField(_("amount (minor units)"), default=0)
    fee = models.BigIntegerField(_("fee (minor units)"), default=0)
    total_amount = models.BigIntegerField(_("total (minor units)"), default=0)
    service = models.CharField(_("processor service"), max_length=64, blank=True)
    confirmations = models.PositiveIntegerField(_("confirmations"), null=True, blank=True)
    tx_hash = models.CharField(_("transaction hash"), max_length=255, blank=True)
    remote_created = models.DateTimeField(_("created at the provider"), null=True, blank=True)
    remote_updated = models.DateTimeField(_("updated at the provider"), null=True, blank=True)
    raw = models.JSONField(_("raw payload"), default=dict, blank=True)

    class Meta:
        ordering = ("remote_created", "pk")
        constraints = [
            models.UniqueConstraint(fields=("invoice", "code"), name="invoicepay_transaction_unique_code")
        ]
        verbose_name = _("invoice transaction")
        verbose_name_plural = _("invoice transactions")

    def __str__(self) -> str:
        return f"{self.code} ({self.status})"

    @property
    def is_pending(self) -> bool:
        return self.status == "pending"


class InvoiceStatusChange(Transition):
    """One row per real transition of an invoice's status: the audit trail and the signals' outbox."""

    invoice = models.ForeignKey(Invoice, on_delete=models.CASCADE, related_name="status_changes")
    remote_updated = models.DateTimeField(_("provider time"), null=True, blank=True)
    #: What `invoice_overpaid` / `invoice_underpaid` report, as it was at the transition (minor units).
    amount = models.BigIntegerField(_("overpaid or outstanding (minor units)"), null=True, blank=True)

    class Meta(Transition.Meta):
        indexes = [models.Index(fields=("announced_at",), name="invoicepay_change_announced")]
        verbose_name = _("invoice status change")
        verbose_name_plural = _("invoice status changes")
