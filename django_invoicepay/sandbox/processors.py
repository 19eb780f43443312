"""The sandbox business's payment processors, its quotes, and how payments move statuses.

Shapes follow the real payment-requests schema (`rehive_subtype`, `deposit_details`,
currency objects, ms timestamps). Values are made up but deterministic per invoice.
"""

from __future__ import annotations

import hashlib
from typing import Any

from ..statuses import InvoiceStatus

BUSINESS_CURRENCY = {"code": "USD", "divisibility": 2, "symbol": "$", "unit": "dollar"}
BTC = {"code": "BTC", "divisibility": 8, "symbol": "₿", "unit": "bitcoin"}
# 1 BTC = 50,000.00 in the business currency: an integer rate, so quotes never round through floats.
BTC_RATE_MAJOR = 50_000
CONFIRMATIONS_REQUIRED = 3

PROCESSORS: dict[str, dict[str, Any]] = {
    "native": {
        "unique_string_name": "native",
        "name": "Wallet balance",
        "type": "wallet",
        "native": True,
        "rehive_subtype": None,
        "logo": None,
        "description": "Pay from your wallet balance: scan the QR code or confirm with an SMS code.",
        "processing_description": "Waiting for the payment from your wallet.",
    },
    "native_bitcoin": {
        "unique_string_name": "native_bitcoin",
        "name": "Bitcoin",
        "type": "crypto",
        "native": True,
        "rehive_subtype": "deposit_crypto",
        "logo": None,
        "description": "Send bitcoin to a one-off address.",
        "processing_description": "Waiting for your bitcoin transaction and its confirmations.",
    },
    "bank_transfer": {
        "unique_string_name": "bank_transfer",
        "name": "Bank transfer",
        "type": "bank",
        "native": False,
        "rehive_subtype": None,
        "logo": None,
        "description": "Pay by EFT from your bank using the reference shown.",
        "processing_description": "Waiting for your bank transfer to arrive.",
    },
}

OPEN_QUOTE_STATUSES = {"pending", "processing", "underpaid"}
FINAL_INVOICE_STATUSES = InvoiceStatus.FINAL


def _digest(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()


def _bitcoin_address(seed: str) -> str:
    alphabet = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
    number = int(_digest("btc", seed), 16)
    chars: list[str] = []
    while len(chars) < 33:
        number, rest = divmod(number, len(alphabet))
        chars.append(alphabet[rest])
    return "1" + "".join(chars)


def quote_amount(invoice: dict, processor: str) -> tuple[int, dict]:
    """The amount and currency a processor quotes for the invoice (integers only)."""
    currency = invoice["request_currency"]
    if processor == "native_bitcoin":
        # ceil(amount * 10^8 / (rate * 10^divisibility)) in satoshis
        denominator = BTC_RATE_MAJOR * 10 ** currency["divisibility"]
        sats = -(-invoice["request_amount"] * 10**8 // denominator)
        return sats, dict(BTC)
    return invoice["request_amount"], dict(currency)


def deposit_details(invoice: dict, processor: str, reference: str) -> dict:
    if processor == "native_bitcoin":
        return {"public_address": reference}
    if processor == "bank_transfer":
        return {
            "reference": reference,
            "bank_name": "Sandbox Bank",
            "account_name": "Sandbox Shop",
            "account_number": "62012345678",
            "branch_code": "250655",
        }
    return {}


def make_quote(quote_id: int, invoice: dict, processor: str, now_ms: int) -> dict:
    amount, currency = quote_amount(invoice, processor)
    if processor == "native_bitcoin":
        reference = _bitcoin_address(f"{invoice['id']}:{quote_id}")
    elif processor == "bank_transfer":
        reference = "PAY" + _digest("bank", invoice["id"])[:8].upper()
    else:
        reference = _digest("native", invoice["id"], str(quote_id))[:32]
    return {
        "id": quote_id,
        "request": invoice["id"],
        "reference": reference,
        "deposit_details": deposit_details(invoice, processor, reference),
        "payment_processor": dict(PROCESSORS[processor]),
        "currency": currency,
        "amount": amount,
        "total_paid": 0,
        "total_pending": 0,
        "expiration_date": invoice.get("expiration_date"),
        "status": "processing",
        "conversion_quote": {"status": "accepted", "rate": str(BTC_RATE_MAJOR)}
        if processor == "native_bitcoin"
        else None,
        "account": invoice.get("account"),
        "created": now_ms,
        "updated": now_ms,
    }


def quote_status(quote: dict) -> str:
    paid, amount = quote["total_paid"], quote["amount"]
    if paid == 0:
        return "processing"
    if paid < amount:
        return "underpaid"
    return "paid" if paid == amount else "overpaid"


def settle(invoice: dict, quote: dict, now_ms: int) -> None:
    """Recompute the quote's and the invoice's status after money moved on the quote."""
    quote["status"] = quote_status(quote)
    quote["updated"] = now_ms
    invoice["status"] = quote["status"]
    invoice["updated"] = now_ms
