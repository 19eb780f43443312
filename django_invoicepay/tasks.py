"""The polling work as tasks on Django's tasks framework, to run on the shop's own workers.

`django.tasks` on Django 6; the `django-tasks` backport (extra `django-invoicepay[tasks]`) on 5.2.
Enqueue `sync_invoices` periodically (or from your scheduler); `sync_invoice` refreshes one.
"""

from __future__ import annotations

try:
    from django.tasks import task
except ImportError:  # Django 5.2
    try:
        from django_tasks import task
    except ImportError:  # pragma: no cover - neither is installed
        task = None

from .models import Invoice
from .polling import sweep

if task is not None:

    @task
    def sync_invoices(statuses: list[str] | None = None, concurrency: int = 4) -> dict:
        """One polling sweep; returns its counts (polled, changed, unchanged, failed, seconds)."""
        return sweep(statuses=statuses or (), concurrency=concurrency).as_dict()

    @task
    def sync_invoice(invoice_id: int) -> str:
        """Refresh one invoice now; returns its status."""
        from .invoices import sync

        return sync(Invoice.objects.get(pk=invoice_id), source="task").status
