"""The example shop, as a person would use it: make an order, invoice it, pay in the sandbox."""

from __future__ import annotations

import re

import pytest

from shop.models import Order

pytestmark = pytest.mark.django_db


def follow_post(client, url, data=None):
    response = client.post(url, data or {}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def test_an_order_is_invoiced_paid_and_completed(client, django_capture_on_commit_callbacks):
    page = follow_post(client, "/", {"description": "Tea", "total": "7.25"})
    order = Order.objects.get()
    assert (order.description, order.total) == ("Tea", 725)
    assert "Create invoice" in page
    page = follow_post(client, f"/orders/{order.pk}/invoice/")
    assert re.search(r'id="invoice-status">initiated<', page)
    with django_capture_on_commit_callbacks(execute=True):
        follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "choose_native"})
        page = follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "pay"})
    assert re.search(r'id="invoice-status">paid<', page)
    assert re.search(r'id="order-status">completed<', page)
    listing = client.get("/").content.decode()
    assert "completed" in listing and order.number in listing


def test_crypto_confirmations_show_up(client):
    order = Order.objects.create(description="Mug", total=1000)
    follow_post(client, f"/orders/{order.pk}/invoice/")
    page = follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "crypto_deposit"})
    assert "Bitcoin" in page and "pending" in page
    page = follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "confirm"})
    assert re.search(r"<td>pending</td><td>0.00020000 BTC</td><td>1</td>", page)


def test_mistakes_are_told_to_the_user_not_a_500(client):
    page = follow_post(client, "/", {"description": "x", "total": "12.345"})
    assert "Enter the total" in page
    order = Order.objects.create(description="Mug", total=1000)
    follow_post(client, f"/orders/{order.pk}/invoice/")
    follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "pay"})
    page = follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "pay"})
    assert "takes no more payments" in page


def test_the_pay_page_shows_the_wallet_options(client):
    from django_invoicepay import sandbox
    from django_invoicepay.conf import invoicepay_settings
    from django_invoicepay.models import Invoice

    order = Order.objects.create(description="Mug", total=1000)
    invoice = Invoice.objects.create_for(order, amount=1000)
    page = client.get(f"/pay/{invoice.public_token}/").content.decode()
    assert "How would you like to pay?" in page and "<svg" not in page
    sandbox.choose_processor(invoice.remote_id, "native")
    invoice.sync()
    page = client.get(f"/pay/{invoice.public_token}/").content.decode()
    name = invoicepay_settings.REHIVE["QR_NAME"]
    assert f'aria-label="Scan to pay 10.00 USD to {name}"' in page
    assert 'id="otp-form"' in page and "Sandbox: the code is 401703." in page
    assert client.get("/pay/nope/").status_code == 404


def test_staff_refund_an_overpayment_and_renew_an_expired_invoice(client):
    from django_invoicepay.models import Invoice

    order = Order.objects.create(description="Mug", total=1000)
    follow_post(client, f"/orders/{order.pk}/invoice/")
    page = follow_post(client, f"/orders/{order.pk}/sandbox/", {"action": "overpay"})
    assert re.search(r'id="order-status">completed<', page) and "Refund the overpayment" in page
    page = follow_post(client, f"/orders/{order.pk}/refund/")
    assert "1.00 USD (overpayment): complete" in page
    assert "nothing to refund" not in follow_post(client, f"/orders/{order.pk}/refund/")  # idempotent, quiet

    other = Order.objects.create(description="Cup", total=500)
    follow_post(client, f"/orders/{other.pk}/invoice/")
    follow_post(client, f"/orders/{other.pk}/sandbox/", {"action": "expire"})
    follow_post(client, f"/orders/{other.pk}/renew/")
    first, renewal = Invoice.objects.for_order(other).order_by("pk")
    assert (first.status, renewal.status, renewal.renewal_of_id) == ("expired", "initiated", first.pk)
    page = client.get(f"/pay/{first.public_token}/").content.decode()
    assert "Go to the new invoice" in page and renewal.public_token in page


def test_a_rental_deposit_consent_hold_and_release(client):
    from django_invoicepay import sandbox

    order = Order.objects.create(description="Camera rental", total=2500)
    page = follow_post(client, f"/orders/{order.pk}/deposit/consent/", {
        "firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com", "mobile_no": "2348022222208",
        "account_number": "0123456789", "bank_code": "058"})
    assert "Please enter the OTP sent to 23480****08" in page
    page = follow_post(client, f"/orders/{order.pk}/deposit/otp/", {"otp": "000000"})
    assert "Invalid OTP" in page
    page = follow_post(client, f"/orders/{order.pk}/deposit/otp/", {"otp": sandbox.SANDBOX_ONEPIPE_OTP})
    assert re.search(r'id="consent-status">active<', page) and "••••••6789" in page
    page = follow_post(client, f"/orders/{order.pk}/deposit/hold/", {"amount": "20000.00"})
    assert "Insufficient funds for this amount." in page
    page = follow_post(client, f"/orders/{order.pk}/deposit/hold/", {"amount": "5000.00"})
    assert "5000.00 NGN" in page and "<td data-hold-status>placed</td>" in page
    from django_invoicepay.models import Hold

    placed = Hold.objects.get(status="placed")
    page = follow_post(client, f"/orders/{order.pk}/deposit/{placed.pk}/release/")
    assert "<td data-hold-status>released</td>" in page
