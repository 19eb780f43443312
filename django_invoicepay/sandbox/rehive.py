"""An offline simulator of Rehive's business and payment-requests services.

It speaks the real wire format (envelopes, pagination, error shapes, ms timestamps)
and rejects what the real service rejects (missing or wrong token, unknown invoice,
bad fields) with the real error envelope. `transport.py` serves it in-process to the
requests session; `server.py` serves it over HTTP.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from email.utils import parseaddr
from typing import Any
from urllib.parse import parse_qs, urlencode

from ..statuses import InvoiceStatus
from .payer import SandboxActionError, choose_processor, pay
from .processors import BUSINESS_CURRENCY, FINAL_INVOICE_STATUSES, PROCESSORS
from .state import SandboxState, get_state

# The OTP the sandbox accepts for every OTP payment; any other code is refused.
SANDBOX_OTP = "401703"
BUSINESS_USER_ID = "6a1a4bd6-5c1b-4bd1-8e0a-0b6f1d0f9d2e"
# How long Rehive remembers an Idempotency-Key; after that the same key creates anew.
IDEMPOTENCY_KEY_LIFETIME_MS = 24 * 60 * 60 * 1000

REQUEST_FIELDS = {
    "payer_email", "payer_mobile_number", "primary_payment_processor",
    "payment_processor_currency", "quote_amount", "status", "note",
}
INVOICE_FIELDS = {
    "request_amount", "status", "request_reference", "description", "return_url",
    "payer_email", "payer_mobile_number", "expiration_date", "due_date", "metadata",
}


@dataclass
class SandboxResponse:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)

    def content(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        return json.dumps(self.body).encode()

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "application/json")


def ok(data: Any, status: int = 200) -> SandboxResponse:
    return SandboxResponse(status, {"status": "success", "data": data})


def error(status: int, message: str, data: dict | None = None) -> SandboxResponse:
    body: dict[str, Any] = {"status": "error", "message": message}
    if data:
        body["data"] = data
    return SandboxResponse(status, body)


def _detached(body: Any) -> Any:
    """The answer as JSON would carry it: a copy that later changes to the simulated objects never reach
    (and that outlives the transaction it was read in)."""
    return body if isinstance(body, bytes) else json.loads(json.dumps(body))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _remembered(entry: list | None) -> SandboxResponse | None:
    """The first answer to an Idempotency-Key, while the key lives (entries of older stores carry no time)."""
    if entry is None or (len(entry) > 2 and _now_ms() - entry[2] >= IDEMPOTENCY_KEY_LIFETIME_MS):
        return None
    return SandboxResponse(entry[0], entry[1])


class Rejected(Exception):
    def __init__(self, response: SandboxResponse) -> None:
        self.response = response


def field_error(name: str, message: str) -> Rejected:
    return Rejected(error(400, message, {name: [message]}))


class RehiveSandbox:
    """Routes `(service, method, path)` to handlers. Services: 'business' and 'requests'."""

    def __init__(self, state: SandboxState | None = None, *, api_key: str, business_id: str) -> None:
        self._state = state  # None: whichever sandbox `get_state()` names at each request
        self.api_key = api_key
        self.business_id = business_id
        self.routes = [
            ("business", r"^manager/businesses/(?P<bid>[^/]+)/invoices/$", self.invoices),
            ("business", r"^manager/businesses/(?P<bid>[^/]+)/invoices/(?P<iid>[^/]+)/$", self.invoice),
            ("business", r"^manager/businesses/(?P<bid>[^/]+)/invoices/(?P<iid>[^/]+)/transactions/$",
             self.invoice_transactions),
            ("business", r"^manager/businesses/(?P<bid>[^/]+)/invoices/(?P<iid>[^/]+)/refunds/$", self.refunds),
            ("requests", r"^requests/(?P<iid>[^/]+)/$", self.request),
            ("requests", r"^requests/(?P<iid>[^/]+)/otp_challenge/$", self.otp_challenge),
            ("requests", r"^requests/(?P<iid>[^/]+)/resend_otp/$", self.resend_otp),
            ("requests", r"^requests/(?P<iid>[^/]+)/payment_processors/$", self.payment_processors),
            ("requests", r"^requests/(?P<iid>[^/]+)/transactions/$", self.request_transactions),
        ]

    @property
    def state(self) -> SandboxState:
        return self._state if self._state is not None else get_state()

    # -- entry point --------------------------------------------------------------------------

    def handle(
        self, service: str, method: str, path: str, *, query: str = "", headers: dict[str, str],
        body: bytes = b"", base_url: str = "",
    ) -> SandboxResponse:
        headers = {k.lower(): v for k, v in headers.items()}
        route = self._route(service, path)
        if route is None:
            return error(404, "Not found.")
        handler, match = route
        try:
            if service == "business":
                self._authenticate(headers, match.group("bid"))
            payload = self._json(body) if method in {"POST", "PATCH", "PUT"} else {}
            key = headers.get("idempotency-key") if method == "POST" else None
            # One transaction per request: the handler reads, changes and writes the objects it
            # needs while no other process can (a rejected request changes nothing).
            with self.state.transaction() as data:
                replay = _remembered(data["idempotency"].get(key)) if key else None
                if replay is not None:
                    return replay
                response = handler(
                    method, payload=payload, query=parse_qs(query), base_url=base_url, **match.groupdict()
                )
                response = SandboxResponse(response.status, _detached(response.body), response.headers)
                if key and response.status < 500:
                    data["idempotency"][key] = [response.status, _detached(response.body), _now_ms()]
                return response
        except Rejected as rejected:
            return rejected.response

    # -- helpers ------------------------------------------------------------------------------

    def _route(self, service: str, path: str) -> tuple[Any, re.Match] | None:
        for route_service, pattern, handler in self.routes:
            match = re.match(pattern, path) if route_service == service else None
            if match:
                return handler, match
        return None

    def _authenticate(self, headers: dict[str, str], business_id: str) -> None:
        auth = headers.get("authorization", "")
        if not auth:
            raise Rejected(error(401, "Authentication credentials were not provided."))
        scheme, _, token = auth.partition(" ")
        if scheme != "Token" or token != self.api_key:
            raise Rejected(error(401, "Invalid token."))
        if business_id != self.business_id:
            raise Rejected(error(403, "Permission denied."))

    @staticmethod
    def _json(body: bytes) -> dict:
        if not body:
            return {}
        try:
            value = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            raise Rejected(error(400, "JSON parse error - Expecting value.")) from None
        if not isinstance(value, dict):
            raise Rejected(error(400, "Invalid data. Expected a dictionary."))
        return value

    def _get(self, invoice_id: str) -> dict:
        invoice = self.state.data["invoices"].get(invoice_id)
        if invoice is None:
            raise Rejected(error(404, "Not found."))
        return invoice

    def _page(self, items: list, query: dict, base_url: str, path: str) -> dict | list:
        """Paginated like the current API; a plain list when `legacy_lists` is set (the older shape)."""
        def number(name: str, default: int) -> int:
            try:
                return max(int(query.get(name, [default])[0]), 1)
            except ValueError:
                raise field_error(name, "A valid integer is required.") from None

        if self.state.data.get("legacy_lists"):
            return items
        page, size = number("page", 1), min(number("page_size", 15), 250)
        start = (page - 1) * size

        def link(p: int) -> str:
            return f"{base_url}{path}?{urlencode({'page': p, 'page_size': size})}"

        return {
            "count": len(items),
            "next": link(page + 1) if start + size < len(items) else None,
            "previous": link(page - 1) if page > 1 else None,
            "results": items[start : start + size],
        }

    @staticmethod
    def _check_fields(payload: dict) -> None:
        if "request_amount" in payload:
            amount = payload["request_amount"]
            if isinstance(amount, bool) or not isinstance(amount, int):
                raise field_error("request_amount", "A valid integer is required.")
            if amount <= 0:
                raise field_error("request_amount", "Ensure this value is greater than 0.")
        email = payload.get("payer_email")
        if email and ("@" not in parseaddr(str(email))[1] or " " in str(email)):
            raise field_error("payer_email", "Enter a valid email address.")
        mobile = payload.get("payer_mobile_number")
        if mobile and not re.fullmatch(r"\+[1-9]\d{6,14}", str(mobile)):
            raise field_error("payer_mobile_number", "Enter a valid mobile number.")
        if not isinstance(payload.get("metadata"), dict | type(None)):
            raise field_error("metadata", "Expected a dictionary.")
        for name in ("expiration_date", "due_date"):
            value = payload.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
                raise field_error(name, "Expected a timestamp in milliseconds.")

    def _touch(self, invoice: dict) -> dict:
        invoice["updated"] = self.state.now_ms()
        return invoice

    # -- business service ---------------------------------------------------------------------

    def invoices(self, method: str, *, payload: dict, query: dict, base_url: str, bid: str) -> SandboxResponse:
        if method == "GET":
            items = sorted(self.state.data["invoices"].values(), key=lambda i: -i["created"])
            path = f"manager/businesses/{bid}/invoices/"
            return ok(self._page(items, query, base_url, path))
        if method != "POST":
            return error(405, f'Method "{method}" not allowed.')
        missing = [name for name in ("request_amount", "status") if name not in payload]
        if missing:
            raise Rejected(error(400, "This field is required.", {n: ["This field is required."] for n in missing}))
        if payload["status"] not in InvoiceStatus.NEW:
            raise field_error("status", "New invoices must be draft or initiated.")
        self._check_fields(payload)
        now = self.state.now_ms()
        invoice_id = str(uuid.uuid4())
        invoice = {
            "id": invoice_id,
            "reference": "INV" + invoice_id.replace("-", "")[:10].upper(),
            "request_reference": str(payload.get("request_reference") or ""),
            "status": payload["status"],
            "request_amount": payload["request_amount"],
            "request_currency": dict(BUSINESS_CURRENCY),
            "user": {"id": BUSINESS_USER_ID, "email": "shop@sandbox.invalid"},
            "account": "SANDBOXACC",
            "primary_payment_processor": None,
            "payer_email": payload.get("payer_email") or None,
            "payer_mobile_number": payload.get("payer_mobile_number") or None,
            "payer_user": None,
            "description": payload.get("description") or "",
            "return_url": payload.get("return_url") or None,
            "redirect_url": f"https://sandbox.invoicepay.invalid/checkout?request={invoice_id}",
            "expiration_date": payload.get("expiration_date"),
            "due_date": payload.get("due_date"),
            "metadata": payload.get("metadata") or {},
            "refunded": False,
            "payment_processor_quotes": [],
            "created": now,
            "updated": now,
        }
        self.state.data["invoices"][invoice_id] = invoice
        return ok(invoice, status=201)

    def invoice(self, method: str, *, payload: dict, iid: str, **_: Any) -> SandboxResponse:
        invoice = self._get(iid)
        if method == "GET":
            return ok(invoice)
        if method not in {"PATCH", "PUT"}:
            return error(405, f'Method "{method}" not allowed.')
        self._check_fields(payload)
        status = payload.get("status")
        if status is not None and status != invoice["status"]:
            if status != InvoiceStatus.CANCELLED:
                raise field_error("status", "Only a cancellation can be requested.")
            if invoice["status"] in FINAL_INVOICE_STATUSES or invoice["status"] == InvoiceStatus.UNDERPAID:
                raise field_error("status", f"A {invoice['status']} invoice cannot be cancelled.")
        if "request_amount" in payload and invoice["payment_processor_quotes"]:
            raise field_error("request_amount", "The amount cannot change once a payment method was chosen.")
        for name in INVOICE_FIELDS & payload.keys():
            invoice[name] = payload[name]
        return ok(self._touch(invoice))

    def invoice_transactions(self, method: str, *, query: dict, base_url: str, iid: str, bid: str,
                             **_: Any) -> SandboxResponse:
        self._get(iid)
        items = self.state.data["transactions"].get(iid, [])
        return ok(self._page(items, query, base_url, f"manager/businesses/{bid}/invoices/{iid}/transactions/"))

    def refunds(self, method: str, *, payload: dict, query: dict, base_url: str, iid: str, bid: str,
                **_: Any) -> SandboxResponse:
        # Inferred, as the client sends it: docs/reference/wire-format.md#refund-body
        invoice = self._get(iid)
        if method == "GET":
            refunds = self.state.data["refunds"].get(iid, [])
            return ok(self._page(refunds, query, base_url, f"manager/businesses/{bid}/invoices/{iid}/refunds/"))
        refunds = self.state.data["refunds"].setdefault(iid, [])
        amount = payload.get("amount")
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise field_error("amount", "A positive integer amount is required.")
        paid = sum(q["total_paid"] for q in invoice["payment_processor_quotes"])
        refunded = sum(r["amount"] for r in refunds)
        if amount > paid - refunded:
            raise field_error("amount", "The refund is larger than what was paid and not yet refunded.")
        now = self.state.now_ms()
        refund = {
            "id": str(uuid.uuid4()), "amount": amount, "currency": payload.get("currency"),
            "note": str(payload.get("note") or ""), "status": "complete", "created": now, "updated": now,
        }
        refunds.append(refund)
        invoice["refunded"] = True
        self._touch(invoice)
        return ok(refund, status=201)

    # -- payment-requests service -------------------------------------------------------------

    def request(self, method: str, *, payload: dict, iid: str, **_: Any) -> SandboxResponse:
        invoice = self._get(iid)
        if method == "GET":
            return ok(invoice)
        if method != "PATCH":
            return error(405, f'Method "{method}" not allowed.')
        unknown = payload.keys() - REQUEST_FIELDS
        if unknown:
            name = sorted(unknown)[0]
            raise field_error(name, "This field cannot be changed by the payer.")
        self._check_fields(payload)
        if payload.get("status") not in (None, invoice["status"]):
            raise field_error("status", "This status cannot be set by the payer.")
        if invoice["status"] in FINAL_INVOICE_STATUSES:
            raise Rejected(error(400, f"This invoice is {invoice['status']} and can no longer be changed."))
        for name in ("payer_email", "payer_mobile_number"):
            if name in payload:
                invoice[name] = payload[name] or None
        processor = payload.get("primary_payment_processor")
        if processor:
            if processor not in PROCESSORS:
                raise field_error("primary_payment_processor", "Invalid payment processor.")
            choose_processor(iid, processor, state=self.state)
        return ok(self._touch(invoice))

    def otp_challenge(self, method: str, *, payload: dict, iid: str, **_: Any) -> SandboxResponse:
        invoice = self._get(iid)
        if method != "POST":
            return error(405, f'Method "{method}" not allowed.')
        if not (invoice.get("payer_email") and invoice.get("payer_mobile_number")):
            raise Rejected(error(400, "Add the payer's email and mobile number before the OTP."))
        otp = payload.get("otp")
        if not otp:
            raise field_error("otp", "This field is required.")
        if str(otp) != SANDBOX_OTP:
            raise Rejected(error(400, "Invalid OTP."))
        try:
            if invoice.get("primary_payment_processor") != "native":
                choose_processor(iid, "native", state=self.state)
            pay(iid, state=self.state)
        except SandboxActionError as exc:
            raise Rejected(error(400, str(exc))) from None
        return SandboxResponse(201, {"status": "success", "data": None})

    def resend_otp(self, method: str, *, iid: str, **_: Any) -> SandboxResponse:
        invoice = self._get(iid)
        if not invoice.get("payer_mobile_number"):
            raise Rejected(error(400, "There is no mobile number to send an OTP to."))
        return ok(None)

    def payment_processors(self, method: str, *, query: dict, base_url: str, iid: str, **_: Any) -> SandboxResponse:
        self._get(iid)
        items = list(PROCESSORS.values())
        return ok(self._page(items, query, base_url, f"requests/{iid}/payment_processors/"))

    def request_transactions(self, method: str, *, query: dict, base_url: str, iid: str, **_: Any) -> SandboxResponse:
        self._get(iid)
        items = self.state.data["transactions"].get(iid, [])
        return ok(self._page(items, query, base_url, f"requests/{iid}/transactions/"))
