"""django-invoicepay: Rehive-style invoices and OnePipe holds for Django shops."""

__version__ = "0.1.0"
