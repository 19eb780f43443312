"""The Scan to Pay URI a Rehive wallet reads from a QR code (docs/reference/wire-format.md#scan-to-pay-uri).

    rehive:<USER_ID>?currency=<CODE>&amount=<AMOUNT>&qr_id=<REFERENCE>&name=<NAME>(&subtype=<SUBTYPE>)

AMOUNT is the native quote's amount in major units with exactly the quote currency's
divisibility in decimals (101 at divisibility 2 -> "1.01"; never via a float).
"""

from __future__ import annotations

from urllib.parse import quote

from ..money import format_amount


def _component(value: str) -> str:
    """Percent-encode everything but unreserved characters: '&', '=', ' ' and '?' never leak."""
    return quote(str(value), safe="-._~")


def scan_to_pay_uri(
    *,
    scheme: str,
    user_id: str,
    currency: str,
    amount: int,
    divisibility: int,
    reference: str,
    name: str,
    subtype: str = "",
) -> str:
    query = [
        ("currency", currency),
        ("amount", format_amount(amount, divisibility)),
        ("qr_id", reference),
        ("name", name),
    ]
    if subtype:
        query.append(("subtype", subtype))
    params = "&".join(f"{key}={_component(value)}" for key, value in query)
    return f"{scheme}:{_component(user_id)}?{params}"
