"""An invoice's status in words, in the active language ("This invoice is paid" -> "Cette facture est payée").

The provider's status codes stay as they are wherever the app compares or stores them; only what a
person reads goes through `label`. The words carry the context "invoice status" so a translation
can agree them with "invoice" (e.g. French "payée", feminine) apart from a hold's "expired".
"""

from __future__ import annotations

from django.utils.translation import pgettext_lazy

#: Rehive's invoice statuses (docs/invoices.md) -> their words.
LABELS = {
    "draft": pgettext_lazy("invoice status", "draft"),
    "initiated": pgettext_lazy("invoice status", "initiated"),
    "processing": pgettext_lazy("invoice status", "processing"),
    "received": pgettext_lazy("invoice status", "received"),
    "paid": pgettext_lazy("invoice status", "paid"),
    "complete": pgettext_lazy("invoice status", "complete"),
    "late": pgettext_lazy("invoice status", "late"),
    "overpaid": pgettext_lazy("invoice status", "overpaid"),
    "underpaid": pgettext_lazy("invoice status", "underpaid"),
    "cancelled": pgettext_lazy("invoice status", "cancelled"),
    "expired": pgettext_lazy("invoice status", "expired"),
    "failed": pgettext_lazy("invoice status", "failed"),
}


def label(status: object) -> str:
    """`status` in words in the active language; a status this app does not know, as it is."""
    text = "" if status is None else str(status)
    word = LABELS.get(text.lower())
    return str(word) if word is not None else text
