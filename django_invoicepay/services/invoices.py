"""Invoice services: the only code that changes an invoice's state.

One path applies a provider payload (`apply_invoice`): under a row lock it ignores
payloads older than what is stored (the provider's `updated`), copies the fields,
upserts quotes and transactions in a fixed number of queries, records the
transition, moves the order, and sends the public signals on commit, once per real
transition. Creating, syncing and cancelling all end in that path.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from django.contrib.contenttypes.models import ContentType
from django.db import OperationalError, connection, models, transaction
from django.utils import timezone

from ..clients import rehive_client
from ..errors import OpenInvoiceExists, ProviderBadResponse
from ..models import Invoice, InvoiceStatusChange
from ..money import whole_minor_units
from ..orders import follow_invoice, get_order_adapter
from ..rehive.payloads import InvoiceData, TransactionData, to_ms
from ..statuses import InvoiceStatus
from . import announcements
from .mirroring import assign, invoice_values, is_newer, upsert_transactions, write_quotes

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
        assign(invoice, invoice_values(data))
        invoice.save()
        write_quotes(invoice, data.quotes)
        InvoiceStatusChange.objects.create(  # the shop made it: nothing to announce
            invoice=invoice, from_status="", to_status=invoice.status, source="create",
            remote_updated=data.updated, announced_at=timezone.now(),
        )
    logger.info("Created invoice %s for order %s (%s)", data.id, getattr(order, "pk", None), data.status)
    return invoice


# -- syncing ----------------------------------------------------------------------------------


def sync(invoice: Invoice, *, source: str = "sync", transactions: bool | None = None,
         also: Callable[[], None] | None = None) -> Invoice:
    """Re-fetch the invoice and apply it; its transactions too while deposits are in flight.

    An unchanged invoice, and one whose payload says all that changed, costs one HTTP call
    (when transactions are fetched: docs/polling.md#transactions).
    Returns the updated row (the argument is not modified). `also`: see `apply_invoice`.
    """
    data, txs = fetch(invoice, transactions=transactions)
    return apply_invoice(data, source=source, transactions=txs, current=invoice, also=also) or invoice


def fetch(invoice: Invoice, *, transactions: bool | None = None) -> tuple[InvoiceData, list[TransactionData] | None]:
    """The provider's view of `invoice` (HTTP only: it touches no database, so pollers run it in
    worker threads)."""
    client = rehive_client()
    data = client.get_invoice(invoice.remote_id)
    if transactions is None:
        transactions = deposits_in_flight(invoice, data)
    txs = client.list_invoice_transactions(invoice.remote_id) if transactions else None
    return data, txs


def deposits_in_flight(invoice: Invoice, data: InvoiceData) -> bool:
    """Whether the transactions must be fetched too: a quote has deposits pending at the provider (their
    confirmations count up, the payer's page shows them), or had when last mirrored (so the pending
    transactions stored then are settled). Otherwise the invoice's quotes say what changed: paid and
    pending totals, statuses. Read from the stored payload, not the quote rows: no query."""
    try:
        stored = InvoiceData.parse(invoice.raw).quotes if invoice.raw else ()
    except ProviderBadResponse:  # not a payload this app wrote: fetch them, to be sure
        return True
    return any(q.total_pending > 0 for q in (*stored, *data.quotes))


def cancel(invoice: Invoice, *, source: str = "cancel") -> Invoice:
    data = rehive_client().cancel_invoice(invoice.remote_id)
    return apply_invoice(data, source=source) or invoice


def apply_invoice(
    data: InvoiceData,
    *,
    source: str,
    transactions: Sequence[TransactionData] | None = None,
    current: Invoice | None = None,
    also: Callable[[], None] | None = None,
) -> Invoice | None:
    """Apply a provider payload to the mirror. The one path that changes an invoice's state.

    `current` is the row as the caller last read it (read here when not given); it is only trusted
    where the write checks it (`_swap`). `also` runs inside the transaction that writes the payload
    (not when nothing is to be written), so that what brought it, e.g. the webhook delivery, is stored in
    the same commit. Returns the updated invoice, or None when no local invoice has this remote id.
    """
    if current is None:
        current = Invoice.objects.filter(remote_id=data.id).first()
    if current is None:
        logger.info("Ignored a payload for unknown invoice %s (from %s)", data.id, source)
        return None
    if transactions is None and not is_newer(data.updated, current.remote_updated):
        # Not newer than what is stored (a duplicate or a late delivery): nothing to write, so no
        # lock either. `remote_updated` only grows, so the locked check would say the same.
        logger.debug("Ignored a stale payload for invoice %s (from %s)", data.id, source)
        return current
    # Read with the row (`with_announcing_state`): no earlier transition waits for its signals. Used once:
    # the instance may be kept (a receiver's) and synced again later, when it no longer holds.
    waiting = current.__dict__.pop("has_unannounced", None)  # a bool, or 0/1 from a raw query; None: unknown
    alone = waiting is not None and not waiting
    for attempt in range(DEADLOCK_RETRIES + 1):
        try:
            return _apply_once(current, data, source, transactions, also, alone=alone and not attempt)
        except OperationalError as exc:
            # The database broke a deadlock by rolling this transaction back and asks for it to be run again
            # (MariaDB under concurrent upserts); inside a caller's transaction only the caller can.
            if not (deadlocked(exc) and transaction.get_autocommit() and attempt < DEADLOCK_RETRIES):
                raise
            logger.info("Invoice %s: the database broke a deadlock; applying again (from %s)", data.id, source)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


#: How many times a transaction the database rolled back to break a deadlock is run again.
DEADLOCK_RETRIES = 3


def deadlocked(exc: OperationalError) -> bool:
    """Whether the database rolled the transaction back to break a deadlock (MySQL/MariaDB 1213;
    PostgreSQL 40P01, or 40001 for a serialization failure)."""
    code = exc.args[0] if exc.args else None
    return code == 1213 or getattr(exc.__cause__, "sqlstate", None) in ("40P01", "40001")


def _apply_once(current: Invoice, data: InvoiceData, source: str, transactions: Sequence[TransactionData] | None,
                also: Callable[[], None] | None, *, alone: bool) -> Invoice | None:
    with transaction.atomic():
        if also is not None:
            also()
        swapped = _swap(current, data) if transactions is None else None
        locked = (swapped, current.status) if swapped else _locked(current.pk, data, source)
        if locked is None:  # deleted since the read above
            return None
        invoice, old_status = locked
        if transactions is not None:
            upsert_transactions(invoice, transactions)
        if invoice.status != old_status:
            _record_transition(invoice, old_status, source, data, claimed=swapped is not None and alone)
        return invoice


def _swap(current: Invoice, data: InvoiceData) -> Invoice | None:
    """Write a newer payload with one conditional UPDATE instead of re-reading the row under a lock.

    It applies only while the row still has the status and provider time `current` has: then no
    other apply came in between, and the UPDATE holds the row's lock until commit, as the locked
    read would. None when the row moved meanwhile or either time is missing: the locked path then.
    """
    if data.updated is None or current.remote_updated is None:
        return None
    invoice = copy.copy(current)
    invoice.__dict__.pop("has_unannounced", None)  # true of `current` as read, not of what it becomes
    invoice._prefetched_objects_cache = {}  # type: ignore[attr-defined]  # the copy's own, not the caller's
    changed = assign(invoice, invoice_values(data))  # remote_updated at least: the payload is newer
    invoice.updated_at = timezone.now()
    values = {name: getattr(invoice, name) for name in [*changed, "updated_at"]}
    row = Invoice.objects.filter(pk=current.pk, status=current.status, remote_updated=current.remote_updated)
    if not row.update(**values):
        return None
    write_quotes(invoice, data.quotes)
    return invoice


def _locked(pk: int, data: InvoiceData, source: str) -> tuple[Invoice, str] | None:
    """The row read again under its lock, with the payload applied when it is newer than the row;
    and the status it had."""
    invoice = Invoice.objects.select_for_update().filter(pk=pk).first()
    if invoice is None:
        return None
    old_status = invoice.status
    if is_newer(data.updated, invoice.remote_updated):
        changed = assign(invoice, invoice_values(data))
        if changed:
            invoice.save(update_fields=[*changed, "updated_at"])
        write_quotes(invoice, data.quotes)
    else:
        logger.debug("Ignored a stale payload for invoice %s (from %s)", data.id, source)
    return invoice, old_status


def _record_transition(invoice: Invoice, old_status: str, source: str, data: InvoiceData, *, claimed: bool) -> None:
    """Inside the invoice's transaction: the history row (the signals' outbox), then the order.

    The signals go out after commit (`announcements`), at least once, with the row's transition id.
    `claimed`: no earlier transition of this invoice is waiting to be announced.
    """
    new_status = invoice.status
    if new_status not in InvoiceStatus.values:
        logger.warning("Invoice %s has a status this app does not know: %r", invoice.remote_id, new_status)
    amount: int | None = None  # read from the quotes only where the signal carries it
    if new_status == InvoiceStatus.OVERPAID:
        amount = invoice.overpaid_by
    elif new_status == InvoiceStatus.UNDERPAID:
        amount = invoice.outstanding
    change = announcements.record(
        announcements.INVOICES, invoice, claimed=claimed, from_status=old_status, to_status=new_status,
        source=source, remote_updated=data.updated, amount=amount,
    )
    follow_invoice(invoice, new_status)
    logger.info("Invoice %s: %s -> %s (from %s)", invoice.remote_id, old_status, new_status, source)
    announcements.announce_on_commit(announcements.INVOICES, invoice, change if claimed else None)
