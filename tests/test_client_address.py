"""The client's address: REMOTE_ADDR unless trusted proxies vouch for X-Forwarded-For, read from the right.

The rate limits count guests by it: a client that writes another X-Forwarded-For on every request
must still be one client.
"""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings
from rest_framework.test import APIClient

from django_invoicepay.clientip import client_address, client_ident
from django_invoicepay.models import Invoice

PROXY = "10.0.0.2"
#: Consents from guests, so that the consent endpoint reaches its throttle without a login.
GUESTS = {"SANDBOX": True, "HOLDS_ALLOW_ANONYMOUS": True}
BEHIND_PROXY = {**GUESTS, "TRUSTED_PROXIES": ["10.0.0.0/24"]}
CONSENTS = "/invoicepay/api/holds/consents/"


def address(remote_addr: str | None = "203.0.113.9", xff: str | None = None, **invoicepay) -> str:
    meta = {"REMOTE_ADDR": remote_addr} if remote_addr is not None else {}
    request = RequestFactory().get("/", **meta)
    if remote_addr is None:
        del request.META["REMOTE_ADDR"]
    if xff is not None:
        request.META["HTTP_X_FORWARDED_FOR"] = xff
    with override_settings(INVOICEPAY={"SANDBOX": True, **invoicepay}):
        return client_address(request)


def ident(remote_addr: str, **invoicepay) -> str:
    request = RequestFactory().get("/", REMOTE_ADDR=remote_addr)
    with override_settings(INVOICEPAY={"SANDBOX": True, **invoicepay}):
        return client_ident(request)


# By default: the connection's address, whatever the headers say.

@pytest.mark.parametrize("xff", [None, "1.2.3.4", "1.2.3.4, 5.6.7.8", "garbage", ""])
def test_by_default_headers_are_ignored(xff):
    assert address("203.0.113.9", xff) == "203.0.113.9"


def test_without_any_address_clients_share_one_identity():
    """A Unix socket gives no REMOTE_ADDR: with no proxy trusted on it, such clients are one client."""
    assert address("", "198.51.100.7") == "unknown"
    assert address(None, "198.51.100.7") == "unknown"


# Behind trusted proxies: the right-most address that is not a trusted proxy.

@pytest.mark.parametrize(
    ("remote_addr", "xff", "client"),
    [
        (PROXY, "198.51.100.7", "198.51.100.7"),  # nginx: X-Forwarded-For $remote_addr
        (PROXY, "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # the client's own header, appended to: never read
        (PROXY, "6.6.6.6, 198.51.100.7, 10.0.0.9", "198.51.100.7"),  # two trusted proxies in a row
        (PROXY, "198.51.100.7:51234", "198.51.100.7"),  # a proxy that appends the port
        (PROXY, "[2001:db8::7]:443", "2001:db8::7"),
        (PROXY, " 2001:db8::7 ", "2001:db8::7"),
        (f"::ffff:{PROXY}", "198.51.100.7", "198.51.100.7"),  # the proxy seen through an IPv6 socket
        (PROXY, "::ffff:198.51.100.7", "198.51.100.7"),
        ("203.0.113.9", "198.51.100.7", "203.0.113.9"),  # not through the proxy: the header is not believed
    ],
)
def test_behind_trusted_proxies_the_client_is_the_rightmost_untrusted_address(remote_addr, xff, client):
    assert address(remote_addr, xff, TRUSTED_PROXIES=["10.0.0.0/24"]) == client


@pytest.mark.parametrize(
    ("xff", "client"),
    [
        (None, PROXY),  # no header (a health check from the proxy itself)
        ("", PROXY),
        ("garbage", PROXY),
        ("198.51.100.7, garbage", PROXY),  # what the proxy wrote is unreadable: stop at the proxy
        ("198.51.100.7, , 10.0.0.9", "10.0.0.9"),  # stop at the last address a trusted proxy vouched for
        ("198.51.100.7,10.0.0.9,", PROXY),
        ("1.2.3.4\x00", PROXY),
        ("[2001:db8::7", PROXY),
        ("198.51.100.7:http", PROXY),
        ("unknown", PROXY),
        ("१९८.५१.१००.७", PROXY),  # other digits are not an address
        ("10.0.0.9, " * 10_000 + "198.51.100.7, 10.0.0.9", "198.51.100.7"),
        ("198.51.100.7, " + "10.0.0.9, " * 100 + "10.0.0.9", "10.0.0.9"),  # longer than any real chain
    ],
)
def test_malformed_headers_end_the_walk_safely(xff, client):
    assert address(PROXY, xff, TRUSTED_PROXIES=["10.0.0.0/24"]) == client


def test_a_unix_socket_proxy_is_trusted_only_when_listed():
    assert address("", "198.51.100.7", TRUSTED_PROXIES=["unix"]) == "198.51.100.7"
    assert address(None, "6.6.6.6, 198.51.100.7", TRUSTED_PROXIES=["unix"]) == "198.51.100.7"
    assert address(None, None, TRUSTED_PROXIES=["unix"]) == "unix"
    assert address("203.0.113.9", "198.51.100.7", TRUSTED_PROXIES=["unix"]) == "203.0.113.9"


@pytest.mark.parametrize("trusted", [1, "10.0.0.2", ["0.0.0.0/0"], ["::/0"], ["not an address"], {"a": 1}, None])
def test_a_wrong_trusted_proxies_setting_believes_no_header(trusted):
    """The checks report it (E020); meanwhile nothing a client writes is believed."""
    assert address(PROXY, "198.51.100.7", TRUSTED_PROXIES=trusted) == PROXY


def test_rate_limits_count_an_ipv6_client_by_its_64_network():
    assert ident("2001:db8:1:2::7") == ident("2001:db8:1:2:ffff::1") == "2001:db8:1:2::/64"
    assert ident("2001:db8:1:3::7") != ident("2001:db8:1:2::7")
    assert ident("203.0.113.9") == "203.0.113.9"
    assert ident("::ffff:203.0.113.9") == "203.0.113.9"


# Through the API: the rate limits count by it.

def hammer(client: APIClient, url: str, times: int, **extra) -> list[int]:
    return [client.post(url, {}, format="json", **extra).status_code for _ in range(times)]


def payer_url(invoice) -> str:
    return f"/invoicepay/api/invoices/{invoice.public_token}/payer/"


@pytest.fixture(params=["consents", "payer"])
def throttled_url(request, db):
    """A throttled endpoint (PayerThrottle); an empty body is a 400 that reaches no provider."""
    if request.param == "consents":
        return CONSENTS
    from shop.models import Order

    order = Order.objects.create(description="Tea", total=500)
    return payer_url(Invoice.objects.create_for(order, amount=500))


def test_a_new_x_forwarded_for_each_time_is_still_one_client(throttled_url):
    client = APIClient(REMOTE_ADDR="203.0.113.9")
    with override_settings(INVOICEPAY={**GUESTS, "THROTTLE_RATES": {"payer": "5/min"}}):
        codes = [client.post(throttled_url, {}, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code
                 for n in range(20)]
    assert codes == [400] * 5 + [429] * 15


def test_behind_a_proxy_two_clients_are_counted_apart_and_forging_does_not_help(throttled_url):
    proxy = APIClient(REMOTE_ADDR=PROXY)  # every request arrives from the proxy
    with override_settings(INVOICEPAY={**BEHIND_PROXY, "THROTTLE_RATES": {"payer": "5/min"}}):
        # the forger writes its own X-Forwarded-For; the proxy appends the address it saw
        forger = [proxy.post(throttled_url, {}, format="json",
                             HTTP_X_FORWARDED_FOR=f"198.51.100.{n}, 203.0.113.66").status_code for n in range(8)]
        honest = hammer(proxy, throttled_url, 5, HTTP_X_FORWARDED_FOR="203.0.113.77")
        direct = [APIClient(REMOTE_ADDR="203.0.113.88").post(
            throttled_url, {}, format="json", HTTP_X_FORWARDED_FOR=f"198.51.100.{n}").status_code for n in range(8)]
    assert forger == [400] * 5 + [429] * 3
    assert honest == [400] * 5  # another client behind the same proxy has its own limit
    assert direct == [400] * 5 + [429] * 3  # past the proxy, the header is not believed


@pytest.mark.parametrize("xff", ["\x00", ",,,,", "[", "a" * 5000, "1.2.3.4, " * 500, "🙂"])
def test_malformed_headers_are_never_a_500(throttled_url, xff):
    with override_settings(INVOICEPAY={**BEHIND_PROXY, "THROTTLE_RATES": {"payer": "2/min"}}):
        codes = hammer(APIClient(REMOTE_ADDR=PROXY), throttled_url, 3, HTTP_X_FORWARDED_FOR=xff)
    assert codes == [400, 400, 429]  # counted as the proxy itself: limited, not unlimited
