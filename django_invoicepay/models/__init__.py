from .invoices import Invoice, InvoiceStatusChange, InvoiceTransaction, Quote
from .polling import PollSchedule
from .refunds import Refund

__all__ = ["Invoice", "InvoiceStatusChange", "InvoiceTransaction", "PollSchedule", "Quote", "Refund"]
