"""factory-boy factories that make the provider's side and the shop's mirror together.

Every object is made the way a shop and its customer would make it: the invoice is created at the
(sandbox) provider through the app's services, the customer's actions happen in the sandbox, and
the mirror is synced from there. So `InvoiceFactory(status="paid", order=order)` is a paid invoice
with its quote and its transaction, both in the sandbox and in the database, and the order has
moved as the shop's ORDER_STATES say. A factory makes state, not news: the transitions it causes
are recorded as already announced, so the shop's signal receivers hear only of what the test itself
does afterwards. Use them inside an isolated sandbox (the `invoicepay_sandbox`
fixture or `InvoicePayTestMixin`). Amounts are integers in minor units.

Only `create` is supported: an invoice that exists only in memory would not be at the provider.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import factory
from django.db import transaction
from django.db.models import Max
from django.utils import timezone

from .. import sandbox
from ..models import (
    ConsentStatusChange,
    Hold,
    HoldConsent,
    HoldStatusChange,
    Invoice,
    InvoiceStatusChange,
    InvoiceTransaction,
    Quote,
)
from ..services import holds, invoices, payments
from ..statuses import InvoiceStatus
from .sandbox import require_sandbox

#: The statuses InvoiceFactory can make, and what brings an invoice there.
INVOICE_STATUSES = (InvoiceStatus.INITIATED, InvoiceStatus.PROCESSING, InvoiceStatus.PAID, InvoiceStatus.OVERPAID,
                    InvoiceStatus.UNDERPAID, InvoiceStatus.EXPIRED, InvoiceStatus.CANCELLED)
#: A sandbox bank account that consents with the OTP `sandbox.SANDBOX_ONEPIPE_OTP`.
SANDBOX_ACCOUNT = {"account_number": "0123456789", "bank_code": "058"}


@contextlib.contextmanager
def _as_history() -> Iterator[None]:
    """Everything in the block happens in one transaction, and its transitions count as announced."""
    outboxes = (InvoiceStatusChange, HoldStatusChange, ConsentStatusChange)
    with transaction.atomic():
        before = {model: model.objects.aggregate(last=Max("pk"))["last"] or 0 for model in outboxes}
        yield
        for model, last in before.items():
            model.objects.filter(pk__gt=last, announced_at__isnull=True).update(announced_at=timezone.now())


class _CreateOnly(factory.django.DjangoModelFactory):
    class Meta:
        abstract = True

    @classmethod
    def _build(cls, model_class: type, *args: Any, **kwargs: Any) -> Any:
        raise TypeError(f"{cls.__name__} only creates: the object must exist at the (sandbox) provider too.")

    #: Each factory's own way of making the object, from its declarations (keyword arguments).
    _make: Callable[..., Any]

    @classmethod
    def _create(cls, model_class: type, *args: Any, **kwargs: Any) -> Any:
        require_sandbox(cls.__name__)
        with _as_history():
            return cls._make(**kwargs)


def _drive(invoice: Invoice, status: str, processor: str | None, by: int) -> None:
    """Bring the sandbox's invoice to `status` as its payer (or the shop, to cancel) would."""
    rid = invoice.remote_id
    if status not in INVOICE_STATUSES:
        raise ValueError(f"InvoiceFactory makes invoices that are one of {', '.join(INVOICE_STATUSES)}; "
                         f"not {status!r}.")
    if processor or status in {InvoiceStatus.PROCESSING, InvoiceStatus.PAID, InvoiceStatus.OVERPAID,
                                InvoiceStatus.UNDERPAID}:
        sandbox.choose_processor(rid, processor or "native")
    if status == InvoiceStatus.CANCELLED:
        invoices.cancel(invoice)
    elif status == InvoiceStatus.PAID:
        sandbox.pay(rid)
    elif status == InvoiceStatus.OVERPAID:
        sandbox.overpay(rid, by)
    elif status == InvoiceStatus.UNDERPAID:
        sandbox.underpay(rid, by)
    elif status == InvoiceStatus.EXPIRED:
        sandbox.expire(rid)


class InvoiceFactory(_CreateOnly):
    """`InvoiceFactory(order=order, amount=1250, status="paid", processor="native_bitcoin", by=100)`.

    `by` is how much an overpaid or underpaid invoice is off. Traits: `paid`, `overpaid`,
    `underpaid`, `expired`, `cancelled` (e.g. `InvoiceFactory(paid=True)`).
    """

    class Meta:
        model = Invoice

    class Params:
        paid = factory.Trait(status=InvoiceStatus.PAID)
        overpaid = factory.Trait(status=InvoiceStatus.OVERPAID)
        underpaid = factory.Trait(status=InvoiceStatus.UNDERPAID)
        expired = factory.Trait(status=InvoiceStatus.EXPIRED)
        cancelled = factory.Trait(status=InvoiceStatus.CANCELLED)

    order = None
    amount = 1250
    description = factory.Sequence(lambda n: f"Test order {n}")
    payer_email = ""
    status = InvoiceStatus.INITIATED
    processor = None
    by = 100

    @classmethod
    def _make(cls, *, order: Any, amount: int, status: str, processor: str | None,
                by: int, **fields: Any) -> Invoice:
        invoice = invoices.create_for(order, amount=amount, allow_another=True, **fields)
        _drive(invoice, status, processor, by)
        invoices.sync(invoice, source="factory", transactions=True)
        invoice.refresh_from_db()
        if invoice.status != status:
            raise ValueError(f"InvoiceFactory(status={status!r}, processor={processor!r}) made a {invoice.status} "
                             "invoice (choosing a processor makes an invoice processing).")
        return invoice


class QuoteFactory(_CreateOnly):
    """The payer chose `processor` for `invoice`: the quote the provider made for it, mirrored."""

    class Meta:
        model = Quote

    invoice = factory.SubFactory(InvoiceFactory)
    processor = "native"

    @classmethod
    def _make(cls, *, invoice: Invoice, processor: str) -> Quote:
        payments.set_processor(invoice, processor, source="factory")
        invoice.refresh_from_db()
        return invoice.quotes.get(processor=processor)


class InvoiceTransactionFactory(_CreateOnly):
    """A payment of `amount` (default: what is owed) on `invoice`; with `confirmations`, a bitcoin deposit
    seen with that many confirmations (pending below `sandbox.CONFIRMATIONS_REQUIRED`)."""

    class Meta:
        model = InvoiceTransaction

    invoice = factory.SubFactory(InvoiceFactory)
    amount = None
    confirmations = None

    @classmethod
    def _make(cls, *, invoice: Invoice, amount: int | None,
                confirmations: int | None) -> InvoiceTransaction:
        if confirmations is None:
            sandbox.pay(invoice.remote_id, amount)
        else:
            sandbox.crypto_deposit(invoice.remote_id, amount, confirmations=confirmations)
        state = sandbox.get_state()
        with state.transaction() as data:
            code = data["transactions"][invoice.remote_id][-1]["rehive_code"]
        invoices.sync(invoice, source="factory", transactions=True)
        invoice.refresh_from_db()
        return invoice.transactions.get(code=code)


class HoldConsentFactory(_CreateOnly):
    """A customer's consent to hold funds, `active` (confirmed with the sandbox's OTP) by default, or
    `waiting_for_otp`."""

    class Meta:
        model = HoldConsent

    auth_type = "bank.account"
    credentials = factory.LazyFunction(lambda: dict(SANDBOX_ACCOUNT))
    customer = factory.Sequence(lambda n: {"firstname": "Uju", "surname": "Usmanu", "email": f"uju{n}@example.com",
                                           "mobile_no": "2348022222208"})
    order = None
    owner = None
    amount = 100
    status = HoldConsent.Status.ACTIVE

    @classmethod
    def _make(cls, *, status: str, **fields: Any) -> HoldConsent:
        if status not in {HoldConsent.Status.ACTIVE, HoldConsent.Status.WAITING_FOR_OTP}:
            raise ValueError(f"HoldConsentFactory makes active or waiting_for_otp consents; not {status!r}.")
        consent = holds.request_consent(**fields)
        if status == HoldConsent.Status.ACTIVE:
            consent = holds.confirm_consent(consent, sandbox.SANDBOX_ONEPIPE_OTP)
        if consent.status != status:
            raise ValueError(f"The sandbox left the consent {consent.status}, not {status}: {consent.error}")
        return consent


class HoldFactory(_CreateOnly):
    """Funds held on an active consent: `placed` by default, or `released` (by the shop) or `expired`
    (the provider let it lapse)."""

    class Meta:
        model = Hold

    consent = factory.SubFactory(HoldConsentFactory)
    amount = 5000
    description = "Deposit"
    status = Hold.Status.PLACED

    @classmethod
    def _make(cls, *, consent: HoldConsent, amount: int, description: str,
                status: str) -> Hold:
        if status not in {Hold.Status.PLACED, Hold.Status.RELEASED, Hold.Status.EXPIRED}:
            raise ValueError(f"HoldFactory makes placed, released or expired holds; not {status!r}.")
        hold = holds.place_hold(consent, amount, description=description)
        if status == Hold.Status.RELEASED:
            hold = holds.release_hold(hold)
        elif status == Hold.Status.EXPIRED:
            sandbox.expire_hold(hold.transaction_ref)
            hold = holds.refresh_hold(hold, source="factory")
        return hold
