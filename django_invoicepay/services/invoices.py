"""Invoice services: the only code that changes an invoice's state.

One path applies a provider payload (`apply_invoice`): under a row lock it ignores
payloads older than what is stored (the provider's `updated`), copies the fields,
upserts quotes and transactions in a fixed number of queries, records the
transition, moves the order, and sends the public signals on commit, once per real
transition. Creating, syncing and cancelling all end in that path.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from django.contrib.contenttypes.models import ContentType
from django.db import connection, models, transaction
from django.utils import timezone

from ..clients import rehive_client
from ..errors import OpenInvoiceExists
from ..models import Invoice, InvoiceStatusChange, InvoiceTransaction, Quote
from ..money import whole_minor_units
from ..orders import follow_invoice, get_order_adapter
from ..rehive.payloads import InvoiceData, QuoteData, TransactionData, to_ms
from ..statuses import InvoiceStatus
from . import announcements

logger = logging.getLogger("django_invoicepay.invoices")


# -- creating ---------------------------------------------------------------------------------


def _line_items(items: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    lines = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or not item.get("name"):
            raise ValueError(f"items[{index}] needs at least a name and a price")
        lines.append(
            {
                "name": str(item["name"]),
                "quantity": whole_minor_units(item.get("quantity", 1), f"items[{index}].quantity", minimum=1),
                "price": whole_minor_units(item.get("price"), f"items[{index}].price", minimum=0),
            }
        )
    return lines


def create_for(
    order: models.Model | None,
    *,
    amount: int,
    description: str = "",
    payer_email: str = "",
    payer_mobile_number: str = "",
    items: Iterable[Mapping[str, Any]] = (),
    expires_at: datetime | None = None,
    due_at: datetime | None = None,
    return_url: str = "",
    metadata: Mapping[str, Any] | None = None,
    reference: str | None = None,
    renewal_of: Invoice | None = None,
    allow_another: bool = False,
    idempotency_key: str | None = None,
) -> Invoice:
    """Create the remote invoice for `order` and mirror it locally.

    `amount` and item prices are integers in minor units of the business's currency (no currency is
    sent; inferred: docs/reference/wire-format.md#rehive-invoice-currency).
    Items go to `metadata.service_business.items`; the order number (or `reference`) to
    `request_reference`. `renewal_of` links a renewal to the expired invoice it replaces.

    An order with an invoice that can still be paid gets no second one (a customer could pay
    both): `OpenInvoiceExists` says which, unless `allow_another=True`. On PostgreSQL and MySQL the
    order's row is locked while this is checked and the invoice created, so two requests at once
    cannot both pass.

    `idempotency_key` is sent as the POST's Idempotency-Key (default: a fresh one per call); a caller
    that retries the same creation across processes passes a stable one (see `renewals.renew`).
    """
    if reference is None:
        reference = get_order_adapter().reference(order) if order is not None else ""
    fields = _create_body(
        amount, request_reference=reference, description=description, payer_email=payer_email,
        payer_mobile_number=payer_mobile_number, return_url=return_url, expiration_date=to_ms(expires_at),
        due_date=to_ms(due_at), metadata=_metadata(metadata, items),
    )
    guarded = order is not None and not allow_another and renewal_of is None
    # The order's row stays locked through the provider call on databases with row locks; SQLite would
    # lock the whole database for that long, so there the check runs without a lock.
    locking = guarded and connection.features.has_select_for_update
    with transaction.atomic() if locking else contextlib.nullcontext():
        if guarded and order is not None:  # `guarded` implies an order; this says so to the type checker
            _refuse_a_second_open_invoice(order)
        data = rehive_client().create_invoice(fields, idempotency_key=idempotency_key)
        return _mirror_new(data, order, renewal_of)


def _create_body(amount: int, **optional: Any) -> dict[str, Any]:
    """The create POST's body: the amount, and every optional field that has a value."""
    body: dict[str, Any] = {"request_amount": whole_minor_units(amount, "amount", minimum=1)}
    body.update({key: value for key, value in optional.items() if value})
    return body


def _metadata(metadata: Mapping[str, Any] | None, items: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The invoice's metadata, with the order's line items in `service_business.items`."""
    meta = dict(metadata or {})
    lines = _line_items(items)
    if lines:
        meta["service_business"] = {**meta.get("service_business", {}), "items": lines}
    return meta


def _refuse_a_second_open_invoice(order: models.Model) -> None:
    type(order)._default_manager.select_for_update().filter(pk=order.pk).first()  # one creator at a time
    existing = Invoice.objects.for_order(order).open().order_by("-pk").first()
    if existing is not None:
        raise OpenInvoiceExists(existing)


def _mirror_new(data: InvoiceData, order: models.Model | None, renewal_of: Invoice | None) -> Invoice:
    with transaction.atomic():
        invoice = Invoice(remote_id=data.id, renewal_of=renewal_of)
        if order is not None:
            invoice.content_type = ContentType.objects.get_for_model(order)
            invoice.object_id = str(order.pk)
        _copy_fields(invoice, data)
        invoice.save()
        _upsert_quotes(invoice, data.quotes)
        InvoiceStatusChange.objects.create(  # the shop made it: nothing to announce
            invoice=invoice, from_status="", to_status=invoice.status, source="create",
            remote_updated=data.updated, announced_at=timezone.now(),
        )
    logger.info("Created invoice %s for order %s (%s)", data.id, getattr(order, "pk", None), data.status)
    return invoice


# -- syncing ----------------------------------------------------------------------------------


def sync(invoice: Invoice, *, source: str = "sync", transactions: bool | None = None) -> Invoice:
    """Re-fetch the invoice and apply it; its transactions too when they may have changed.

    Transactions change only when money moves, so by default they are fetched only when a
    quote has deposits pending (confirmations count up) or its paid total or the invoice's
    status differs from the mirror: an unchanged invoice costs one HTTP call.
    Returns the freshly locked and updated row (the argument is not modified).
    """
    data, txs = fetch(invoice, transactions=transactions)
    return apply_invoice(data, source=source, transactions=txs) or invoice


def fetch(invoice: Invoice, *, transactions: bool | None = None) -> tuple[InvoiceData, list[TransactionData] | None]:
    """The provider's view of `invoice` (HTTP only: with its quotes prefetched it touches no database,
    so pollers run it in worker threads)."""
    client = rehive_client()
    data = client.get_invoice(invoice.remote_id)
    if transactions is None:
        transactions = _money_moved(invoice, data)
    txs = client.list_invoice_transactions(invoice.remote_id) if transactions else None
    return data, txs


def _money_moved(invoice: Invoice, data: InvoiceData) -> bool:
    if data.status != invoice.status:
        return True
    paid = {quote.remote_id: quote.total_paid for quote in invoice.quotes.all()}
    return any(q.total_pending > 0 or paid.get(q.id) != q.total_paid for q in data.quotes)


def cancel(invoice: Invoice, *, source: str = "cancel") -> Invoice:
    data = rehive_client().cancel_invoice(invoice.remote_id)
    return apply_invoice(data, source=source) or invoice


def apply_invoice(
    data: InvoiceData,
    *,
    source: str,
    transactions: Sequence[TransactionData] | None = None,
) -> Invoice | None:
    """Apply a provider payload to the mirror. The one path that changes an invoice's state.

    Returns the updated invoice, or None when no local invoice has this remote id.
    """
    current = Invoice.objects.filter(remote_id=data.id).first()
    if current is None:
        logger.info("Ignored a payload for unknown invoice %s (from %s)", data.id, source)
        return None
    if transactions is None and not _is_newer(data.updated, current.remote_updated):
        # Not newer than what is stored (a duplicate or a late delivery): nothing to write, so no
        # lock either. `remote_updated` only grows, so the locked check would say the same.
        logger.debug("Ignored a stale payload for invoice %s (from %s)", data.id, source)
        return current
    with transaction.atomic():
        invoice = Invoice.objects.select_for_update().filter(pk=current.pk).first()
        if invoice is None:  # deleted since the read above
            return None
        old_status = invoice.status
        if _is_newer(data.updated, invoice.remote_updated):
            changed = _copy_fields(invoice, data)
            if changed:
                invoice.save(update_fields=[*changed, "updated_at"])
            _upsert_quotes(invoice, data.quotes)
        else:
            logger.debug("Ignored a stale payload for invoice %s (from %s)", data.id, source)
        if transactions is not None:
            _upsert_transactions(invoice, transactions)
        if invoice.status != old_status:
            _record_transition(invoice, old_status, source, data)
        return invoice


def _is_newer(incoming: datetime | None, stored: datetime | None) -> bool:
    """A payload is applied only when it is newer than what is stored (or either has no time)."""
    return incoming is None or stored is None or incoming > stored


def _record_transition(invoice: Invoice, old_status: str, source: str, data: InvoiceData) -> None:
    """Inside the invoice's transaction: the history row (the signals' outbox), then the order.

    The signals go out after commit (`announcements`), at least once, with the row's transition id.
    """
    new_status = invoice.status
    if new_status not in InvoiceStatus.values:
        logger.warning("Invoice %s has a status this app does not know: %r", invoice.remote_id, new_status)
    amounts: dict[str, int] = {InvoiceStatus.OVERPAID: invoice.overpaid_by,
                               InvoiceStatus.UNDERPAID: invoice.outstanding}
    amount = amounts.get(new_status)
    InvoiceStatusChange.objects.create(
        invoice=invoice, from_status=old_status, to_status=new_status, source=source,
        remote_updated=data.updated, amount=amount,
    )
    follow_invoice(invoice, new_status)
    logger.info("Invoice %s: %s -> %s (from %s)", invoice.remote_id, old_status, new_status, source)
    announcements.announce_on_commit(announcements.INVOICES, invoice)


# -- copying payloads into rows ---------------------------------------------------------------


def _assign(obj: models.Model, values: Mapping[str, Any]) -> list[str]:
    """Set the values that differ; return their field names."""
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    return changed


def _copy_fields(invoice: Invoice, data: InvoiceData) -> list[str]:
    return _assign(
        invoice,
        {
            "reference": data.reference[:128],
            "request_reference": data.request_reference[:128],
            "status": data.status[:32],
            "request_amount": data.amount,
            "currency_code": data.currency.code,
            "currency_divisibility": data.currency.divisibility,
            "remote_user_id": data.user_id,
            "primary_processor": data.primary_processor,
            "payer_email": data.payer_email,
            "payer_mobile_number": data.payer_mobile_number,
            "description": data.description,
            "return_url": data.return_url[:500],
            "redirect_url": data.redirect_url[:500],
            "expires_at": data.expires_at,
            "due_at": data.due_at,
            "remote_created": data.created,
            "remote_updated": data.updated,
            "raw": data.raw,
        },
    )


def _quote_values(quote: QuoteData) -> dict[str, Any]:
    return {
        "reference": quote.reference[:255],
        "status": quote.status[:32],
        "processor": quote.processor.unique_string_name,
        "processor_name": quote.processor.name,
        "processor_type": quote.processor.type,
        "processor_native": quote.processor.native,
        "processor_subtype": quote.processor.subtype,
        "deposit_details": quote.deposit_details,
        "currency_code": quote.currency.code,
        "currency_divisibility": quote.currency.divisibility,
        "amount": quote.amount,
        "total_paid": quote.total_paid,
        "total_pending": quote.total_pending,
        "expires_at": quote.expires_at,
        "remote_updated": quote.updated,
        "raw": quote.raw,
    }


def _transaction_values(tx: TransactionData) -> dict[str, Any]:
    return {
        "quote_remote_id": tx.quote_id,
        "settled": tx.settled,
        "status": tx.status[:32],
        "tx_type": tx.tx_type,
        "subtype": tx.subtype,
        "amount": tx.amount,
        "fee": tx.fee,
        "total_amount": tx.total_amount,
        "currency_code": tx.currency.code,
        "currency_divisibility": tx.currency.divisibility,
        "service": tx.service,
        "confirmations": tx.confirmations,
        "tx_hash": tx.tx_hash[:255],
        "remote_created": tx.created,
        "remote_updated": tx.updated,
        "raw": tx.raw,
    }


_Mirrored = TypeVar("_Mirrored", Quote, InvoiceTransaction)


def _upsert(
    model: type[_Mirrored],
    existing: dict[Any, _Mirrored],
    incoming: dict[Any, tuple[dict[str, Any], datetime | None]],
    make: Callable[[Any, dict[str, Any]], _Mirrored],
) -> None:
    """Insert new rows, update changed ones, skip stale and unchanged: at most three queries."""
    to_create: list[_Mirrored] = []
    to_update: list[_Mirrored] = []
    fields: set[str] = set()
    for key, (values, updated) in incoming.items():
        row = existing.get(key)
        if row is None:
            to_create.append(make(key, values))
        elif _is_newer(updated, row.remote_updated):
            changed = _assign(row, values)
            if changed:
                to_update.append(row)
                fields.update(changed)
    if to_create:
        model.objects.bulk_create(to_create)
    if to_update:
        model.objects.bulk_update(to_update, sorted(fields))


def _upsert_quotes(invoice: Invoice, quotes: Sequence[QuoteData]) -> None:
    if quotes:
        _upsert(
            Quote,
            {q.remote_id: q for q in invoice.quotes.all()},
            {q.id: (_quote_values(q), q.updated) for q in quotes},
            lambda key, values: Quote(invoice=invoice, remote_id=key, **values),
        )
    invoice.__dict__.pop("_quotes", None)


def _upsert_transactions(invoice: Invoice, transactions: Sequence[TransactionData]) -> None:
    if transactions:
        _upsert(
            InvoiceTransaction,
            {t.code: t for t in invoice.transactions.all()},
            {t.code: (_transaction_values(t), t.updated) for t in transactions},
            lambda key, values: InvoiceTransaction(invoice=invoice, code=key, **values),
        )
