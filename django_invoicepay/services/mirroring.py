"""Copying provider payloads into the mirror's rows: which columns a payload sets, and quotes and
transactions written in a fixed number of queries whatever their number (benchmarks/README.md).

Only `services.invoices.apply_invoice` (and creating an invoice) call these, inside the invoice's
transaction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from django.db import connection, models

from ..models import Invoice, InvoiceTransaction, Quote
from ..rehive.payloads import InvoiceData, QuoteData, TransactionData


def is_newer(incoming: datetime | None, stored: datetime | None) -> bool:
    """A payload is applied only when it is newer than what is stored (or either has no time)."""
    return incoming is None or stored is None or incoming > stored


def assign(obj: models.Model, values: Mapping[str, Any]) -> list[str]:
    """Set the values that differ; return their field names."""
    changed = [name for name, value in values.items() if getattr(obj, name) != value]
    for name in changed:
        setattr(obj, name, values[name])
    return changed


def invoice_values(data: InvoiceData) -> dict[str, Any]:
    """The invoice columns a provider payload sets."""
    return {
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
    }


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


def write_quotes(invoice: Invoice, quotes: Sequence[QuoteData]) -> None:
    """Insert or update the payload's quotes in one statement (an upsert on the invoice and quote id).

    No per-quote age check: quotes come inside their invoice's payload, which the caller has found
    newer than the stored invoice under its row lock, so they are the newest this shop has seen.
    """
    unique = list({q.id: q for q in quotes}.values())  # one row per quote id (the last one listed)
    if unique:
        values = [_quote_values(q) for q in unique]
        rows = [Quote(invoice=invoice, remote_id=q.id, **v) for q, v in zip(unique, values, strict=True)]
        targeted = connection.features.supports_update_conflicts_with_target  # not MySQL/MariaDB
        Quote.objects.bulk_create(rows, update_conflicts=True, update_fields=list(values[0]),
                                  unique_fields=("invoice", "remote_id") if targeted else None)
    invoice.__dict__.pop("_quotes", None)
    getattr(invoice, "_prefetched_objects_cache", {}).pop("quotes", None)  # read again when asked for


def upsert_transactions(invoice: Invoice, transactions: Sequence[TransactionData]) -> None:
    """Insert new transactions and update changed ones, skipping stale and unchanged: at most three queries.

    (Transactions come in their own list, which may be older than what is stored, so each is aged.)
    """
    if not transactions:
        return
    existing = {t.code: t for t in invoice.transactions.all()}
    to_create: list[InvoiceTransaction] = []
    to_update: list[InvoiceTransaction] = []
    fields: set[str] = set()
    for tx in transactions:
        values, row = _transaction_values(tx), existing.get(tx.code)
        if row is None:
            to_create.append(InvoiceTransaction(invoice=invoice, code=tx.code, **values))
        elif is_newer(tx.updated, row.remote_updated) and (changed := assign(row, values)):
            to_update.append(row)
            fields.update(changed)
    if to_create:
        InvoiceTransaction.objects.bulk_create(to_create)
    if to_update:
        InvoiceTransaction.objects.bulk_update(to_update, sorted(fields))
