"""Renewals under failure: a stable Idempotency-Key per expired invoice, no transaction open while the
provider is called, a crash between the provider's answer and the local save recovered by the next
attempt, and two renewers at once ending with one renewal (docs/open-loop.md).

Runs in autocommit, as production does (transactional tests). The database fault is Django's own
`connection.execute_wrapper` (tests/test_crash_safety.py); the hook into the provider call is the
requests session's own response hook, so none of the app's functions is replaced.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest
from django.db import OperationalError, connection

from django_invoicepay import sandbox
from django_invoicepay.clients import rehive_client
from django_invoicepay.models import Invoice
from django_invoicepay.sandbox.rehive import IDEMPOTENCY_KEY_LIFETIME_MS
from django_invoicepay.services.renewals import renewal_key
from tests.conftest import requires_server_database
from tests.test_concurrency import run_concurrently
from tests.test_crash_safety import dropped_connection

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def expired(invoice):
    sandbox.expire(invoice.remote_id)
    return invoice.sync()


def creations(state) -> list[dict]:
    """The POSTs that asked the provider to create an invoice."""
    return [r for r in state.requests if r["method"] == "POST" and r["path"].endswith("/invoices/")]


@contextlib.contextmanager
def during_invoice_creation(action: Callable[[], None]) -> Iterator[None]:
    """Run `action` once, inside the provider call that creates an invoice, after its answer arrived
    and before the app saw it (a requests response hook on the client's own session)."""
    session = rehive_client().transport.session
    pending = [action]

    def hook(response, *args, **kwargs):
        if pending and response.request.method == "POST" and response.request.path_url.endswith("/invoices/"):
            pending.pop()()

    session.hooks["response"].append(hook)
    try:
        yield
    finally:
        session.hooks["response"].remove(hook)


def test_a_crash_between_the_provider_and_the_local_save_is_recovered_by_the_next_renewal(expired, fresh_sandbox):
    with dropped_connection("insert", "invoicepay_invoice") as left, pytest.raises(OperationalError):
        expired.renew()
    assert left == [0], "the local save was reached"
    assert not Invoice.objects.filter(renewal_of=expired).exists()
    created_remotely = set(fresh_sandbox.data["invoices"]) - {expired.remote_id}
    assert len(created_remotely) == 1  # the provider has it; this database does not

    renewal = expired.renew()  # the next attempt: same key, same invoice, mirrored once
    assert {renewal.remote_id} == created_remotely
    assert set(fresh_sandbox.data["invoices"]) == {expired.remote_id, renewal.remote_id}
    assert Invoice.objects.get(renewal_of=expired) == renewal and renewal.order == expired.order
    assert expired.renew() == renewal
    keys = [r["headers"]["Idempotency-Key"] for r in creations(fresh_sandbox)]
    assert keys[-2:] == [renewal_key(expired)] * 2 == [f"renewal-of-{expired.remote_id}"] * 2


def test_no_transaction_is_open_while_the_provider_creates_the_renewal(expired):
    in_transaction: list[bool] = []
    with during_invoice_creation(lambda: in_transaction.append(connection.in_atomic_block)):
        renewal = expired.renew()
    assert in_transaction == [False]
    assert renewal.renewal_of == expired


def test_a_renewer_that_loses_the_race_returns_the_winners_renewal(expired, fresh_sandbox):
    winner: list[Invoice] = []
    with during_invoice_creation(lambda: winner.append(Invoice.objects.get(pk=expired.pk).renew())):
        loser = expired.renew()  # the other renewer saved the same remote invoice while this one waited
    assert loser == winner[0] == Invoice.objects.get(renewal_of=expired)
    keys = [r["headers"]["Idempotency-Key"] for r in creations(fresh_sandbox)]
    assert keys[1:] == [renewal_key(expired)] * 2 and len(fresh_sandbox.data["invoices"]) == 2  # the 2nd a replay


def test_past_the_keys_lifetime_a_retry_makes_a_second_remote_invoice(expired, fresh_sandbox):
    """docs/open-loop.md: after 24 hours the provider has forgotten the key; the first invoice is left over."""
    with dropped_connection("insert", "invoicepay_invoice"), pytest.raises(OperationalError):
        expired.renew()
    (orphan,) = set(fresh_sandbox.data["invoices"]) - {expired.remote_id}
    with fresh_sandbox.transaction() as data:
        status, body, at = data["idempotency"][renewal_key(expired)]
        data["idempotency"][renewal_key(expired)] = [status, body, at - IDEMPOTENCY_KEY_LIFETIME_MS]
    renewal = expired.renew()
    assert renewal.remote_id != orphan and renewal.renewal_of == expired
    assert set(fresh_sandbox.data["invoices"]) == {expired.remote_id, orphan, renewal.remote_id}
    assert not Invoice.objects.filter(remote_id=orphan).exists()


@pytest.mark.concurrency
@requires_server_database()
def test_renewers_at_once_make_one_renewal(expired, fresh_sandbox):
    renewals: list[int] = []
    run_concurrently([lambda: renewals.append(Invoice.objects.get(pk=expired.pk).renew().pk)] * 8)
    assert len(set(renewals)) == 1 and renewals[0] == Invoice.objects.get(renewal_of=expired).pk
    assert len(fresh_sandbox.data["invoices"]) == 2


def test_a_retry_sends_the_first_attempts_body_under_the_same_key(order, fresh_sandbox, monkeypatch):
    """A provider may refuse a key reused with another body: the dates of a retry are those of the first
    attempt (docs/reference/wire-format.md#rehive-idempotency)."""
    import json
    from datetime import timedelta

    from django.utils import timezone

    first = Invoice.objects.create_for(order, amount=900, expires_at=timezone.now() + timedelta(hours=1))
    sandbox.expire(first.remote_id)
    first.sync()
    with dropped_connection("insert", "invoicepay_invoice"), pytest.raises(OperationalError):
        first.renew()
    later = timezone.now() + timedelta(minutes=7)
    monkeypatch.setattr("django_invoicepay.services.renewals.timezone.now", lambda: later)
    renewal = first.renew()
    bodies = [json.loads(r["body"]) for r in creations(fresh_sandbox)][-2:]
    assert bodies[0] == bodies[1] and bodies[0]["expiration_date"]
    assert renewal.renewal_of == first
