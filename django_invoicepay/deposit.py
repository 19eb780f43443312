"""What a payer needs to make a deposit: the primary quote's reference and deposit details,
with readable labels, whichever of the documented shapes the provider sent
(`{"reference": ...}`, `{"public_address": ...}` or `{}`: docs/reference/wire-format.md#rehive-deposit-details)."""

from __future__ import annotations

import json
from dataclasses import dataclass

from django.utils.translation import gettext_lazy as _

from .models import Invoice, InvoiceTransaction, Quote

LABELS = {
    "reference": _("Payment reference"),
    "public_address": _("Address"),
    "address": _("Address"),
    "account_number": _("Account number"),
    "account_name": _("Account holder"),
    "account_holder": _("Account holder"),
    "bank_name": _("Bank"),
    "bank": _("Bank"),
    "branch_code": _("Branch code"),
    "branch_name": _("Branch"),
    "swift": _("SWIFT / BIC"),
    "bic": _("SWIFT / BIC"),
    "swift_code": _("SWIFT / BIC"),
    "iban": _("IBAN"),
    "routing_number": _("Routing number"),
    "sort_code": _("Sort code"),
    "account_type": _("Account type"),
    "memo": _("Memo"),
    "tag": _("Tag"),
    "destination_tag": _("Destination tag"),
    "network": _("Network"),
    "currency": _("Currency"),
}
REFERENCE_LABELS = {"crypto": _("Send to this address"), "bank": _("Payment reference")}


def label_for(key: str) -> str:
    return str(LABELS.get(key) or key.replace("_", " ").replace("-", " ").strip().capitalize())


def _text(value: object) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@dataclass(frozen=True)
class DepositField:
    key: str
    label: str
    value: str


@dataclass(frozen=True)
class Deposit:
    quote: Quote
    reference: DepositField | None
    fields: list[DepositField]
    pending: list[InvoiceTransaction]


def deposit_for(invoice: Invoice) -> Deposit | None:
    """The primary quote's payment instructions, or None when the payer has not chosen yet."""
    quote = invoice.primary_quote
    if quote is None:
        return None
    reference = None
    if quote.reference:
        label = REFERENCE_LABELS.get(quote.processor_type, _("Reference"))
        reference = DepositField("reference", str(label), quote.reference)
    fields = [
        DepositField(key, label_for(key), _text(value))
        for key, value in (quote.deposit_details or {}).items()
        if value not in (None, "", [], {}) and _text(value) != quote.reference  # the reference is shown once
    ]
    return Deposit(quote=quote, reference=reference, fields=fields, pending=invoice.pending_transactions)
