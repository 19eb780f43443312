"""django-invoicepay's widget script in a real browser.

- A bare page that uses only the shipped tags and `static/invoicepay/invoicepay.js`, served with a
  strict Content-Security-Policy (`script-src 'self'`): a bitcoin deposit is followed confirmation by
  confirmation until paid, an expired invoice is renewed with its button (CSRF for a signed-in visitor),
  and without JavaScript the page asks for a reload instead of promising updates.
- The example shop's pay page, which uses the same tags and script (no script of its own): QR code,
  OTP form, provider errors shown, deposit confirmations, renewal, order completed.

Needs Debian's Chromium (`apt-get install chromium`; .ci/run installs it). Playwright drives it
(no browser download: `executable_path` points at the system Chromium). Without Chromium the tests
skip, unless INVOICEPAY_REQUIRE_BROWSER is set: then they fail.

Screenshots go to tests/.screenshots/ (or $INVOICEPAY_SCREENSHOTS); with INVOICEPAY_DOCS_SCREENSHOTS=1
the ones shown in the documentation are also written to docs/screenshots/.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from django_invoicepay import sandbox
from django_invoicepay.models import Invoice

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if os.environ.get("INVOICEPAY_REQUIRE_BROWSER") and not CHROMIUM:
    raise RuntimeError("INVOICEPAY_REQUIRE_BROWSER is set but Chromium is not installed")
if os.environ.get("INVOICEPAY_REQUIRE_BROWSER"):
    import playwright.sync_api as playwright  # required: a missing package is an error, not a skip
else:
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
expect = playwright.expect

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM, reason="Chromium is not installed (apt-get install chromium)"),
    pytest.mark.django_db(transaction=True),
]
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 15_000  # every wait is for a change in the page, bounded by this
SHOTS = Path(os.environ.get("INVOICEPAY_SCREENSHOTS", Path(__file__).parent / ".screenshots"))
DOC_SHOTS = Path(__file__).resolve().parent.parent / "docs" / "screenshots"
BARE = pytest.mark.urls("tests.browser_pages.urls")  # the bare page with only the shipped tags and script
DEPOSIT = '[data-invoicepay-widget="deposit"]'
QR = '[data-invoicepay-widget="qr"]'


def screenshot(page, name: str, *, docs: bool = False) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / name), full_page=True)
    if docs and os.environ.get("INVOICEPAY_DOCS_SCREENSHOTS") == "1":
        from PIL import Image

        DOC_SHOTS.mkdir(parents=True, exist_ok=True)
        with Image.open(SHOTS / name) as image:  # a small palette PNG: these pages have few colours
            small = image.convert("RGB").quantize(colors=64, method=Image.Quantize.FASTOCTREE)
        small.save(DOC_SHOTS / name, optimize=True)


@pytest.fixture
def invoice():
    """Made before the browser starts: the ORM stays out of Playwright's context."""
    from shop.models import Order

    order = Order.objects.create(description="Coffee beans", total=1250)
    return Invoice.objects.create_for(order, amount=1250)


@pytest.fixture
def bitcoin_invoice(invoice):
    """The payer chose bitcoin; the shop knows (synced before the browser starts)."""
    sandbox.choose_processor(invoice.remote_id, "native_bitcoin")
    return invoice.sync()


@pytest.fixture
def session_cookie():
    """A signed-in visitor's session: the API then enforces CSRF on every POST (DRF SessionAuthentication)."""
    from django.contrib.auth import get_user_model
    from django.test import Client

    client = Client()
    client.force_login(get_user_model().objects.create_user("ann", "ann@example.com", "pw"))
    return client.cookies["sessionid"].value


@pytest.fixture
def browser():
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        expect.set_options(timeout=TIMEOUT_MS)
        yield browser
        browser.close()


def open_page(browser, **options):
    context = browser.new_context(viewport={"width": 760, "height": 640}, **options)
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.errors = []  # uncaught exceptions in the page
    page.console_errors = []
    page.navigations = []
    page.on("pageerror", lambda error: page.errors.append(str(error)))
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("framenavigated", lambda frame: frame == page.main_frame and page.navigations.append(frame.url))
    return page


@pytest.fixture
def page(invoice, live_server, browser):
    page = open_page(browser)
    yield page
    page.context.close()
    assert page.errors == []


@pytest.fixture
def signed_in_page(session_cookie, invoice, live_server, browser):
    page = open_page(browser)
    page.context.add_cookies([{"name": "sessionid", "value": session_cookie, "url": live_server.url}])
    yield page
    page.context.close()
    assert page.errors == []


def csp_violations(page) -> list[str]:
    return [text for text in page.console_errors if "Content Security Policy" in text]


# -- the bare page: only the shipped tags and script, under `script-src 'self'` ------------------------


@BARE
def test_the_shipped_widget_follows_a_bitcoin_deposit_to_paid_under_a_strict_csp(bitcoin_invoice, page, live_server):
    invoice = bitcoin_invoice
    response = page.goto(f"{live_server.url}/pay/{invoice.public_token}/")
    assert "script-src 'self'" in response.headers["content-security-policy"]
    deposit = page.locator(DEPOSIT)
    expect(deposit.get_by_text("Send to this address")).to_be_visible()
    expect(deposit.get_by_text("We are waiting for your payment.")).to_be_visible()
    expect(deposit.get_by_text("This page updates by itself.")).to_be_visible()  # the script took over...
    expect(deposit.get_by_text("Reload this page to see the latest status.")).to_be_hidden()  # ...so no reload hint
    expect(deposit).to_have_attribute("data-invoicepay-polling", "on")

    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)  # the payer sends bitcoin: the widget notices
    pending = deposit.locator(".invoicepay-pending")
    expect(pending).to_contain_text("with 0 confirmations and is waiting to be confirmed")
    expect(deposit.get_by_text("We are waiting for your payment.")).to_have_count(0)
    sandbox.confirm(invoice.remote_id)
    expect(pending).to_contain_text("with 1 confirmation and is waiting to be confirmed")
    expect(pending).to_have_attribute("data-confirmations", "1")
    sandbox.confirm(invoice.remote_id)
    expect(pending).to_contain_text("with 2 confirmations and is waiting to be confirmed")
    expect(pending).to_have_attribute("data-confirmations", "2")

    sandbox.confirm(invoice.remote_id)  # the third confirmation settles it
    expect(deposit.get_by_text("Paid in full. Thank you.")).to_be_visible()
    expect(deposit).to_have_attribute("data-invoicepay-status", "paid")
    expect(deposit).to_have_attribute("data-invoicepay-polling", "off")  # final: no more polling
    expect(deposit.locator('[data-invoicepay-part="details"]')).to_have_count(0)
    expect(deposit.get_by_text("This page updates by itself.")).to_be_hidden()
    expect(page.locator(QR)).to_contain_text("This invoice is paid: there is nothing to scan.")

    assert page.navigations == [f"{live_server.url}/pay/{invoice.public_token}/"]  # updated in place, never reloaded
    assert page.evaluate("document.documentElement.getAttribute('data-inline-script')") is None  # CSP enforced
    assert len(csp_violations(page)) == 1 and "inline script" in csp_violations(page)[0]  # the canary, nothing else


@BARE
def test_an_expired_invoice_is_renewed_with_its_button_and_the_csrf_token(signed_in_page, invoice, live_server):
    page = signed_in_page
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/")
    deposit = page.locator(DEPOSIT)
    expect(deposit.get_by_text("Choose how you would like to pay")).to_be_visible()
    expect(deposit).to_have_attribute("data-invoicepay-polling", "on")

    sandbox.expire(invoice.remote_id)  # the widget finds out by itself
    expect(deposit.get_by_text("This invoice has expired")).to_be_visible()
    expect(deposit).to_have_attribute("data-invoicepay-polling", "off")
    renew = deposit.get_by_role("button", name="Create a new invoice")
    expect(renew).to_be_visible()
    expect(page.locator(QR).get_by_role("button", name="Create a new invoice")).to_be_visible()

    api = f"{live_server.url}/invoicepay/api/invoices/{invoice.public_token}/"
    refused = page.request.post(f"{api}renew/", data={})  # the visitor's session, without the CSRF token
    assert refused.status == 403 and "CSRF" in refused.json()["detail"]

    renew.click()
    page.wait_for_url(re.compile(rf"/pay/(?!{re.escape(invoice.public_token)}/)[A-Za-z0-9_-]+/$"))
    new_token = page.url.rstrip("/").rsplit("/", 1)[-1]
    fresh = page.locator(DEPOSIT)
    expect(fresh).to_have_attribute("data-invoicepay-token", new_token)
    expect(fresh).to_have_attribute("data-invoicepay-status", "initiated")
    expect(fresh.get_by_text("Choose how you would like to pay")).to_be_visible()
    assert page.request.get(api).json()["renewed_by"] == new_token
    violations = csp_violations(page)  # one canary per page shown (the expired one and the new one), nothing else
    assert len(violations) == 2 and all("inline script" in text for text in violations)


@BARE
def test_without_a_pay_url_the_token_in_the_address_is_replaced(invoice, page, live_server):
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/?pay_url=0")
    sandbox.expire(invoice.remote_id)
    page.locator(DEPOSIT).get_by_role("button", name="Create a new invoice").click()
    page.wait_for_url(lambda url: invoice.public_token not in url)
    assert re.search(r"/pay/[A-Za-z0-9_-]+/\?pay_url=0$", page.url)
    expect(page.locator(DEPOSIT)).to_have_attribute("data-invoicepay-status", "initiated")


@BARE
def test_without_a_page_to_go_to_the_new_invoice_is_shown_in_place(invoice, page, live_server):
    url = f"{live_server.url}/invoice/{invoice.pk}/"
    page.goto(url)
    sandbox.expire(invoice.remote_id)
    deposit, qr = page.locator(DEPOSIT), page.locator(QR)
    deposit.get_by_role("button", name="Create a new invoice").click()
    expect(deposit.get_by_text("A new invoice has been created.")).to_be_visible()
    expect(deposit).not_to_have_attribute("data-invoicepay-token", invoice.public_token)
    expect(deposit).to_have_attribute("data-invoicepay-status", "initiated")
    expect(deposit).to_have_attribute("data-invoicepay-polling", "on")  # following the new invoice
    expect(deposit.get_by_text("Choose how you would like to pay")).to_be_visible()
    expect(qr.get_by_text("Choose to pay from your wallet")).to_be_visible()
    new_token = deposit.get_attribute("data-invoicepay-token")
    assert qr.get_attribute("data-invoicepay-token") == new_token
    assert page.url == url and page.navigations == [url]
    assert page.request.get(f"{live_server.url}/invoicepay/api/invoices/{new_token}/").json()["status"] == "initiated"


@BARE
def test_without_javascript_the_widget_asks_for_a_reload(bitcoin_invoice, live_server, browser):
    page = open_page(browser, java_script_enabled=False)
    page.goto(f"{live_server.url}/pay/{bitcoin_invoice.public_token}/")
    deposit = page.locator(DEPOSIT)
    expect(deposit.get_by_text("We are waiting for your payment.")).to_be_visible()
    expect(deposit.get_by_text("Reload this page to see the latest status.")).to_be_visible()
    expect(deposit.get_by_role("link", name="Reload")).to_be_visible()
    expect(deposit.get_by_text("This page updates by itself.")).to_be_hidden()
    page.context.close()


# -- the example shop's pay page: the same tags and script, no script of the shop's --------------------------


def test_a_customer_pays_by_otp_in_the_browser(page, invoice, live_server):
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/")
    assert page.locator("script:not([src])").count() == 0  # the shop's page carries no script of its own
    page.get_by_role("button", name="My wallet").click()

    qr = page.get_by_role("img", name="Scan to pay 12.50 USD to Test Shop")
    qr.wait_for()
    page.get_by_label("Email").fill("ann@example.com")
    page.get_by_label("Wallet mobile number").fill("0821234567")
    page.get_by_role("button", name="Send me a code").click()
    page.locator('[data-invoicepay-error="payer_mobile_number"]').get_by_text("international format").wait_for()

    page.get_by_label("Wallet mobile number").fill("+27 82 123 4567")
    page.get_by_role("button", name="Send me a code").click()
    page.get_by_text("We sent a code by SMS").wait_for()
    expect(page.get_by_label("Code from the SMS")).to_be_focused()

    page.get_by_label("Code from the SMS").fill("111111")
    page.get_by_role("button", name="Pay", exact=True).click()
    page.locator('[data-invoicepay-error="otp"]').get_by_text("Invalid OTP.").wait_for()
    screenshot(page, "pay-wallet-otp.png", docs=True)

    page.get_by_label("Code from the SMS").fill(sandbox.SANDBOX_OTP)
    page.get_by_role("button", name="Pay", exact=True).click()
    page.get_by_text("Payment accepted.").wait_for()
    expect(page.locator("#pay-status")).to_have_text("paid")
    expect(page.locator(QR)).to_contain_text("This invoice is paid")
    expect(page.get_by_role("button", name="Send me a code")).to_be_hidden()  # data-invoicepay-when="open"
    screenshot(page, "pay-paid.png")

    page.get_by_role("link", name="Back to the order").click()
    page.locator("#order-status", has_text="completed").wait_for()
    page.locator("#invoice-status", has_text="paid").wait_for()


def test_a_crypto_payment_page_follows_its_confirmations(page, invoice, live_server):
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/?poll_ms=300")
    page.get_by_role("button", name="Bitcoin", exact=True).click()  # the page reloads with the details
    deposit = page.locator(DEPOSIT)
    expect(deposit.get_by_text("Send to this address")).to_be_visible()
    expect(deposit.get_by_text("We are waiting for your payment")).to_be_visible()
    navigations = len(page.navigations)

    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)  # the payer sends bitcoin: the page notices
    pending = deposit.locator(".invoicepay-pending")
    expect(pending).to_contain_text("with 0 confirmations and is waiting to be confirmed")
    sandbox.confirm(invoice.remote_id)
    expect(pending).to_contain_text("with 1 confirmation and is waiting to be confirmed")
    sandbox.confirm(invoice.remote_id)
    expect(pending).to_contain_text("with 2 confirmations and is waiting to be confirmed")
    screenshot(page, "pay-bitcoin-confirmations.png", docs=True)
    sandbox.confirm(invoice.remote_id)
    expect(deposit.get_by_text("Paid in full. Thank you.")).to_be_visible()
    expect(page.locator("#pay-status")).to_have_text("paid")
    expect(page.locator("#choose")).to_be_hidden()
    assert len(page.navigations) == navigations  # no reloads: the script re-rendered the widget


def test_an_expired_invoice_is_renewed_from_the_pay_page(page, invoice, live_server):
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/?poll_ms=300")
    sandbox.expire(invoice.remote_id)
    page.get_by_text("This invoice has expired").wait_for()  # found by the page's own check
    page.get_by_role("button", name="Create a new invoice").click()
    page.wait_for_url(lambda url: invoice.public_token not in url and "/pay/" in url)
    expect(page.locator("#pay-status")).to_have_text("initiated")
    page.get_by_role("heading", name="Pay 12.50 USD").wait_for()


# -- in the payer's language ---------------------------------------------------------------------------


@BARE
def test_a_french_browser_sees_every_update_in_french(bitcoin_invoice, invoice, live_server, browser):
    """Accept-Language: fr (LocaleMiddleware): the page and everything the script re-renders are French."""
    page = open_page(browser, locale="fr-FR")
    page.goto(f"{live_server.url}/pay/{invoice.public_token}/")
    deposit = page.locator(DEPOSIT)
    expect(deposit.get_by_text("Envoyez à cette adresse")).to_be_visible()
    expect(deposit.get_by_text("Nous attendons votre paiement.")).to_be_visible()
    expect(deposit.get_by_text("Cette page se met à jour automatiquement.")).to_be_visible()
    sandbox.crypto_deposit(invoice.remote_id, confirmations=0)
    pending = deposit.locator(".invoicepay-pending")
    expect(pending).to_contain_text("avec 0 confirmation et attend d’être confirmé")  # French: 0 is singular
    sandbox.confirm(invoice.remote_id, confirmations=2)
    expect(pending).to_contain_text("avec 2 confirmations et attend d’être confirmé")
    sandbox.confirm(invoice.remote_id)
    expect(deposit.get_by_text("Facture payée intégralement. Merci.")).to_be_visible()
    expect(page.locator(QR)).to_contain_text("Cette facture est payée\u00a0: il n’y a rien à scanner.")
    assert "Paid in full" not in page.content() and page.navigations == [page.url]  # re-rendered, not reloaded
    page.context.close()
    assert page.errors == []
