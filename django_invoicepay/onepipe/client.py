"""HTTP client for OnePipe's /transact, /transact/validate, /query, /reverse and /options.

Every call carries a new `request_ref`, `Authorization: Bearer <api key>` and the MD5
`Signature`; a transaction keeps its `transaction_ref` across calls. Answers become
`OnePipeResult`s; a `Successful` whose `data.error` is set is a failure (OnePipe's own plugin
treats it so). Wire facts: docs/reference/wire-format.md#onepipe-endpoints and the sections after it.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.utils.translation import gettext_lazy as _

from ..errors import ProviderBadResponse, error_for_status
from ..http import HttpTransport, with_trailing_slash
from ..masking import Redacted
from .secure import signature

logger = logging.getLogger("django_invoicepay.onepipe")
PROVIDER = "onepipe"
STATUSES = {"Successful", "Failed", "WaitingForOTP", "PendingValidation", "OptionsDelivered"}
#: Provider response codes seen in the wild -> a message a person can act on.
CODE_MESSAGES = {
    "51": _("Insufficient funds for this amount."),
    "94": _("A transaction with this reference was made in the last 5 minutes."),
    "09": _("The transaction is still in progress: check again shortly."),
    "97": _("The provider timed out: try again."),
}


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_expiry(value: Any) -> datetime | None:
    """OnePipe writes expiries as yyyy-MM-dd-hh-mm-ss.

    UTC is inferred: docs/reference/wire-format.md#onepipe-expiry-format.
    """
    if not value or not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d-%H-%M-%S").replace(tzinfo=UTC)
    except ValueError:
        logger.warning("OnePipe sent an expiry that is not yyyy-MM-dd-hh-mm-ss")
        return None


UNDECIDED_CODES = frozenset({"09", "97"})  # in progress, timeout: not a final answer


@dataclass(frozen=True)
class OnePipeResult:
    status: str  # as sent
    message: str
    code: str
    provider_response: dict
    error_message: str
    raw: dict = field(repr=False)

    @property
    def successful(self) -> bool:
        return self.status == "Successful" and not self.error_message

    @property
    def outcome(self) -> str:
        """Successful / Failed / WaitingForOTP / PendingValidation / OptionsDelivered."""
        if self.status == "Successful" and self.error_message:
            return "Failed"
        return self.status if self.status in STATUSES else "Failed"

    @property
    def undecided(self) -> bool:
        """OnePipe's codes 09 (in progress) and 97 (timeout): the transaction's fate is not known yet, so a
        later transact/query decides (docs/reference/wire-format.md#onepipe-response-codes)."""
        return self.code in UNDECIDED_CODES

    @property
    def reason(self) -> str:
        """What went wrong, for a person."""
        known = CODE_MESSAGES.get(self.code)
        return str(known) if known else self.error_message or self.message or str(_("The transaction failed."))

    @classmethod
    def parse(cls, body: Any) -> OnePipeResult:
        if not isinstance(body, dict) or not isinstance(body.get("status"), str):
            raise ProviderBadResponse(provider=PROVIDER)
        data = _dict(body.get("data"))
        error = _dict(data.get("error"))
        errors = data.get("errors")
        errors = errors if isinstance(errors, list) else []
        first = next((e for e in errors if isinstance(e, dict)), {})
        code = str(error.get("code") or first.get("code") or data.get("provider_response_code") or "")
        error_message = str(error.get("message") or first.get("message") or "")
        return cls(
            status=body["status"],
            message=str(body.get("message") or ""),
            # "00" and "T0" mark no error (inferred: docs/reference/wire-format.md#onepipe-response-codes).
            code=code if code not in {"00", "T0"} else "",
            provider_response=_dict(data.get("provider_response")),
            error_message=error_message,
            raw=body,
        )


class OnePipeClient:
    def __init__(self, *, transport: HttpTransport, api_key: str, client_secret: str, base_url: str,
                 mock_mode: str = "inspect", auth_provider: str = "") -> None:
        self.transport = transport
        self.api_key = Redacted(api_key)
        self.client_secret = Redacted(client_secret)
        self.base_url = with_trailing_slash(base_url)
        self.mock_mode = mock_mode
        self.auth_provider = auth_provider

    def _post(self, path: str, body: dict, *, idempotent: bool = False) -> OnePipeResult:
        request_ref = uuid.uuid4().hex  # new on every call, retries included
        headers = {
            "Authorization": Redacted(f"Bearer {self.api_key}"),
            "Signature": signature(request_ref, self.client_secret),
            "Accept": "application/json",
        }
        response = self.transport.request("POST", self.base_url + path, json={"request_ref": request_ref, **body},
                                          headers=headers, idempotent=idempotent, expect_json=True)
        try:
            payload = response.json()
        except (ValueError, json.JSONDecodeError):
            raise ProviderBadResponse(provider=PROVIDER, status=response.status_code) from None
        if response.status_code >= 400:
            message = payload.get("message") if isinstance(payload, dict) else ""
            raise error_for_status(response.status_code)(str(message or ""), provider=PROVIDER,
                                                         status=response.status_code)
        return OnePipeResult.parse(payload)

    def transact(self, *, request_type: str, auth_type: str, secure: str, transaction_ref: str, amount: int,
                 customer: dict, description: str = "", meta: dict | None = None, details: dict | None = None,
                 ) -> OnePipeResult:
        body = {
            "request_type": request_type,
            "auth": {"type": auth_type, "secure": secure, "auth_provider": self.auth_provider, "route_mode": None},
            "transaction": {
                "mock_mode": self.mock_mode, "transaction_ref": transaction_ref, "transaction_desc": description,
                "transaction_ref_parent": "", "amount": amount, "customer": customer, "meta": meta or {},
                "details": details,
            },
        }
        return self._post("transact", body)

    def validate(self, *, request_type: str, transaction_ref: str, secure: str) -> OnePipeResult:
        body = {"request_type": request_type, "auth": {"secure": secure, "auth_provider": self.auth_provider},
                "transaction": {"transaction_ref": transaction_ref}}
        return self._post("transact/validate", body)

    def query(self, *, request_type: str, transaction_ref: str) -> OnePipeResult:
        body = {"request_type": request_type, "transaction": {"transaction_ref": transaction_ref}}
        return self._post("transact/query", body, idempotent=True)

    def reverse(self, *, request_type: str, transaction_ref: str) -> OnePipeResult:
        # Inferred, by analogy with query: docs/reference/wire-format.md#onepipe-reverse-body
        body = {"request_type": request_type, "transaction": {"transaction_ref": transaction_ref}}
        return self._post("transact/reverse", body)

    def options(self, *, request_type: str) -> OnePipeResult:
        body = {"request_type": request_type, "auth": {"auth_provider": self.auth_provider},
                "transaction": {"mock_mode": self.mock_mode}}
        return self._post("transact/options", body, idempotent=True)
