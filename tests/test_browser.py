"""The example shop's pay page in a real browser: QR code, OTP form, provider errors shown, order completed.

Needs Debian's Chromium (`apt-get install chromium`; .ci/run installs it). Playwright drives it
(no browser download: `executable_path` points at the system Chromium).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if os.environ.get("INVOICEPAY_REQUIRE_BROWSER") and not CHROMIUM:
    raise RuntimeError("INVOICEPAY_REQUIRE_BROWSER is set but Chromium is not installed")
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("INVOICEPAY_SCREENSHOTS", Path(__file__).parent / ".screenshots"))


@pytest.fixture
def invoice():
    """Made before the browser starts: the ORM stays out of Playwright's context."""
    from shop.models import Order

    order = Order.objects.create(description="Coffee beans", total=1250)
    return Invoice.objects.create_for(order, amount=1250)


@pytest.fixture
def page(invoice, live_server):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.set_default_timeout(15_000)
        yield page
        browser.close()


def test_a_customer_pays_by_otp_in_the_browser(page, invoice, live_server):
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/")
    page.get_by_role("button", name="My wallet").click()

    qr = page.get_by_role("img", name="Scan to pay 12.50 USD to Test Shop")
    qr.wait_for()
    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_label("Wallet mobile number").fill("0821234567")
    page.get_by_role("button", name="Send me a code").click()
    page.locator('[data-error="payer_mobile_number"]').get_by_text("international format").wait_for()

    page.get_by_label("Wallet mobile number").fill("+27 82 123 4567")
    page.get_by_role("button", name="Send me a code").click()
    page.get_by_text("We sent a code by SMS").wait_for()

    page.get_by_label("Code from the SMS").fill("111111")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.locator('[data-error="otp"]').get_by_text("Invalid OTP.").wait_for()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "pay-wrong-otp.png"), full_page=True)

    page.get_by_label("Code from the SMS").fill(sandbox.SANDBOX_OTP)
    page.get_by_role("button", name="Pay", exact=True).click()
    page.get_by_text("Payment accepted. Status: paid.").wait_for()
    page.locator("#pay-status", has_text="paid").wait_for()
    page.screenshot(path=str(SHOTS / "pay-paid.png"), full_page=True)

    page.get_by_role("link", name="Back to the order").click()
    page.locator("#order-status", has_text="completed").wait_for()
    page.locator("#invoice-status", has_text="paid").wait_for()


def test_a_crypto_payment_page_follows_its_confirmations(page, invoice, live_server):
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/?poll_ms=300")
    page.get_by_role("button", name="Bitcoin", exact=True).click()
    page.get_by_text("Send to this address").wait_for()
    page.get_by_text("We are waiting for your payment").wait_for()

    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)  # the payer sends bitcoin: the page notices
    page.get_by_text("with 0 confirmations and is waiting to be confirmed").wait_for()
    sandbox.confirm(invoice.remote_id)
    page.get_by_text("with 1 confirmation and is waiting to be confirmed").wait_for()
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "pay-crypto-pending.png"), full_page=True)
    sandbox.confirm(invoice.remote_id, confirmations=2)
    page.get_by_text("Paid in full. Thank you.").wait_for()
    page.locator("#pay-status", has_text="paid").wait_for()


def test_an_expired_invoice_is_renewed_from_the_pay_page(page, invoice, live_server):
    sandbox.expire(invoice.remote_id)
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/?poll_ms=300")
    page.get_by_text("This invoice has expired").wait_for()  # found by the page's own check
    page.get_by_role("button", name="Create a new invoice").click()
    page.wait_for_url(lambda url: invoice.public_token not in url and "/pay/" in url)
    page.locator("#pay-status", has_text="initiated").wait_for()
    page.get_by_role("heading", name="Pay 12.50 USD").wait_for()
