"""Polling: one HTTP call per invoice that can change, schedules with backoff, the command and the tasks."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice, PollSchedule
from django_invoicepay.services import polling
from django_invoicepay.services.polling import FAST, MAX_INTERVAL, NORMAL, poll_one, sweep

pytestmark = pytest.mark.django_db


def calls(state) -> list[str]:
    return [r["path"] for r in state.requests]


def make(order, n=1):
    return [Invoice.objects.create_for(order, amount=1000 + i, allow_another=True) for i in range(n)]


def due_now(*invoices):
    PollSchedule.objects.filter(invoice__in=invoices).update(next_at=timezone.now() - timedelta(seconds=1))


@pytest.fixture
def mixed(order):
    """2 finished invoices and 3 that can still change (initiated, bank processing, underpaid), all in sync."""
    invoices = make(order, 5)
    sandbox.pay(invoices[0].remote_id)
    sandbox.expire(invoices[1].remote_id)
    sandbox.choose_processor(invoices[3].remote_id, "bank_transfer")
    sandbox.underpay(invoices[4].remote_id, 100)
    for invoice in invoices:
        invoice.sync()
    return invoices


def test_a_sweep_makes_one_call_per_invoice_that_can_change(mixed, fresh_sandbox):
    fresh_sandbox.requests.clear()
    result = sweep()
    assert result.as_dict()["polled"] == 3
    fetched = sorted(path.split("/")[-2] for path in calls(fresh_sandbox))
    assert fetched == sorted(i.remote_id for i in mixed[2:])  # GET invoice only: nothing moved
    fresh_sandbox.requests.clear()
    assert sweep().polled == 0  # nothing is due again yet
    assert calls(fresh_sandbox) == []


def test_a_change_is_found_applied_once_and_the_schedule_reset(mixed, fresh_sandbox, fired, commit):
    first = sweep()
    # The fixture's transitions were made outside a commit (their on-commit announcements never ran):
    # the first sweep announces them, as it would after a crash. Only the next sweep's change counts here.
    assert first.announced == sum(name == "invoice_status_changed" for name, _ in fired) > 0
    fired.clear()
    waiting = mixed[3]
    sandbox.pay(waiting.remote_id)
    due_now(waiting)
    with commit():
        result = sweep()
    assert result.outcomes["changed"] == 1 and result.polled == 1
    waiting.refresh_from_db()
    assert waiting.status == "paid"
    assert [(kw["old_status"], kw["new_status"]) for n, kw in fired if n == "invoice_status_changed"] == [
        ("processing", "paid")]
    assert not PollSchedule.objects.filter(invoice=waiting).exists()  # finished: no longer polled


def test_an_unchanged_invoice_is_polled_without_any_write_to_it(mixed):
    sweep()
    invoice = mixed[3]
    due_now(invoice)
    PollSchedule.objects.filter(invoice=invoice).update(leased_until=None)
    with CaptureQueriesContext(connection) as queries:
        assert poll_one(invoice.pk) == "unchanged"
    writes = [q["sql"] for q in queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]
    assert writes and all("invoicepay_pollschedule" in sql for sql in writes)


def test_unchanged_invoices_back_off_and_crypto_deposits_are_polled_often(order):
    slow, crypto = make(order, 2)
    sandbox.crypto_deposit(crypto.remote_id, confirmations=0)
    sweep()
    assert PollSchedule.objects.get(invoice=crypto).interval == FAST
    intervals = []
    for _ in range(8):
        due_now(slow)
        sweep(invoices=[slow.remote_id])
        intervals.append(PollSchedule.objects.get(invoice=slow).interval)
    assert intervals[0] >= NORMAL and intervals == sorted(intervals) and intervals[-1] == MAX_INTERVAL


def test_pending_confirmations_are_fetched_while_they_count(order, fresh_sandbox):
    (invoice,) = make(order)
    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)
    sweep()
    sandbox.confirm(invoice.remote_id)
    due_now(invoice)
    fresh_sandbox.requests.clear()
    sweep()
    assert [p.rsplit("/", 2)[-2] for p in calls(fresh_sandbox)] == [invoice.remote_id, "transactions"]
    assert Invoice.objects.get(pk=invoice.pk).transactions.get().confirmations == 1


def test_a_provider_outage_is_counted_and_backed_off(mixed, fresh_sandbox):
    sandbox.add_fault("503", method="GET", times=100)
    result = sweep(concurrency=1)
    assert result.outcomes["failed"] == 3
    schedule = PollSchedule.objects.get(invoice=mixed[3])
    assert (schedule.failures, schedule.leased_until) == (1, None)
    assert schedule.next_at > timezone.now() + timedelta(seconds=NORMAL - 5)


def test_the_command_filters_and_summarises(mixed, fresh_sandbox):
    out = io.StringIO()
    call_command("invoicepay_sync", "--status", "underpaid", stdout=out)
    assert out.getvalue().startswith("Polled 1 invoice(s): 0 changed, 1 unchanged, 0 failed, in ")
    assert "[" not in out.getvalue()  # no progress bar when not on a terminal
    out = io.StringIO()
    call_command("invoicepay_sync", "--invoice", mixed[0].public_token, "--invoice", mixed[1].reference, stdout=out)
    assert out.getvalue().startswith("Polled 2 invoice(s)")
    out = io.StringIO()
    call_command("invoicepay_sync", "--since", "1h", "--all", stdout=out)
    assert out.getvalue().startswith("Polled 5 invoice(s)")
    Invoice.objects.filter(pk=mixed[4].pk).update(created_at=timezone.now() - timedelta(days=3))
    out = io.StringIO()
    call_command("invoicepay_sync", "--since", "2d", "--all", stdout=out)
    assert out.getvalue().startswith("Polled 4 invoice(s)")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_command_shows_progress_on_a_terminal_and_fails_loudly(mixed):
    out = Terminal()
    call_command("invoicepay_sync", "--all", stdout=out)
    assert "] 5/5" in out.getvalue() and "#" * 30 in out.getvalue()
    sandbox.add_fault("503", method="GET", times=100)
    with pytest.raises(SystemExit) as exited:
        call_command("invoicepay_sync", "--all", stdout=io.StringIO())
    assert exited.value.code == 1


def test_bad_command_arguments_are_clear(db):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match="duration like 2h"):
        call_command("invoicepay_sync", "--since", "yesterday")
    with pytest.raises(CommandError, match="at least 1"):
        call_command("invoicepay_sync", "--concurrency", "0")


def test_the_same_work_as_tasks(mixed):
    from django_invoicepay import tasks

    result = tasks.sync_invoices.enqueue()
    assert result.return_value["polled"] == 3
    sandbox.pay(mixed[2].remote_id)
    assert tasks.sync_invoice.enqueue(mixed[2].pk).return_value == "paid"


def test_any_public_token_can_be_given_to_the_command(order, monkeypatch):
    """`secrets.token_urlsafe` may start with "-", which argparse would read as an option."""
    from django_invoicepay.models import invoices as invoice_models

    draws = iter(["-dashfirst", "tokenAfterTheDash"])
    monkeypatch.setattr(invoice_models.secrets, "token_urlsafe", lambda n: next(draws))
    (invoice,) = make(order)
    assert invoice.public_token == "tokenAfterTheDash"
    out = io.StringIO()
    call_command("invoicepay_sync", "--invoice", invoice.public_token, stdout=out)
    assert out.getvalue().startswith("Polled 1 invoice(s)")


def test_an_invoice_the_provider_no_longer_knows_is_marked_and_left_out_without_failing_cron(mixed, fresh_sandbox):
    gone = mixed[2]
    del fresh_sandbox.data["invoices"][gone.remote_id]  # the provider no longer knows it
    outputs = []
    for _ in range(polling.MISSING_AFTER):
        due_now(*mixed)
        out = io.StringIO()
        call_command("invoicepay_sync", stdout=out)  # no SystemExit: cron sees success
        outputs.append(out.getvalue())
    assert "1 invoice(s) unknown to the provider (404)" in outputs[0]
    gone.refresh_from_db()
    assert gone.missing_since is not None and not PollSchedule.objects.filter(invoice=gone).exists()
    due_now(*mixed)
    assert gone.remote_id not in calls_of(fresh_sandbox, lambda: call_command("invoicepay_sync", stdout=io.StringIO()))


def calls_of(state, action) -> str:
    state.requests.clear()
    action()
    return " ".join(calls(state))


def test_log_lines_never_land_inside_the_progress_bar(mixed, fresh_sandbox):
    import logging

    out = Terminal()
    handler = logging.StreamHandler(out)
    logging.getLogger("django_invoicepay").addHandler(handler)
    sandbox.add_fault("503", method="GET", times=100)  # every invoice logs a warning mid-sweep
    try:
        with pytest.raises(SystemExit):
            call_command("invoicepay_sync", "--all", stdout=out)
    finally:
        logging.getLogger("django_invoicepay").removeHandler(handler)
    lines = [part for line in out.getvalue().split("\n") for part in line.split("\r") if part]
    logged = [line for line in lines if "Polling invoice" in line]
    assert len(logged) == len(mixed)
    assert all(line.startswith("Polling invoice") for line in logged)  # each on a line of its own


def writes_in(queries) -> list[str]:
    return [q["sql"] for q in queries if q["sql"].split()[0].upper() in {"INSERT", "UPDATE", "DELETE"}]


def test_unchanged_invoices_cost_a_fixed_number_of_writes_per_batch_whatever_its_size(order, fresh_sandbox):
    """An unchanged invoice is not applied (nothing newer to apply) and its next poll is written with the rest
    of its batch: a batch of 50 costs the same statements as a batch of 5, at different backoffs too (and,
    polled in this thread, no query per invoice either: not even the fetch reads the database)."""
    few, many = make(order, 5), make(order, 50)
    sweep()  # everything in sync, each schedule backed off once
    costs = {}
    for invoices in (few, many):
        PollSchedule.objects.filter(invoice__in=invoices[::2]).update(interval=MAX_INTERVAL // 2)
        due_now(*invoices)
        with CaptureQueriesContext(connection) as queries:
            result = sweep(invoices=[i.remote_id for i in invoices], concurrency=1)
        assert (result.outcomes["unchanged"], result.polled) == (len(invoices), len(invoices))
        writes = writes_in(queries)
        assert all("invoicepay_pollschedule" in sql for sql in writes)  # never the invoice, its quotes, ...
        costs[len(invoices)] = (len(queries), len(writes))
        schedules = PollSchedule.objects.filter(invoice__in=invoices)
        assert set(schedules.values_list("interval", flat=True)) == {MAX_INTERVAL, 2 * polling.SLOW}
        assert not schedules.filter(leased_until__isnull=False).exists()
    assert costs[50] == costs[5] and costs[5][1] <= 3  # lease the batch, write the next polls: nothing per invoice


def test_claims_stay_the_same_size_however_many_invoices_the_sweep_already_polled(order, fresh_sandbox):
    invoices = make(order, 12)
    claims = []

    def record(execute, sql, params, many, context):
        if sql.lstrip().upper().startswith("SELECT") and re.search(r"\bLIMIT 5\b", sql):  # a page of 5
            claims.append((sql, len(params)))
        return execute(sql, params, many, context)

    fresh_sandbox.requests.clear()
    with connection.execute_wrapper(record):
        result = sweep(invoices=[i.remote_id for i in invoices], batch=5, concurrency=3)
    assert result.polled == 12  # each once, though --invoice polls whatever the schedule
    assert sorted(path.split("/")[-2] for path in calls(fresh_sandbox)) == sorted(i.remote_id for i in invoices)
    assert len(claims) == 4 and len(set(claims)) == 1  # 5 + 5 + 2 + none left: the same statement each time
