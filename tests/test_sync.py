"""The one path that changes an invoice: create, sync, stale/duplicate/out-of-order payloads."""

from __future__ import annotations

import logging

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice, InvoiceStatusChange
from django_invoicepay.rehive.payloads import InvoiceData, TransactionData
from django_invoicepay.services.invoices import apply_invoice
from tests.conftest import force_status

pytestmark = pytest.mark.django_db


def transitions(invoice: Invoice) -> list[tuple[str, str]]:
    return list(invoice.status_changes.values_list("from_status", "to_status"))


def status_signals(fired) -> list[tuple[str, str]]:
    return [(kw["old_status"], kw["new_status"]) for name, kw in fired if name == "invoice_status_changed"]


def test_create_for_sends_the_order_and_items_and_mirrors_the_answer(order, rehive, fresh_sandbox, fired):
    invoice = Invoice.objects.create_for(
        order, amount=1250, description="Coffee", payer_email="payer@example.com",
        items=[{"name": "Beans", "quantity": 2, "price": 625}],
    )
    remote = fresh_sandbox.data["invoices"][invoice.remote_id]
    assert remote["request_reference"] == order.number
    assert remote["metadata"] == {"service_business": {"items": [{"name": "Beans", "quantity": 2, "price": 625}]}}
    assert (remote["request_amount"], remote["status"]) == (1250, "initiated")
    assert (invoice.status, invoice.request_amount, invoice.currency_code) == ("initiated", 1250, "USD")
    assert invoice.order == order
    assert invoice.payer_email == "payer@example.com"
    assert invoice.raw["id"] == invoice.remote_id
    assert len(invoice.public_token) >= 40
    assert list(Invoice.objects.for_order(order)) == [invoice]
    assert transitions(invoice) == [("", "initiated")]
    assert fired == []  # creation is not a status change


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"amount": 12.5}, TypeError),
        ({"amount": 0}, ValueError),
        ({"amount": 100, "items": [{"name": "x", "price": 1.5}]}, TypeError),
        ({"amount": 100, "items": [{"price": 1}]}, ValueError),
    ],
)
def test_bad_arguments_fail_before_anything_is_sent(order, fresh_sandbox, kwargs, error):
    with pytest.raises(error):
        Invoice.objects.create_for(order, **kwargs)
    assert fresh_sandbox.requests == []
    assert not Invoice.objects.exists()


def test_sync_follows_the_provider_and_signals_each_transition_once(invoice, fired, commit):
    sandbox.choose_processor(invoice.remote_id, "native")
    with commit():
        invoice.sync()
    sandbox.pay(invoice.remote_id)
    with commit():
        invoice.sync()
        invoice.sync()
    assert invoice.status == "paid"
    assert transitions(invoice) == [("", "initiated"), ("initiated", "processing"), ("processing", "paid")]
    assert status_signals(fired) == [("initiated", "processing"), ("processing", "paid")]
    assert list(invoice.status_changes.values_list("source", flat=True)) == ["create", "sync", "sync"]


def test_duplicate_stale_and_out_of_order_payloads_give_one_signal_per_transition(invoice, rehive, fired, commit):
    sandbox.choose_processor(invoice.remote_id, "native")
    processing = rehive.get_invoice(invoice.remote_id)
    sandbox.pay(invoice.remote_id)
    paid = rehive.get_invoice(invoice.remote_id)
    with commit():
        for payload in (paid, paid, processing, paid, processing):
            apply_invoice(payload, source="webhook")
    invoice.refresh_from_db()
    assert invoice.status == "paid"
    assert transitions(invoice) == [("", "initiated"), ("initiated", "paid")]
    assert status_signals(fired) == [("initiated", "paid")]


def test_a_rolled_back_change_sends_no_signal_and_leaves_no_history(invoice, rehive, fired, commit):
    sandbox.pay(invoice.remote_id)
    paid = rehive.get_invoice(invoice.remote_id)
    with commit(), pytest.raises(RuntimeError), transaction.atomic():
        apply_invoice(paid, source="webhook")
        raise RuntimeError("the caller's transaction fails after the sync")
    invoice.refresh_from_db()
    assert invoice.status == "initiated"
    assert fired == []
    assert transitions(invoice) == [("", "initiated")]


def test_a_payload_for_an_unknown_invoice_changes_nothing(rehive, fired, commit):
    remote = rehive.create_invoice({"request_amount": 100})
    with commit():
        assert apply_invoice(remote, source="webhook") is None
    assert not Invoice.objects.exists()
    assert fired == []


def test_an_unknown_status_is_stored_and_logged_never_a_crash(invoice, order, fired, commit, caplog):
    force_status(invoice.remote_id, "Disputed")
    with commit(), caplog.at_level(logging.WARNING):
        invoice.sync()
    assert invoice.status == "disputed"
    assert "does not know" in caplog.text
    assert status_signals(fired) == [("initiated", "disputed")]
    order.refresh_from_db()
    assert order.status == "new"


def test_quotes_and_transactions_are_mirrored(invoice):
    sandbox.crypto_deposit(invoice.remote_id, confirmations=1)
    invoice.sync()
    quote = invoice.primary_quote
    assert (quote.processor, quote.currency_code, quote.currency_divisibility) == ("native_bitcoin", "BTC", 8)
    assert quote.amount == 25000  # 12.50 USD at 50,000 USD/BTC, in satoshis
    assert quote.deposit_details == {"public_address": quote.reference}
    assert quote.total_pending == 25000
    (tx,) = invoice.transactions.all()
    assert (tx.status, tx.confirmations, tx.service, tx.quote_remote_id) == ("pending", 1, "bitcoin", quote.remote_id)
    sandbox.confirm(invoice.remote_id, confirmations=2)
    invoice.sync()
    tx.refresh_from_db()
    assert (tx.status, tx.confirmations, tx.settled) == ("complete", 3, True)
    assert invoice.status == "paid"
    assert invoice.primary_quote.total_paid == 25000


def synthetic_payload(remote_id: str, n: int, updated: int) -> tuple[InvoiceData, list[TransactionData]]:
    quotes = [
        {"id": 1000 + i, "reference": f"ref{i}", "status": "processing", "amount": 1250, "total_paid": 0,
         "payment_processor": {"unique_string_name": f"p{i}", "type": "bank"},
         "currency": {"code": "USD", "divisibility": 2}, "updated": updated}
        for i in range(n)
    ]
    invoice = InvoiceData.parse(
        {"id": remote_id, "status": "processing", "request_amount": 1250, "primary_payment_processor": "p0",
         "request_currency": {"code": "USD", "divisibility": 2}, "payment_processor_quotes": quotes,
         "updated": updated}
    )
    txs = [
        TransactionData.parse({"rehive_code": f"tx{i}", "payment_processor_quote": 1000 + i,
                               "details": {"status": "Pending", "amount": 10, "updated": updated}})
        for i in range(n)
    ]
    return invoice, txs


def count_queries(payload, txs) -> tuple[int, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        apply_invoice(payload, source="poll", transactions=txs)
    return len(queries), [q["sql"] for q in queries]


def writes(sql: str, table: str, step: str) -> bool:
    """Whether `sql` inserts (step "insert") or updates (step "update") rows of `table`; quotes are
    updated by an upsert (INSERT ... ON CONFLICT / ON DUPLICATE KEY UPDATE)."""
    quoted = (f'"{table}"', f"`{table}`")
    if any(sql.startswith(f"INSERT INTO {name}") for name in quoted):
        return step == "insert" or "ON CONFLICT" in sql or "ON DUPLICATE KEY UPDATE" in sql
    return step == "update" and any(sql.startswith(f"UPDATE {name}") for name in quoted)


@pytest.mark.parametrize("step", ["insert", "update", "unchanged"])
def test_applying_a_payload_costs_the_same_queries_for_1_or_25_quotes_and_transactions(db, step):
    from shop.models import Order

    counts = []
    for n in (1, 25):
        order = Order.objects.create(description=f"{n} things", total=1250)
        remote_id = Invoice.objects.create_for(order, amount=1250).remote_id
        base = 1_900_000_000_000
        first = synthetic_payload(remote_id, n, base)
        if step != "insert":
            apply_invoice(first[0], source="poll", transactions=first[1])
        if step == "update":
            payload, txs = synthetic_payload(remote_id, n, base + 1)
            # every quote and transaction differs from what is stored: all are updated
            payload = InvoiceData.parse({**payload.raw, "status": "underpaid", "payment_processor_quotes": [
                {**q.raw, "total_paid": 5} for q in payload.quotes]})
            txs = [TransactionData.parse({**t.raw, "settled": True, "details": {**t.raw["details"],
                   "updated": base + 1}}) for t in txs]
        else:
            payload, txs = first
        count, statements = count_queries(payload, txs)
        counts.append(count)
        if step != "unchanged":
            for table in ("invoicepay_quote", "invoicepay_invoicetransaction"):
                assert any(writes(sql, table, step) for sql in statements), (step, table)
    assert counts[0] == counts[1]


def test_an_unchanged_payload_writes_nothing(order):
    remote_id = Invoice.objects.create_for(order, amount=1250).remote_id
    payload, txs = synthetic_payload(remote_id, 3, 1_900_000_000_000)
    apply_invoice(payload, source="poll", transactions=txs)
    _, statements = count_queries(payload, txs)
    writes = [s for s in statements if s.split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]
    assert writes == []
    assert InvoiceStatusChange.objects.filter(invoice__remote_id=remote_id).count() == 2


def test_a_second_open_invoice_for_an_order_is_refused_unless_asked_for(order, fresh_sandbox):
    from django_invoicepay.errors import OpenInvoiceExists

    first = Invoice.objects.create_for(order, amount=1250)
    creates = sum(1 for r in fresh_sandbox.requests if r["method"] == "POST")
    with pytest.raises(OpenInvoiceExists) as refused:
        Invoice.objects.create_for(order, amount=1250)
    assert refused.value.existing == first and "allow_another=True" in refused.value.message
    assert sum(1 for r in fresh_sandbox.requests if r["method"] == "POST") == creates  # never reached the provider
    another = Invoice.objects.create_for(order, amount=1250, allow_another=True)
    assert Invoice.objects.for_order(order).count() == 2
    first.cancel()
    another.cancel()
    assert Invoice.objects.create_for(order, amount=1250).status == "initiated"  # nothing open any more


def test_a_quote_listed_twice_in_a_payload_is_stored_once(order):
    """A provider listing one quote twice must not break applying (an upsert cannot touch a row twice)."""
    remote_id = Invoice.objects.create_for(order, amount=1250).remote_id
    payload, _ = synthetic_payload(remote_id, 2, 1_900_000_000_000)
    quotes = [*payload.raw["payment_processor_quotes"], {**payload.raw["payment_processor_quotes"][0],
                                                          "total_paid": 700}]
    apply_invoice(InvoiceData.parse({**payload.raw, "payment_processor_quotes": quotes}), source="poll")
    stored = Invoice.objects.get(remote_id=remote_id).quotes.order_by("remote_id")
    assert [(q.remote_id, q.total_paid) for q in stored] == [(1000, 700), (1001, 0)]
