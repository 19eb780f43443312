"""The Rehive client against the sandbox, through the real requests/transport code path."""

from __future__ import annotations

import logging

import pytest
from django.test import override_settings

from django_invoicepay import sandbox
from django_invoicepay.clients import rehive_client
from django_invoicepay.errors import (
    ProviderAuthError,
    ProviderBadResponse,
    ProviderNotFound,
    ProviderUnavailable,
    ProviderValidationError,
)
from django_invoicepay.rehive import client as client_module

SANDBOX_WITH = lambda **rehive: override_settings(  # noqa: E731
    INVOICEPAY={"SANDBOX": True, "REHIVE": rehive, "HTTP_MAX_RETRIES": 2}
)


def posts(state, path_end: str) -> list[dict]:
    return [r for r in state.requests if r["method"] == "POST" and r["path"].endswith(path_end)]


def test_every_call_carries_the_token_and_creating_posts_an_idempotency_key(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 500})
    rehive.get_invoice(created.id)
    create, get = fresh_sandbox.requests
    assert create["headers"]["Authorization"] == "Token sandbox-api-key"
    assert get["headers"]["Authorization"] == "Token sandbox-api-key"
    assert len(create["headers"]["Idempotency-Key"]) >= 16
    assert "Idempotency-Key" not in get["headers"]
    assert create["path"] == "manager/businesses/sandbox-business/invoices/"


def test_a_create_retried_after_a_503_reuses_its_key_and_creates_one_invoice(rehive, fresh_sandbox, sleeps):
    sandbox.add_fault("503", path=r"invoices/$", method="POST")
    created = rehive.create_invoice({"request_amount": 500})
    attempts = posts(fresh_sandbox, "invoices/")
    assert len(attempts) == 2
    assert attempts[0]["headers"]["Idempotency-Key"] == attempts[1]["headers"]["Idempotency-Key"]
    assert list(fresh_sandbox.data["invoices"]) == [created.id]
    assert sleeps == [0.2]


def test_a_create_whose_answer_was_lost_is_not_created_twice(rehive, fresh_sandbox):
    """The provider handled the POST but the answer timed out: the retry gets the same invoice."""
    sandbox.add_fault("timeout_after", path=r"invoices/$", method="POST")
    created = rehive.create_invoice({"request_amount": 500})
    assert len(posts(fresh_sandbox, "invoices/")) == 2
    assert list(fresh_sandbox.data["invoices"]) == [created.id]


def test_a_patch_is_not_retried_after_a_5xx(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 500})
    sandbox.add_fault("503", method="PATCH")
    with pytest.raises(ProviderUnavailable) as caught:
        rehive.update_request(created.id, {"payer_email": "a@example.com"})
    assert caught.value.status == 503
    assert len([r for r in fresh_sandbox.requests if r["method"] == "PATCH"]) == 1


def test_a_patch_is_not_retried_after_a_timeout(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 500})
    sandbox.add_fault("timeout", method="PATCH")
    with pytest.raises(ProviderUnavailable):
        rehive.update_request(created.id, {"payer_email": "a@example.com"})
    assert len([r for r in fresh_sandbox.requests if r["method"] == "PATCH"]) == 1


def test_any_call_is_retried_when_the_connection_was_never_made(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 500})
    sandbox.add_fault("connect", method="PATCH")
    updated = rehive.update_request(created.id, {"payer_email": "a@example.com"})
    assert updated.payer_email == "a@example.com"
    assert len([r for r in fresh_sandbox.requests if r["method"] == "PATCH"]) == 2


def test_gets_retry_on_gateway_errors_then_give_up_with_a_clear_error(rehive, fresh_sandbox, sleeps):
    created = rehive.create_invoice({"request_amount": 500})
    sandbox.add_fault("502", method="GET")
    assert rehive.get_invoice(created.id).id == created.id
    sandbox.add_fault("504", method="GET", times=10)
    with pytest.raises(ProviderUnavailable) as caught:
        rehive.get_invoice(created.id)
    assert "try again" in caught.value.message
    gets = [r for r in fresh_sandbox.requests if r["method"] == "GET"]
    assert len(gets) == 2 + 3  # one retry, then 1 try + 2 retries
    assert sleeps == [0.2, 0.2, 0.4]


def test_a_field_error_keeps_the_providers_message_and_fields(rehive):
    with pytest.raises(ProviderValidationError) as caught:
        rehive.create_invoice({"request_amount": "lots"})
    assert caught.value.status == 400
    assert caught.value.field_errors == {"request_amount": ["A valid integer is required."]}
    with pytest.raises(ProviderValidationError) as caught:
        rehive.create_invoice({"request_amount": 100, "payer_email": "not an email"})
    assert caught.value.field_errors["payer_email"] == ["Enter a valid email address."]


def test_not_found_and_permission_errors(rehive):
    with pytest.raises(ProviderNotFound) as caught:
        rehive.get_invoice("00000000-0000-0000-0000-000000000000")
    assert (caught.value.status, caught.value.message) == (404, "Not found.")
    foreign = rehive.business_url + "manager/businesses/someone-else/invoices/"
    response = rehive.transport.request("GET", foreign, headers=rehive._headers())
    with pytest.raises(ProviderAuthError) as caught:
        client_module.read_envelope(response)
    assert (caught.value.status, caught.value.message) == (403, "Permission denied.")


def test_a_wrong_api_key_is_refused(db):
    # The sandbox accepts the key it was started with; a different client key is refused.
    accepted = rehive_client()
    invoice = accepted.create_invoice({"request_amount": 100})
    wrong = accepted.transport.request(
        "GET", accepted._invoice_url(invoice.id), headers={"Authorization": "Token nope"}
    )
    assert wrong.status_code == 401
    assert wrong.json() == {"status": "error", "message": "Invalid token."}
    missing = accepted.transport.request("GET", accepted._invoice_url(invoice.id))
    assert missing.json()["message"] == "Authentication credentials were not provided."
    with pytest.raises(ProviderAuthError):
        client_module.read_envelope(wrong)


def test_an_html_error_page_and_a_garbage_body_become_typed_errors(rehive, fresh_sandbox):
    created = rehive.create_invoice({"request_amount": 500})
    sandbox.add_fault("500", method="GET")
    with pytest.raises(ProviderUnavailable) as caught:
        rehive.get_invoice(created.id)
    assert caught.value.status == 500
    sandbox.add_fault("garbage", method="GET", times=3)
    with pytest.raises(ProviderBadResponse) as caught:
        rehive.get_invoice(created.id)
    assert caught.value.message == "The payment provider sent an answer we could not read. Please try again shortly."


def test_lists_follow_pages(rehive, fresh_sandbox, monkeypatch):
    monkeypatch.setattr(client_module, "PAGE_SIZE", 3)
    ids = {rehive.create_invoice({"request_amount": 100 + n}).id for n in range(7)}
    assert {i.id for i in rehive.list_invoices()} == ids
    list_calls = [r for r in fresh_sandbox.requests if r["method"] == "GET"]
    assert len(list_calls) == 3


def test_white_label_deployments_only_change_the_two_base_urls(db, fresh_sandbox):
    plue = {
        "BUSINESS_URL": "https://api.business.plue.io/api/",
        "PAYMENT_REQUESTS_URL": "https://api.invoices.plue.io/api/",
    }
    with SANDBOX_WITH(**plue):
        client = rehive_client()
        created = client.create_invoice({"request_amount": 100})
        client.update_request(created.id, {"payer_email": "a@example.com"})
    create, patch = fresh_sandbox.requests
    assert create["service"] == "business"
    assert patch["service"] == "requests"
    assert client.business_url == plue["BUSINESS_URL"]
    assert client._request_url(created.id).startswith("https://api.invoices.plue.io/api/requests/")


def test_no_secret_reaches_the_logs(db, caplog):
    with SANDBOX_WITH(API_KEY="sk_live_planted_secret_123"), caplog.at_level(logging.DEBUG):
        client = rehive_client()
        created = client.create_invoice({"request_amount": 100, "payer_mobile_number": "+27821234567"})
        sandbox.add_fault("503", method="GET", times=5)
        with pytest.raises(ProviderUnavailable):
            client.get_invoice(created.id)
    assert "invoices" in caplog.text
    assert "sk_live_planted_secret_123" not in caplog.text
    assert "+27821234567" not in caplog.text
