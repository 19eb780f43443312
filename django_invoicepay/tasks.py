"""Background work on Django's tasks framework, to run on the shop's own workers.

`django.tasks` on Django 6; the `django-tasks` backport (extra `django-invoicepay[tasks]`) on 5.2.
Enqueue `sync_invoices` periodically (or from your scheduler); `sync_invoice` refreshes one;
webhook deliveries are processed by `process_webhook` when a queueing backend is configured.
Workers, backends and schedules: docs/tasks.md.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # django-stubs describes django.tasks (on 5.2 too); the backport has the same API
    from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task, task_backends
else:
    try:
        from django.tasks import DEFAULT_TASK_BACKEND_ALIAS, task, task_backends
    except ImportError:  # Django 5.2
        try:
            from django_tasks import DEFAULT_TASK_BACKEND_ALIAS, task, task_backends
        except ImportError:  # pragma: no cover - neither is installed
            task = task_backends = None
            DEFAULT_TASK_BACKEND_ALIAS = "default"

from .models import Invoice
from .services.polling import sweep
from .webhooks import intake


def queueing() -> bool:
    """True when TASKS names a backend that runs tasks elsewhere (not the immediate one)."""
    if task is None or task_backends is None:
        return False
    return type(task_backends[DEFAULT_TASK_BACKEND_ALIAS]).__name__ != "ImmediateBackend"


if task is not None:

    @task
    def sync_invoices(statuses: list[str] | None = None, concurrency: int = 4) -> dict:
        """One polling sweep, the same as `invoicepay_sync` runs: it also finishes unfinished webhook deliveries,
        sends signals a dead process left unsent and refreshes open holds; returns its counts."""
        return sweep(statuses=statuses or (), concurrency=concurrency).as_dict()

    @task
    def sync_invoice(invoice_id: int) -> str:
        """Refresh one invoice now; returns its status."""
        from .services.invoices import sync

        return sync(Invoice.objects.get(pk=invoice_id), source="task").status

    @task
    def process_webhook(delivery_id: int) -> str:
        """Process a stored delivery unless it is finished or another attempt holds it; returns the outcome."""
        try:
            return intake.claim_and_process(delivery_id)
        except intake.ProcessingFailed:
            return "failed"  # recorded on the delivery; the sweep retries it with backoff

    @task
    def prune_webhook_deliveries() -> int:
        """Delete webhook deliveries older than WEBHOOK_RETENTION_DAYS; returns how many. Enqueue it daily."""
        from .webhooks import retention

        return retention.prune()


def enqueue_webhook(delivery_id: int) -> bool:
    """Queue a stored delivery on the task backend, when one runs tasks elsewhere (the intake then answers
    the provider at once); False when there is none, and the request processes it itself."""
    if not queueing():
        return False
    process_webhook.enqueue(delivery_id)
    return True


def register_rq_cron(*, sync_every: int = 60, prune_cron: str = "17 3 * * *",
                     backend: str = DEFAULT_TASK_BACKEND_ALIAS) -> None:
    """Schedule the sweep every `sync_every` seconds and the daily prune with RQ's own cron: call it from the
    file `manage.py rqcron <file>` loads (django-tasks-rq; docs/tasks.md).

    RQ's cron enqueues a plain function: it is given the task's function, whose import path is the task
    itself (so the worker's `django_tasks_rq.Job` runs the task), and the job names the TASKS alias the
    task result needs."""
    from rq import cron

    meta = {"backend_name": backend}
    cron.register(sync_invoices.func, sync_invoices.queue_name, interval=sync_every, meta=meta)
    cron.register(prune_webhook_deliveries.func, prune_webhook_deliveries.queue_name, cron=prune_cron, meta=meta)
