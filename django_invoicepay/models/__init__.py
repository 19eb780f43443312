from .holds import Hold, HoldConsent
from .invoices import Invoice, InvoiceStatusChange, InvoiceTransaction, Quote
from .polling import PollSchedule
from .refunds import Refund
from .webhooks import WebhookDelivery

__all__ = [
    "Hold",
    "HoldConsent",
    "Invoice",
    "InvoiceStatusChange",
    "InvoiceTransaction",
    "PollSchedule",
    "Quote",
    "Refund",
    "WebhookDelivery",
]
