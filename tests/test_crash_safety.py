"""Crash safety, one step at a time: what happens when a process dies or the database drops its
connection at a given line of the webhook intake, the signal announcements, the poller, holds and
OTP checks. Runs in autocommit, as production does (transactional tests), so on-commit work runs.

Database failures are injected with Django's own `connection.execute_wrapper` hook (the query never
reaches the server, as with a dropped connection); on PostgreSQL and MariaDB one test also kills the
app's real connection. A crash is simulated by the state it leaves behind (a stored delivery never
processed, a lease nobody gives back, a transition never announced). The real-process version of
all of this is tests/test_reliability_crashes.py.
"""

from __future__ import annotations

import contextlib
import io
import json
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.db import OperationalError, connection
from django.test import override_settings
from django.utils import timezone
from rest_framework.test import APIClient

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice, InvoiceStatusChange, PollSchedule, WebhookDelivery
from django_invoicepay.services import holds
from django_invoicepay.services.invoices import apply_invoice
from django_invoicepay.services.polling import sweep
from tests.conftest import requires_server_database
from tests.test_holds import active_consent

pytestmark = pytest.mark.django_db(transaction=True)

URL = "/invoicepay/webhooks/rehive/"
SECRET = "test-webhook-secret"


def envelope(invoice: Invoice, event_id: str) -> dict:
    return {"id": event_id, "event": "service_payment_requests.request.update", "company": "sandbox",
            "data": {"id": invoice.remote_id}}


def deliver(client, body: dict):
    return client.post(URL, json.dumps(body), content_type="application/json", HTTP_AUTHORIZATION=f"Secret {SECRET}")


def stored(body: dict, **fields) -> WebhookDelivery:
    """The row a process leaves when it dies after storing a delivery (and, with a lease, while processing)."""
    return WebhookDelivery.objects.create(provider="rehive", event_id=body["id"], event=body["event"],
                                          object_id=body["data"]["id"], body=json.dumps(body), **fields)


@contextlib.contextmanager
def dropped_connection(verb: str, *words: str, times: int = 1, error=None, when=None):
    """The database connection drops at the first `times` statements that start with `verb` and contain `words`
    (and satisfy `when(sql, params)`), or those statements raise `error()`."""
    left = [times]

    def wrapper(execute, sql, params, many, context):
        text = sql.lower().lstrip()
        if left[0] and text.startswith(verb) and all(word in text for word in words) and \
                (when is None or when(text, params)):
            left[0] -= 1
            raise error() if error else OperationalError("server closed the connection unexpectedly")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield left


# -- webhook intake -----------------------------------------------------------------------------------


def test_an_event_stored_but_never_processed_is_processed_when_it_comes_again(client, invoice, order):
    sandbox.pay(invoice.remote_id)
    body = envelope(invoice, "evt-died-after-storing")
    stored(body)  # the process was killed right after storing it
    response = deliver(client, body)
    assert response.status_code == 200 and "duplicate" not in response.json()
    delivery = WebhookDelivery.objects.get()
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (delivery.status, delivery.deliveries, delivery.attempts) == ("processed", 2, 1)
    assert (invoice.status, order.status) == ("paid", "completed")
    again = deliver(client, body)  # now it is finished: a repeat is a duplicate
    assert again.status_code == 200 and again.json()["duplicate"] is True


def test_a_repeat_while_an_attempt_runs_is_503_and_a_lapsed_attempt_is_taken_over(client, invoice, fresh_sandbox):
    sandbox.pay(invoice.remote_id)
    body = envelope(invoice, "evt-in-flight")
    delivery = stored(body, leased_until=timezone.now() + timedelta(seconds=20), attempts=1)
    fresh_sandbox.requests.clear()
    busy = deliver(client, body)
    assert busy.status_code == 503 and 1 <= int(busy["Retry-After"]) <= 21
    assert busy.json()["message"] == "This event is being processed; retry later."
    assert fresh_sandbox.requests == []  # the second attempt did not run
    WebhookDelivery.objects.filter(pk=delivery.pk).update(leased_until=timezone.now() - timedelta(seconds=1))
    taken_over = deliver(client, body)  # the first attempt's process died: its lease lapsed
    assert taken_over.status_code == 200
    delivery.refresh_from_db()
    assert (delivery.status, delivery.attempts, delivery.leased_until) == ("processed", 2, None)


def test_a_repeat_whose_connection_drops_leaves_the_running_attempts_lease_alone(client, invoice):
    body = envelope(invoice, "evt-held-elsewhere")
    held_until = timezone.now() + timedelta(seconds=20)
    stored(body, leased_until=held_until, attempts=1)
    with dropped_connection("select", "invoicepay_webhookdelivery", "leased_until"):
        assert deliver(client, body).status_code == 503
    delivery = WebhookDelivery.objects.get()
    assert (delivery.status, delivery.leased_until, delivery.attempts) == ("received", held_until, 1)


# A new event: read (the invoice, with the event's earlier delivery), then stored in the transaction that
# writes the invoice and moves the order.
STEPS = {
    "looking the event up": ("select", "invoicepay_invoice"),
    "storing it": ("insert", "invoicepay_webhookdelivery"),
    "writing the invoice": ("update", "invoicepay_invoice", "status"),
    "moving the order": ("update", "shop_order"),
}
#: Steps after which nothing of the delivery is stored: the provider's retry brings it again.
NOT_STORED = {"looking the event up"}


@pytest.mark.parametrize("step", STEPS)
def test_a_dropped_connection_at_any_step_is_a_503_recorded_and_retried(client, invoice, order, step, fired):
    sandbox.pay(invoice.remote_id)
    body = envelope(invoice, f"evt-{step}")
    with override_settings(INVOICEPAY={"SANDBOX": True, "REHIVE": {"WEBHOOK_SECRET": SECRET, "API_KEY": "sk_planted"}}):
        with dropped_connection(*STEPS[step]) as left:
            failed = deliver(client, body)
        assert left == [0], "the step was reached"
        assert failed.status_code == 503 and failed["Retry-After"]
        delivery = WebhookDelivery.objects.filter(event_id=body["id"]).first()
        if step in NOT_STORED:
            assert delivery is None
        else:  # stored as failed, for the sweep too
            assert delivery.status == "failed" and delivery.leased_until is None
            assert "OperationalError" in delivery.error and "sk_planted" not in delivery.error
        retried = deliver(client, body)  # the provider retries the same event
    assert retried.status_code == 200 and "duplicate" not in retried.json()
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("paid", "completed")
    assert WebhookDelivery.objects.get(event_id=body["id"]).status == "processed"
    assert list(invoice.status_changes.values_list("to_status", flat=True)) == ["initiated", "paid"]
    assert [kw["new_status"] for name, kw in fired if name == "invoice_status_changed"] == ["paid"]


class ConnectionKillingAdapter:
    """An order adapter during which the database server kills the app's connection (once)."""

    kills = 0

    def reference(self, order):
        return str(order.pk)

    def owner(self, order):
        return None

    def set_state(self, order, state, *, invoice):
        if ConnectionKillingAdapter.kills == 0:
            ConnectionKillingAdapter.kills += 1
            with connection.cursor() as cursor:
                if connection.vendor == "postgresql":
                    cursor.execute("SELECT pg_terminate_backend(pg_backend_pid())")
                else:
                    cursor.execute("KILL CONNECTION CONNECTION_ID()")
        order.status = state
        order.save(update_fields=["status"])


@requires_server_database()
def test_a_real_dropped_connection_is_a_503_then_processed(client, invoice, order):
    sandbox.pay(invoice.remote_id)
    body = envelope(invoice, "evt-killed-backend")
    settings = {"SANDBOX": True, "REHIVE": {"WEBHOOK_SECRET": SECRET},
                "ORDER_ADAPTER": "tests.test_crash_safety.ConnectionKillingAdapter"}
    with override_settings(INVOICEPAY=settings):
        assert deliver(client, body).status_code == 503
        delivery = WebhookDelivery.objects.get(event_id=body["id"])  # recorded on a fresh connection
        assert delivery.status == "failed" and "Error" in delivery.error
        invoice.refresh_from_db()
        assert invoice.status == "initiated"  # rolled back with the order: nothing half-written
        assert deliver(client, body).status_code == 200
    invoice.refresh_from_db()
    order.refresh_from_db()
    assert (invoice.status, order.status) == ("paid", "completed")


def test_the_sweep_and_the_command_finish_unfinished_deliveries(invoice, fresh_sandbox):
    sandbox.pay(invoice.remote_id)
    stored(envelope(invoice, "evt-a"))  # died after storing
    stored(envelope(invoice, "evt-b"), leased_until=timezone.now() - timedelta(seconds=1))  # died processing
    stored(envelope(invoice, "evt-c"), leased_until=timezone.now() + timedelta(seconds=30))  # still running
    result = sweep()
    assert result.deliveries == {"processed": 2}
    assert "Finished 2 unfinished webhook deliveries: 2 processed." in result.summary()
    WebhookDelivery.objects.filter(event_id="evt-c").update(leased_until=timezone.now())
    out = io.StringIO()
    call_command("invoicepay_sync", "--webhooks", stdout=out)  # on its own, without --failed
    assert out.getvalue().strip() == "Processed 1 pending webhook delivery: 1 processed."
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {"processed"}


def test_failed_deliveries_are_retried_by_the_sweep_with_backoff(invoice, fresh_sandbox):
    sandbox.pay(invoice.remote_id)
    just_failed = timezone.now()
    stored(envelope(invoice, "evt-failed"), status="failed", attempts=3, last_attempt_at=just_failed)
    assert sweep().deliveries == {}  # 3 failures: the next try waits 2 minutes
    WebhookDelivery.objects.update(last_attempt_at=just_failed - timedelta(minutes=2))
    assert sweep().deliveries == {"processed": 1}


# -- durable signals ------------------------------------------------------------------------------------


def received_transitions(fired) -> list[tuple[str, str, str]]:
    return [(kw["old_status"], kw["new_status"], kw["transition_id"]) for name, kw in fired
            if name == "invoice_status_changed"]


class Killed(KeyboardInterrupt):
    """A process killed while a receiver ran (not an Exception: send_robust does not catch it)."""


def test_a_process_killed_while_announcing_is_announced_again_with_the_same_transition_id(invoice, rehive, fired):
    from django_invoicepay.signals import invoice_status_changed

    def killed(sender, **kwargs):
        raise Killed

    sandbox.pay(invoice.remote_id)
    invoice_status_changed.connect(killed, weak=False, dispatch_uid="killed")
    try:
        with pytest.raises(Killed):
            apply_invoice(rehive.get_invoice(invoice.remote_id), source="webhook")
    finally:
        invoice_status_changed.disconnect(dispatch_uid="killed")
    change = InvoiceStatusChange.objects.get(to_status="paid")
    assert change.announced_at is None and change.announcing_until is not None  # committed, not announced
    assert sweep().announced == 0  # its lease has not lapsed: the announcer may still be alive
    InvoiceStatusChange.objects.filter(pk=change.pk).update(announcing_until=timezone.now())
    fired.clear()
    assert sweep().announced == 1
    assert received_transitions(fired) == [("initiated", "paid", str(change.transition_id))]
    assert sweep().announced == 0  # announced once


def test_unannounced_transitions_go_out_in_order_and_never_while_another_process_announces(invoice, rehive, fired):
    sandbox.choose_processor(invoice.remote_id, "native")
    processing = rehive.get_invoice(invoice.remote_id)
    sandbox.pay(invoice.remote_id)
    paid = rehive.get_invoice(invoice.remote_id)
    apply_invoice(processing, source="poll")
    apply_invoice(paid, source="poll")
    InvoiceStatusChange.objects.exclude(source="create").update(announced_at=None)  # as if both processes died
    first = InvoiceStatusChange.objects.get(to_status="processing")
    InvoiceStatusChange.objects.filter(pk=first.pk).update(announcing_until=timezone.now() + timedelta(seconds=30))
    fired.clear()
    assert sweep().announced == 0  # the first is being announced elsewhere, so the second waits behind it
    InvoiceStatusChange.objects.filter(pk=first.pk).update(announcing_until=None)
    assert sweep().announced == 2
    ids = [str(i) for i in InvoiceStatusChange.objects.exclude(source="create").order_by("pk")
           .values_list("transition_id", flat=True)]
    assert received_transitions(fired) == [("initiated", "processing", ids[0]), ("processing", "paid", ids[1])]


def test_a_transition_whose_receiver_failed_is_sent_again_later_and_the_next_waits(invoice, rehive, fired):
    from django_invoicepay.signals import invoice_status_changed

    calls = []

    def flaky(sender, transition_id, new_status, **kwargs):  # its database connection dropped, once
        calls.append(new_status)
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")

    invoice_status_changed.connect(flaky, weak=False, dispatch_uid="flaky")
    try:
        sandbox.choose_processor(invoice.remote_id, "native")
        apply_invoice(rehive.get_invoice(invoice.remote_id), source="webhook")  # announced at once: fails
        sandbox.pay(invoice.remote_id)
        apply_invoice(rehive.get_invoice(invoice.remote_id), source="webhook")  # waits behind it
        assert calls == ["processing"]
        first = InvoiceStatusChange.objects.get(to_status="processing")
        assert (first.announced_at, first.announce_attempts) == (None, 1)
        assert sweep().announced == 0  # not before its retry delay (10 s)
        InvoiceStatusChange.objects.filter(pk=first.pk).update(announcing_until=timezone.now())
        assert sweep().announced == 2
    finally:
        invoice_status_changed.disconnect(dispatch_uid="flaky")
    assert calls == ["processing", "processing", "paid"]
    first_id = str(first.transition_id)
    assert [t for _, new, t in received_transitions(fired) if new == "processing"] == [first_id, first_id]


def test_overpaid_and_underpaid_keep_the_amount_of_their_moment(invoice, rehive, fired):
    sandbox.choose_processor(invoice.remote_id, "bank_transfer")
    sandbox.underpay(invoice.remote_id, by=300)
    apply_invoice(rehive.get_invoice(invoice.remote_id), source="poll")
    sandbox.pay(invoice.remote_id)
    apply_invoice(rehive.get_invoice(invoice.remote_id), source="poll")
    InvoiceStatusChange.objects.exclude(source="create").update(announced_at=None)  # announced late, by the sweep
    fired.clear()
    sweep()
    underpaid = [kw for name, kw in fired if name == "invoice_underpaid"]
    assert [kw["outstanding"] for kw in underpaid] == [300]  # what was owed then, not now (0)
    change = InvoiceStatusChange.objects.get(to_status="underpaid")
    assert underpaid[0]["transition_id"] == str(change.transition_id)


# -- holds ----------------------------------------------------------------------------------------------


def test_a_released_hold_never_goes_back_to_placed(fresh_sandbox):
    seen = []
    from django_invoicepay.signals import hold_status_changed

    def receiver(sender, hold, old_status, new_status, transition_id, **kwargs):
        seen.append((old_status, new_status))

    hold = holds.place_hold(active_consent(), 5000)
    hold_status_changed.connect(receiver, weak=False, dispatch_uid="seen")
    try:
        holds.release_hold(hold)
        # A refresh that read the provider before the release (or a late notification) says "Successful".
        fresh_sandbox.data["onepipe"]["transactions"][hold.transaction_ref]["status"] = "Successful"
        assert holds.refresh_hold(hold).status == "released"
        assert holds.release_hold(hold).status == "released"  # idempotent
    finally:
        hold_status_changed.disconnect(dispatch_uid="seen")
    reverses = [r for r in fresh_sandbox.requests if r["path"].strip("/").endswith("transact/reverse")]
    assert len(reverses) == 1
    assert seen == [("placed", "released")]


def test_a_release_whose_process_died_is_taken_over_once_its_lease_lapses(fresh_sandbox):
    hold = holds.place_hold(active_consent(), 5000)
    type(hold).objects.filter(pk=hold.pk).update(releasing_until=timezone.now())  # its releaser died: lapsed
    assert holds.release_hold(hold).status == "released"
    reverses = [r for r in fresh_sandbox.requests if r["path"].strip("/").endswith("transact/reverse")]
    assert len(reverses) == 1


# -- OTP -----------------------------------------------------------------------------------------------


def test_a_code_sent_while_another_is_checked_is_a_409_not_a_wrong_attempt(invoice, fresh_sandbox):
    api = APIClient()
    sandbox.choose_processor(invoice.remote_id, "native")
    Invoice.objects.filter(pk=invoice.pk).update(otp_checking_until=timezone.now() + timedelta(seconds=10))
    fresh_sandbox.requests.clear()
    response = api.post(f"/invoicepay/api/invoices/{invoice.public_token}/otp/", {"otp": "123456"}, format="json")
    assert response.status_code == 409 and 1 <= int(response["Retry-After"]) <= 11
    assert response.json() == {"detail": "A code is being checked, try again in a moment.", "code": "otp_in_progress"}
    assert fresh_sandbox.requests == []
    invoice.refresh_from_db()
    assert invoice.otp_failures == 0


def test_consent_codes_are_checked_one_at_a_time_and_locked_out_like_an_invoice(fresh_sandbox):
    api = APIClient()
    consent = holds.request_consent(auth_type="bank.account",
                                    credentials={"account_number": "0123456789", "bank_code": "058"},
                                    customer={"firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com",
                                              "mobile_no": "2348022222208"})
    url = f"/invoicepay/api/holds/consents/{consent.public_token}/otp/"
    relaxed = {"SANDBOX": True, "THROTTLE_RATES": {"otp": "1000/min", "payer": "1000/min", "read": "1000/min"}}
    with override_settings(INVOICEPAY=relaxed):
        type(consent).objects.filter(pk=consent.pk).update(otp_checking_until=timezone.now() + timedelta(seconds=10))
        assert api.post(url, {"otp": "000000"}, format="json").json()["code"] == "otp_in_progress"
        type(consent).objects.filter(pk=consent.pk).update(otp_checking_until=None)
        codes = [api.post(url, {"otp": "000000"}, format="json").status_code for _ in range(5)]
        locked = api.post(url, {"otp": sandbox.SANDBOX_ONEPIPE_OTP}, format="json")  # even the right code
    assert codes == [400] * 5
    assert (locked.status_code, locked.json()["code"]) == (429, "otp_locked")
    consent.refresh_from_db()
    assert consent.status == "waiting_for_otp"


# -- the poller -----------------------------------------------------------------------------------------


@pytest.fixture
def open_invoices(order):
    made = [Invoice.objects.create_for(order, amount=100 + n, allow_another=True) for n in range(4)]
    for invoice in made:
        sandbox.pay(invoice.remote_id)
    return made


def test_a_dropped_connection_costs_one_invoice_not_the_sweep(open_invoices):
    with dropped_connection("update", "invoicepay_invoice", "status"):
        result = sweep(concurrency=1)
    assert (result.outcomes["changed"], result.outcomes["failed"]) == (3, 1)
    lost = Invoice.objects.get(status="initiated")
    assert PollSchedule.objects.get(invoice=lost).leased_until is None  # given back: the next sweep takes it
    assert sweep(concurrency=1).outcomes["changed"] == 1
    assert set(Invoice.objects.values_list("status", flat=True)) == {"paid"}


def test_a_database_that_stays_away_stops_the_sweep_without_a_traceback(open_invoices):
    with dropped_connection("update", "invoicepay_pollschedule", "leased_until", times=2):  # claim, and its retry
        result = sweep()
    assert result.interrupted == "the database is unavailable (OperationalError)"
    assert "Stopped early: the database is unavailable (OperationalError); the next run goes on." in result.summary()
    assert sweep().outcomes["changed"] == 4


@pytest.mark.parametrize("concurrency", [1, 3])
def test_a_stopped_poller_gives_its_claims_back(open_invoices, concurrency):
    def stop_after_first(done, total):
        raise KeyboardInterrupt  # Ctrl-C, or SIGTERM under polling.stop_on_signals()

    with pytest.raises(KeyboardInterrupt):
        sweep(concurrency=concurrency, progress=stop_after_first)
    schedules = PollSchedule.objects.all()
    assert schedules.count() == 3 and not schedules.filter(leased_until__isnull=False).exists()
    assert sweep(concurrency=concurrency).outcomes["changed"] == 3


def test_a_poller_stopped_inside_a_query_still_gives_its_claims_back(transactional_db, open_invoices):
    """SIGTERM inside a MySQL query leaves the connection out of sync: the give-back's statement then fails
    with the driver's own error, which Django does not wrap. It is retried on a fresh connection, and the
    poller still stops (seen in the reliability suite on MariaDB)."""
    def out_of_sync():
        return connection.Database.ProgrammingError(2014, "Commands out of sync; you can't run this command now")

    def stop_after_first(done, total):
        raise KeyboardInterrupt

    def only_clears_the_claim(sql, params):  # SET leased_until = NULL alone (Django 6.1 sends the NULL as a parameter)
        assignments = sql.split(" set ", 1)[1].split(" where ", 1)[0]
        return "," not in assignments and ("null" in assignments or (params or [0])[0] is None)

    with dropped_connection("update", "invoicepay_pollschedule", "leased_until", error=out_of_sync,
                            when=only_clears_the_claim) as left, pytest.raises(KeyboardInterrupt):
        sweep(concurrency=1, progress=stop_after_first)
    assert left == [0]  # the give-back met the driver's error once
    assert not PollSchedule.objects.filter(leased_until__isnull=False).exists()
    assert sweep(concurrency=1).outcomes["changed"] == 3


def test_a_killed_pollers_claims_lapse_within_a_minute(open_invoices):
    from django_invoicepay.services.polling import LEASE, ensure_schedules

    ensure_schedules(Invoice.objects.all())
    PollSchedule.objects.update(leased_until=timezone.now() + timedelta(seconds=LEASE))  # SIGKILL mid-batch
    assert sweep().polled == 0
    PollSchedule.objects.update(leased_until=timezone.now())  # LEASE (<= 60 s) later
    assert LEASE <= 60 and sweep().outcomes["changed"] == 4


@pytest.mark.django_db(transaction=True)  # outside a test transaction, as in production: it can be run again
def test_a_transaction_the_database_broke_a_deadlock_in_is_run_again(invoice, order, fired):
    """MariaDB answers 1213 "Deadlock found ... try restarting transaction": apply_invoice runs it again."""
    from django.db import OperationalError, connection

    from django_invoicepay.clients import rehive_client

    sandbox.pay(invoice.remote_id)
    paid = rehive_client().get_invoice(invoice.remote_id)
    broken = []

    def deadlock_once(execute, sql, params, many, context):
        if not broken and sql.startswith(('UPDATE "invoicepay_invoice"', "UPDATE `invoicepay_invoice`")):
            broken.append(sql)
            raise OperationalError(1213, "Deadlock found when trying to get lock; try restarting transaction")
        return execute(sql, params, many, context)

    with connection.execute_wrapper(deadlock_once):
        applied = apply_invoice(paid, source="poll", current=Invoice.objects.with_announcing_state().get(pk=invoice.pk))
    assert broken and applied.status == "paid"
    assert list(invoice.status_changes.values_list("to_status", flat=True)) == ["initiated", "paid"]
    assert [kw["new_status"] for name, kw in fired if name == "invoice_status_changed"] == ["paid"]
