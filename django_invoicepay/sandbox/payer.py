"""Payer actions: what a customer would do on the provider's side, to drive the sandbox.

Each action changes the simulated invoice as the real service would and bumps its
`updated` time, in one sandbox transaction (in a file store: all of it or, when it fails, none
of it). The shop then learns of it the usual way (`invoice.sync()`, polling, webhooks).
Amounts are minor units of the chosen quote's currency.
"""

from __future__ import annotations

import hashlib
import uuid

from ..statuses import InvoiceStatus
from .processors import (
    CONFIRMATIONS_REQUIRED,
    FINAL_INVOICE_STATUSES,
    PROCESSORS,
    make_quote,
    settle,
)
from .state import SandboxState, get_state


class SandboxActionError(ValueError):
    """The action is not possible in the invoice's current state; the message says why."""


def _invoice(state: SandboxState, invoice_id: str) -> dict:
    invoice = state.data["invoices"].get(str(invoice_id))  # inside the caller's transaction
    if invoice is None:
        raise SandboxActionError(f"The sandbox has no invoice {invoice_id}.")
    return invoice


def _open(invoice: dict) -> None:
    if invoice["status"] in FINAL_INVOICE_STATUSES:
        raise SandboxActionError(f"The invoice is {invoice['status']}: it takes no more payments.")


def primary_quote(invoice: dict) -> dict | None:
    name = invoice.get("primary_payment_processor")
    for quote in invoice["payment_processor_quotes"]:
        if quote["payment_processor"]["unique_string_name"] == name:
            return quote
    return None


def choose_processor(invoice_id: str, processor: str, *, state: SandboxState | None = None) -> dict:
    """The payer picks how to pay: a quote for that processor is made and becomes primary."""
    state = state or get_state()
    with state.transaction():
        invoice = _invoice(state, invoice_id)
        _open(invoice)
        if processor not in PROCESSORS:
            raise SandboxActionError(f"Unknown payment processor {processor!r}.")
        now = state.now_ms()
        invoice["primary_payment_processor"] = processor
        if primary_quote(invoice) is None:
            invoice["payment_processor_quotes"].append(
                make_quote(state.next_quote_id(), invoice, processor, now)
            )
        if invoice["status"] in InvoiceStatus.NEW:
            invoice["status"] = InvoiceStatus.PROCESSING.value
        invoice["updated"] = now
        return invoice


def _quote_for_payment(state: SandboxState, invoice_id: str, default: str) -> tuple[dict, dict]:
    invoice = _invoice(state, invoice_id)
    _open(invoice)
    if primary_quote(invoice) is None:
        choose_processor(invoice_id, default, state=state)
    quote = primary_quote(invoice)
    assert quote is not None  # choose_processor gave the invoice its quote
    return invoice, quote


def _transaction(invoice: dict, quote: dict, amount: int, *, status: str, now: int, block: dict) -> dict:
    code = str(uuid.uuid4())
    processor = quote["payment_processor"]
    metadata = {
        "service_payment_requests": {
            "request_id": invoice["id"],
            "payer_email": invoice.get("payer_email") or "",
            "sender_identifier": str(uuid.uuid4()),
        }
    }
    if block:
        metadata.update(block)
    return {
        "rehive_code": code,
        "settled": status == "Complete",
        "payment_processor_quote": quote["id"],
        "details": {
            "id": code,
            "collection": str(uuid.uuid4()),
            "tx_type": "credit",
            "subtype": processor.get("rehive_subtype") or "transfer",
            "note": "",
            "metadata": metadata,
            "status": status,
            "reference": None,
            "amount": amount,
            "fee": 0,
            "total_amount": amount,
            "currency": dict(quote["currency"]),
            "account": invoice.get("account"),
            "label": f"{processor['name']} payment",
            "created": now,
            "updated": now,
        },
    }


def pay(invoice_id: str, amount: int | None = None, *, state: SandboxState | None = None) -> dict:
    """The payer pays `amount` (default: what is still owed) on the primary quote; it settles at once."""
    state = state or get_state()
    with state.transaction() as data:
        invoice, quote = _quote_for_payment(state, invoice_id, "native")
        owed = max(quote["amount"] - quote["total_paid"], 0)
        amount = owed if amount is None else amount
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise SandboxActionError("A payment needs a positive whole amount in minor units.")
        now = state.now_ms()
        tx = _transaction(invoice, quote, amount, status="Complete", now=now, block={})
        data["transactions"].setdefault(invoice["id"], []).append(tx)
        quote["total_paid"] += amount
        settle(invoice, quote, now)
        return invoice


def overpay(invoice_id: str, by: int = 100, *, state: SandboxState | None = None) -> dict:
    state = state or get_state()
    with state.transaction():
        _, quote = _quote_for_payment(state, invoice_id, "native")
        return pay(invoice_id, quote["amount"] - quote["total_paid"] + by, state=state)


def underpay(invoice_id: str, by: int = 100, *, state: SandboxState | None = None) -> dict:
    state = state or get_state()
    with state.transaction():
        _, quote = _quote_for_payment(state, invoice_id, "native")
        owed = quote["amount"] - quote["total_paid"]
        if by >= owed:
            raise SandboxActionError("An underpayment must leave something owed and pay something.")
        return pay(invoice_id, owed - by, state=state)


def crypto_deposit(
    invoice_id: str,
    amount: int | None = None,
    *,
    confirmations: int = 0,
    state: SandboxState | None = None,
) -> dict:
    """A bitcoin deposit is seen with `confirmations`; it settles at CONFIRMATIONS_REQUIRED."""
    state = state or get_state()
    with state.transaction() as data:
        invoice = _invoice(state, invoice_id)
        quote = primary_quote(invoice)
        if quote is None or quote["payment_processor"]["type"] != "crypto":
            choose_processor(invoice_id, "native_bitcoin", state=state)
            quote = primary_quote(invoice)
            assert quote is not None  # choose_processor gave the invoice its quote
        _open(invoice)
        amount = max(quote["amount"] - quote["total_paid"] - quote["total_pending"], 1) if amount is None else amount
        now = state.now_ms()
        tx_hash = hashlib.sha256(f"{invoice['id']}:{now}".encode()).hexdigest()
        block = {"service_bitcoin": {"confirmations": str(confirmations), "tx_hash": tx_hash}}
        tx = _transaction(invoice, quote, amount, status="Pending", now=now, block=block)
        data["transactions"].setdefault(invoice["id"], []).append(tx)
        quote["total_pending"] += amount
        quote["updated"] = now
        invoice["updated"] = now
        if confirmations >= CONFIRMATIONS_REQUIRED:
            return confirm(invoice_id, tx["rehive_code"], confirmations=0, state=state)
        return invoice


def confirm(
    invoice_id: str, code: str | None = None, *, confirmations: int = 1, state: SandboxState | None = None
) -> dict:
    """Pending crypto deposits gain confirmations; at CONFIRMATIONS_REQUIRED they complete."""
    state = state or get_state()
    with state.transaction() as data:
        invoice = _invoice(state, invoice_id)
        pending = [
            tx
            for tx in data["transactions"].get(invoice["id"], [])
            if tx["details"]["status"] == "Pending" and (code is None or tx["rehive_code"] == code)
        ]
        if not pending:
            raise SandboxActionError("There is no pending deposit to confirm.")
        now = state.now_ms()
        for tx in pending:
            block = tx["details"]["metadata"]["service_bitcoin"]
            block["confirmations"] = str(int(block["confirmations"]) + confirmations)
            tx["details"]["updated"] = now
            if int(block["confirmations"]) >= CONFIRMATIONS_REQUIRED:
                tx["details"]["status"] = "Complete"
                tx["settled"] = True
                quote = next(
                    q for q in invoice["payment_processor_quotes"] if q["id"] == tx["payment_processor_quote"]
                )
                quote["total_pending"] -= tx["details"]["amount"]
                quote["total_paid"] += tx["details"]["amount"]
                settle(invoice, quote, now)
        invoice["updated"] = now
        return invoice


def expire(invoice_id: str, *, state: SandboxState | None = None) -> dict:
    """The invoice passes its expiry date unpaid."""
    state = state or get_state()
    with state.transaction():
        invoice = _invoice(state, invoice_id)
        _open(invoice)
        now = state.now_ms()
        invoice["status"] = InvoiceStatus.EXPIRED.value
        invoice["updated"] = now
        for quote in invoice["payment_processor_quotes"]:
            if quote["status"] in {"pending", "processing"}:
                quote["status"] = "expired"
                quote["updated"] = now
        return invoice
