"""Many workers applying the same and older payloads at once: one transition, one signal.

Runs on PostgreSQL and MariaDB (`make test-postgres`, `make test-mariadb`, and .ci/run);
SQLite serialises writers, so there the race cannot happen and the test is skipped.
"""

from __future__ import annotations

import random
import threading

import pytest
from django.db import connection

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice
from django_invoicepay.services.invoices import apply_invoice
from tests.conftest import requires_server_database

pytestmark = [pytest.mark.concurrency, requires_server_database(), pytest.mark.django_db(transaction=True)]

WORKERS = 8


def run_concurrently(jobs):
    barrier = threading.Barrier(len(jobs))
    errors = []

    def worker(job):
        try:
            barrier.wait()
            job()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()  # each thread has its own connection: leave none open

    threads = [threading.Thread(target=worker, args=(job,)) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []


def test_workers_racing_with_duplicate_and_stale_payloads(order, rehive, fired):
    invoices = [Invoice.objects.create_for(order, amount=1250, allow_another=True) for _ in range(3)]
    payloads = []
    for invoice in invoices:
        sandbox.choose_processor(invoice.remote_id, "native")
        processing = rehive.get_invoice(invoice.remote_id)
        sandbox.pay(invoice.remote_id)
        paid = rehive.get_invoice(invoice.remote_id)
        payloads += [processing, paid, paid, processing]
    jobs = [lambda p=p: apply_invoice(p, source="webhook") for p in payloads * 2]
    random.Random(7).shuffle(jobs)
    run_concurrently(jobs[:WORKERS])
    run_concurrently(jobs[WORKERS:])

    for invoice in invoices:
        invoice.refresh_from_db()
        assert invoice.status == "paid"
        history = list(invoice.status_changes.values_list("from_status", "to_status"))
        # A chain with no repeats: each row starts where the previous one ended.
        assert history[0] == ("", "initiated")
        assert all(prev[1] == nxt[0] for prev, nxt in zip(history, history[1:], strict=False))
        assert history[-1][1] == "paid"
        signals = [(kw["old_status"], kw["new_status"]) for name, kw in fired
                   if name == "invoice_status_changed" and kw["invoice"].pk == invoice.pk]
        assert signals == history[1:]


def test_one_payload_applied_by_every_worker_at_once_changes_state_once(order, rehive, fired):
    invoice = Invoice.objects.create_for(order, amount=1250)
    sandbox.pay(invoice.remote_id)
    paid = rehive.get_invoice(invoice.remote_id)
    run_concurrently([lambda: apply_invoice(paid, source="poll")] * WORKERS)
    invoice.refresh_from_db()
    assert list(invoice.status_changes.values_list("to_status", flat=True)) == ["initiated", "paid"]
    assert [name for name, _ in fired] == ["invoice_status_changed"]
    order.refresh_from_db()
    assert order.status == "completed"


def test_parallel_wrong_codes_never_reach_the_provider_more_than_the_limit(order, fresh_sandbox):
    from django_invoicepay.errors import OtpBusy, OtpLocked, ProviderRejected
    from django_invoicepay.services import payments

    invoice = Invoice.objects.create_for(order, amount=1250)
    sandbox.choose_processor(invoice.remote_id, "native")
    payments.set_payer(invoice, email="ann@example.com", mobile_number="+27821234567")
    outcomes = []

    def guess():  # an attacker who retries while another code is being checked
        for _ in range(2000):
            try:
                payments.submit_otp(Invoice.objects.get(pk=invoice.pk), "000000")
            except OtpBusy:
                continue
            except OtpLocked:
                outcomes.append("locked")
            except ProviderRejected:
                outcomes.append("wrong")
            return

    run_concurrently([guess] * 12)
    calls = [r for r in fresh_sandbox.requests if r["path"].endswith("otp_challenge/")]
    assert len(calls) == outcomes.count("wrong") == 5
    assert outcomes.count("locked") == 7
    invoice.refresh_from_db()
    assert invoice.otp_locked_until is not None


def test_two_pollers_at_once_fetch_each_invoice_once_and_signal_once(order, fresh_sandbox, fired):
    from collections import Counter

    from django_invoicepay.services.polling import sweep

    invoices = [Invoice.objects.create_for(order, amount=500 + i, allow_another=True) for i in range(24)]
    for n, invoice in enumerate(invoices):
        [sandbox.pay, sandbox.choose_processor, sandbox.underpay][n % 3](
            invoice.remote_id, *(["bank_transfer"] if n % 3 == 1 else []))
    fresh_sandbox.requests.clear()
    results = []
    run_concurrently([lambda: results.append(sweep(concurrency=3, batch=5)) for _ in range(2)])

    fetches = Counter(r["path"].split("/")[-2] for r in fresh_sandbox.requests
                      if r["method"] == "GET" and not r["path"].endswith("transactions/"))
    assert set(fetches) == {i.remote_id for i in invoices} and set(fetches.values()) == {1}
    assert sum(r.polled for r in results) == 24 and all(r.polled for r in results)  # both did work
    changes = [kw for name, kw in fired if name == "invoice_status_changed"]
    assert len(changes) == 24 == len({kw["invoice"].pk for kw in changes})
    for invoice in invoices:
        assert invoice.status_changes.count() == 2


def test_parallel_correct_codes_pay_once_and_never_lock_the_invoice(order, fresh_sandbox, fired):
    """16 payers' devices submit the right code at once: one is checked, the others are told to wait
    (409 in the API), none counts as a wrong attempt; once paid, the invoice answers closed."""
    from django_invoicepay.errors import InvoiceStateError, OtpBusy
    from django_invoicepay.services import payments

    invoice = Invoice.objects.create_for(order, amount=1250)
    sandbox.choose_processor(invoice.remote_id, "native")
    payments.set_payer(invoice, email="ann@example.com", mobile_number="+27821234567")
    outcomes = []

    def submit():
        try:
            payments.submit_otp(Invoice.objects.get(pk=invoice.pk), sandbox.SANDBOX_OTP)
            outcomes.append("paid")
        except OtpBusy:
            outcomes.append("busy")
        except InvoiceStateError:
            outcomes.append("closed")

    run_concurrently([submit] * 16)
    calls = [r for r in fresh_sandbox.requests if r["path"].endswith("otp_challenge/")]
    assert outcomes.count("paid") == len(calls) == 1
    assert outcomes.count("busy") + outcomes.count("closed") == 15
    invoice.refresh_from_db()
    assert (invoice.status, invoice.otp_failures, invoice.otp_locked_until) == ("paid", 0, None)
    assert [kw["new_status"] for name, kw in fired if name == "invoice_status_changed"] == ["processing", "paid"]


def test_parallel_releases_reach_the_provider_once_and_signal_once(fresh_sandbox):
    from django_invoicepay.models import Hold
    from django_invoicepay.services import holds
    from django_invoicepay.signals import hold_status_changed
    from tests.test_holds import active_consent

    hold = holds.place_hold(active_consent(), 5000)
    seen = []

    def receiver(sender, hold, old_status, new_status, transition_id, **kwargs):
        seen.append((old_status, new_status, transition_id))

    hold_status_changed.connect(receiver, weak=False)
    try:
        results = []
        run_concurrently([lambda: results.append(holds.release_hold(Hold.objects.get(pk=hold.pk)).status)] * 8)
    finally:
        hold_status_changed.disconnect(receiver)
    reverses = [r for r in fresh_sandbox.requests if r["path"].strip("/").endswith("transact/reverse")]
    assert len(reverses) == 1
    assert results == ["released"] * 8  # the others waited for the one release, none failed
    assert [(old, new) for old, new, _ in seen if new == "released"] == [("placed", "released")]
    hold.refresh_from_db()
    assert hold.status == "released" and hold.status_changes.filter(to_status="released").count() == 1


def test_two_requests_creating_an_invoice_for_one_order_make_one(order, fresh_sandbox):
    from django_invoicepay.errors import OpenInvoiceExists

    outcomes = []

    def create():
        try:
            Invoice.objects.create_for(order, amount=1250)
            outcomes.append("created")
        except OpenInvoiceExists:
            outcomes.append("refused")

    run_concurrently([create] * 4)
    assert sorted(outcomes) == ["created", "refused", "refused", "refused"]
    assert Invoice.objects.for_order(order).count() == 1


def test_every_worker_applying_with_the_row_it_read_changes_state_once(order, rehive, fired):
    """The webhook path: each worker read the row (with its outbox state) before fetching, then applies
    with one conditional UPDATE; the ones that lost the race fall back to the locked read."""
    invoice = Invoice.objects.create_for(order, amount=1250)
    sandbox.choose_processor(invoice.remote_id, "native")
    processing = rehive.get_invoice(invoice.remote_id)
    sandbox.pay(invoice.remote_id)
    paid = rehive.get_invoice(invoice.remote_id)
    read = lambda: Invoice.objects.with_announcing_state().get(pk=invoice.pk)  # noqa: E731
    payloads = [paid, processing] * (WORKERS // 2)
    run_concurrently([lambda p=p: apply_invoice(p, source="webhook", current=read()) for p in payloads])
    invoice.refresh_from_db()
    history = list(invoice.status_changes.values_list("from_status", "to_status"))
    assert history[0] == ("", "initiated") and history[-1][1] == "paid" == invoice.status
    assert all(prev[1] == nxt[0] for prev, nxt in zip(history, history[1:], strict=False))
    assert [(kw["old_status"], kw["new_status"]) for name, kw in fired if name == "invoice_status_changed"] \
        == history[1:]
    assert not invoice.status_changes.filter(announced_at__isnull=True).exists()


def test_one_new_event_delivered_by_every_worker_at_once_is_stored_once(order, fired):
    from django.test import Client

    from django_invoicepay.models import WebhookDelivery
    from tests.test_webhooks import deliver, envelope

    invoice = Invoice.objects.create_for(order, amount=1250)
    sandbox.pay(invoice.remote_id)
    body = envelope(invoice.raw, event_id="evt-at-once")
    answers = []
    run_concurrently([lambda: answers.append(deliver(Client(), body))] * WORKERS)
    assert sorted(r.status_code for r in answers) == [200] * WORKERS
    assert sum(1 for r in answers if not r.json().get("duplicate")) == 1
    delivery = WebhookDelivery.objects.get(event_id="evt-at-once")
    assert (delivery.status, delivery.deliveries, delivery.attempts) == ("processed", WORKERS, 1)
    invoice.refresh_from_db()
    assert list(invoice.status_changes.values_list("to_status", flat=True)) == ["initiated", "paid"]
    assert [kw["new_status"] for name, kw in fired if name == "invoice_status_changed"] == ["paid"]
    order.refresh_from_db()
    assert order.status == "completed"
