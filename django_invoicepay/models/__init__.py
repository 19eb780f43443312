from .invoices import Invoice, InvoiceStatusChange, InvoiceTransaction, Quote

__all__ = ["Invoice", "InvoiceStatusChange", "InvoiceTransaction", "Quote"]
