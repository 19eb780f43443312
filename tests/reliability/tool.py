"""`python -m tests.reliability.tool create N | poll STOPFILE | report` under the reliability settings."""

from __future__ import annotations

import json
import os
import sys
import time


def main(argv: list[str]) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.reliability.settings")
    import django

    django.setup()
    command, *args = argv
    {"create": create, "poll": poll, "report": report}[command](*args)


def create(count: str) -> None:
    from shop.models import Order

    from django_invoicepay.models import Invoice

    made = []
    for n in range(int(count)):
        order = Order.objects.create(description=f"Reliability order {n}", total=1000 + n)
        invoice = Invoice.objects.create_for(order, amount=order.total, description=order.description)
        made.append({"remote_id": invoice.remote_id, "token": invoice.public_token})
    print(json.dumps(made))


def poll(stop_file: str) -> None:
    """Run the scheduled sweep twice a second (as an eager cron would) until told to stop."""
    from django_invoicepay.polling import sweep

    sweeps = polled = 0
    while not os.path.exists(stop_file):
        result = sweep(concurrency=4, batch=50)
        sweeps, polled = sweeps + 1, polled + result.polled
        time.sleep(0.5)
    print(json.dumps({"sweeps": sweeps, "polled": polled}))


def report() -> None:
    from django_invoicepay.models import Invoice, InvoiceStatusChange, WebhookDelivery

    invoices = {i.remote_id: {"status": i.status, "history": []} for i in Invoice.objects.all()}
    for change in InvoiceStatusChange.objects.select_related("invoice").order_by("invoice_id", "pk"):
        invoices[change.invoice.remote_id]["history"].append([change.from_status, change.to_status, change.source])
    deliveries = list(WebhookDelivery.objects.values("event_id", "status", "deliveries", "attempts", "body",
                                                     "headers", "error"))
    print(json.dumps({"invoices": invoices, "deliveries": deliveries}))


if __name__ == "__main__":
    main(sys.argv[1:])
