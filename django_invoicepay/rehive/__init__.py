"""Rehive (and white-label, e.g. Plue) invoice services: wire format and HTTP client.

Knows nothing about this app's models or settings; `django_invoicepay.clients`
builds a configured client.
"""

from .client import RehiveClient
from .payloads import InvoiceData, ProcessorData, QuoteData, TransactionData

__all__ = ["InvoiceData", "ProcessorData", "QuoteData", "RehiveClient", "TransactionData"]
