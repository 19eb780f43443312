"""HTTP client for Rehive's business service (manager) and payment-requests service (payer).

Both services take `Authorization: Token <key>` and answer in the envelope
`{"status": "success", "data": ...}` or `{"status": "error", "message": ..., "data": {field: [...]}}`.
Errors become the typed exceptions of `django_invoicepay.errors`, carrying the
provider's message (meant for the payer) and the HTTP status. Wire facts:
docs/reference/wire-format.md#rehive-services-and-base-urls and the sections after it.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import requests
from django.utils.translation import gettext_lazy

from ..errors import ProviderBadResponse, error_for_status
from ..http import HttpTransport, with_trailing_slash
from ..masking import Redacted
from .payloads import PROVIDER, InvoiceData, TransactionData, list_results

logger = logging.getLogger("django_invoicepay.http")

PAGE_SIZE = 50
MAX_PAGES = 200

DEFAULT_MESSAGES = {  # when the provider gave no message of its own
    401: gettext_lazy("Authentication credentials were not provided or are invalid."),
    403: gettext_lazy("Permission denied."),
    404: gettext_lazy("Not found."),
}


def _segment(value: str) -> str:
    """A path segment from an id, so no id can reach another path."""
    return quote(str(value), safe="")


def _path(response: requests.Response) -> str:
    return urlsplit(response.url or "").path


def read_envelope(response: requests.Response) -> Any:
    """The `data` of a success envelope; a typed error for anything else."""
    status = response.status_code
    try:
        body = response.json() if response.content else None
    except (ValueError, json.JSONDecodeError):
        body = None
        if status < 500:  # a 5xx page may be a proxy's HTML: that is just 'unavailable'
            logger.warning("rehive %s answered HTTP %d with a body that is not JSON (%d bytes, %s)",
                           _path(response), status, len(response.content),
                           response.headers.get("Content-Type", "no content type"))
            raise ProviderBadResponse(provider=PROVIDER, status=status) from None
    if 200 <= status < 300:
        if isinstance(body, dict) and body.get("status") == "success":
            return body.get("data")
        if isinstance(body, dict) and body.get("status") == "error":
            logger.warning("rehive %s answered HTTP %d with an error envelope", _path(response), status)
            raise ProviderBadResponse(provider=PROVIDER, status=status)
        return body  # 201/204 with no envelope: nothing more to read
    message, field_errors = "", {}
    if isinstance(body, dict):
        message = str(body.get("message") or body.get("detail") or "")
        data = body.get("data")
        if isinstance(data, dict):
            field_errors = {
                str(k): [str(m) for m in (v if isinstance(v, list) else [v])] for k, v in data.items()
            }
    cls = error_for_status(status)
    raise cls(
        message or str(DEFAULT_MESSAGES.get(status, "")),
        provider=PROVIDER,
        status=status,
        field_errors=field_errors,
    )


class RehiveClient:
    """Calls both Rehive services. Base URLs include the `/api/` segment (white-label hosts differ)."""

    def __init__(
        self,
        *,
        transport: HttpTransport,
        api_key: str,
        business_id: str,
        business_url: str,
        payment_requests_url: str,
    ) -> None:
        self.transport = transport
        self.api_key = Redacted(api_key)
        self.business_id = business_id
        self.business_url = with_trailing_slash(business_url)
        self.payment_requests_url = with_trailing_slash(payment_requests_url)

    # -- plumbing -----------------------------------------------------------------------------

    def _headers(self, idempotency_key: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "Authorization": Redacted(f"Token {self.api_key}")}
        if idempotency_key:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def _call(
        self,
        method: str,
        url: str,
        *,
        json_body: Any = None,
        params: dict | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        response = self.transport.request(
            method,
            url,
            json=json_body,
            params=params,
            headers=self._headers(idempotency_key),
            idempotent=method == "GET" or bool(idempotency_key),
            expect_json=True,
        )
        return read_envelope(response)

    def _create(self, url: str, body: dict, idempotency_key: str | None) -> Any:
        """POST with an Idempotency-Key: the same key on every retry, so one object is created."""
        return self._call("POST", url, json_body=body, idempotency_key=idempotency_key or uuid.uuid4().hex)

    def _iterate(self, url: str, params: dict | None = None) -> Iterator[dict]:
        """Every item of a list, following `next` links on the same service only."""
        page_params: dict | None = {"page_size": PAGE_SIZE, **(params or {})}
        for _ in range(MAX_PAGES):
            items, next_url = list_results(self._call("GET", url, params=page_params))
            yield from items
            if not next_url:
                return
            if not next_url.startswith((self.business_url, self.payment_requests_url)):
                logger.warning("rehive sent a next page on another host: not followed")
                raise ProviderBadResponse(provider=PROVIDER)
            url, page_params = next_url, None

    def _invoice_url(self, invoice_id: str = "", suffix: str = "") -> str:
        url = f"{self.business_url}manager/businesses/{_segment(self.business_id)}/invoices/"
        if invoice_id:
            url += f"{_segment(invoice_id)}/{suffix}"
        return url

    def _request_url(self, request_id: str, suffix: str = "") -> str:
        return f"{self.payment_requests_url}requests/{_segment(request_id)}/{suffix}"

    # -- business service (manager) -----------------------------------------------------------

    def create_invoice(self, fields: dict, *, idempotency_key: str | None = None) -> InvoiceData:
        # Wire values, not InvoiceStatus (the client knows no model code):
        # docs/reference/wire-format.md#rehive-create-invoice
        body = {"status": "initiated", **fields}
        return InvoiceData.parse(self._create(self._invoice_url(), body, idempotency_key))

    def get_invoice(self, invoice_id: str) -> InvoiceData:
        return InvoiceData.parse(self._call("GET", self._invoice_url(invoice_id)))

    def list_invoices(self, **params: Any) -> Iterator[InvoiceData]:
        for item in self._iterate(self._invoice_url(), params):
            yield InvoiceData.parse(item)

    def update_invoice(self, invoice_id: str, fields: dict) -> InvoiceData:
        return InvoiceData.parse(self._call("PATCH", self._invoice_url(invoice_id), json_body=fields))

    def cancel_invoice(self, invoice_id: str) -> InvoiceData:
        return self.update_invoice(invoice_id, {"status": "cancelled"})  # a wire value, as above

    def list_invoice_transactions(self, invoice_id: str) -> list[TransactionData]:
        url = self._invoice_url(invoice_id, "transactions/")
        return [TransactionData.parse(item) for item in self._iterate(url)]

    def list_refunds(self, invoice_id: str) -> list[dict]:
        return list(self._iterate(self._invoice_url(invoice_id, "refunds/")))

    def create_refund(
        self, invoice_id: str, fields: dict, *, idempotency_key: str | None = None
    ) -> dict:
        data = self._create(self._invoice_url(invoice_id, "refunds/"), fields, idempotency_key)
        return data if isinstance(data, dict) else {}

    # -- payment-requests service (payer-facing) ----------------------------------------------

    def update_request(self, request_id: str, fields: dict) -> InvoiceData:
        return InvoiceData.parse(self._call("PATCH", self._request_url(request_id), json_body=fields))

    def otp_challenge(self, request_id: str, otp: str, *, idempotency_key: str | None = None) -> Any:
        url = self._request_url(request_id, "otp_challenge/")
        return self._create(url, {"otp": otp}, idempotency_key)

    def resend_otp(self, request_id: str) -> Any:
        return self._create(self._request_url(request_id, "resend_otp/"), {}, None)

    def payment_processors(self, request_id: str) -> list[dict]:
        return list(self._iterate(self._request_url(request_id, "payment_processors/")))
