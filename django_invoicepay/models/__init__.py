from ..statuses import InvoiceStatus
from .holds import ConsentStatusChange, Hold, HoldConsent, HoldStatusChange
from .invoices import Invoice, InvoiceStatusChange, InvoiceTransaction, Quote
from .polling import PollSchedule
from .refunds import Refund
from .webhooks import WebhookDelivery

__all__ = [
    "ConsentStatusChange",
    "Hold",
    "HoldConsent",
    "HoldStatusChange",
    "Invoice",
    "InvoiceStatus",
    "InvoiceStatusChange",
    "InvoiceTransaction",
    "PollSchedule",
    "Quote",
    "Refund",
    "WebhookDelivery",
]
