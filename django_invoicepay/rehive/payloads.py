"""Rehive payloads normalised into typed, model-free data.

Every variant the provider's documents disagree on is resolved here and only here:
- list answers come paginated (`data.results`) or as a plain list (`data`, older):
  docs/reference/wire-format.md#rehive-pagination;
- the transaction code is `rehive_code` or `transaction_code` (Plue):
  docs/reference/wire-format.md#rehive-transaction-code;
- the processor subtype is `rehive_subtype` or `subtype`: docs/reference/wire-format.md#rehive-processor-subtype;
- statuses arrive lower case, capitalised in older documents: docs/reference/wire-format.md#rehive-invoice-statuses;
- `confirmations` is a string (docs/reference/wire-format.md#rehive-transactions); timestamps are epoch
  milliseconds (docs/reference/wire-format.md#rehive-timestamps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from ..errors import ProviderBadResponse

logger = logging.getLogger("django_invoicepay.rehive")

PROVIDER = "rehive"


def bad(message: str) -> ProviderBadResponse:
    """The payer sees the generic message; the shop's log says what was wrong."""
    logger.warning("Unexpected Rehive payload: %s", message)
    return ProviderBadResponse(provider=PROVIDER)


@overload
def as_int(value: Any, name: str, *, default: int = 0) -> int: ...
@overload
def as_int(value: Any, name: str, *, default: None) -> int | None: ...
def as_int(value: Any, name: str, *, default: int | None = 0) -> int | None:
    """Amounts are integers in minor units; a float with a fraction is refused, never rounded."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise bad(f"{name} is a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        if value.is_integer():
            return int(value)
        raise bad(f"{name} is not a whole number of minor units")
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return int(text)
    raise bad(f"{name} is not an integer")


def as_str(value: Any) -> str:
    return "" if value is None else str(value)


def as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def status_of(value: Any) -> str:
    """Statuses compared case-insensitively: 'Paid' and 'paid' are the same."""
    return as_str(value).strip().lower()


def timestamp(value: Any) -> datetime | None:
    """Epoch milliseconds (the API) or an ISO 8601 string (tolerated) -> aware UTC datetime."""
    if value is None or value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if text.isdigit():
            return datetime.fromtimestamp(int(text) / 1000, tz=UTC)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise bad(f"timestamp {text!r} is not epoch milliseconds") from exc
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    raise bad("timestamp has an unknown type")


EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(value: datetime | None) -> int | None:
    """Aware datetime -> epoch milliseconds, exactly (no float on the way)."""
    if value is None:
        return None
    if value.tzinfo is None:
        raise ValueError("a naive datetime has no defined instant: pass an aware datetime")
    return (value - EPOCH) // timedelta(milliseconds=1)


def list_results(data: Any) -> tuple[list[dict], str | None]:
    """(items, next page url) from either list shape."""
    if isinstance(data, list):
        return [item for item in data if isinstance(item, dict)], None
    if isinstance(data, dict) and isinstance(data.get("results"), list):
        items = [item for item in data["results"] if isinstance(item, dict)]
        return items, data.get("next") or None
    raise bad("a list answer is neither a list nor paginated results")


@dataclass(frozen=True)
class Currency:
    code: str
    divisibility: int

    @classmethod
    def parse(cls, value: Any, *, default_divisibility: int = 2) -> Currency:
        data = as_dict(value)
        if not data and isinstance(value, str):
            return cls(code=value, divisibility=default_divisibility)
        divisibility = as_int(data.get("divisibility"), "divisibility", default=default_divisibility)
        return cls(code=as_str(data.get("code")), divisibility=divisibility)


@dataclass(frozen=True)
class ProcessorData:
    unique_string_name: str
    name: str
    type: str
    native: bool
    subtype: str

    @classmethod
    def parse(cls, value: Any) -> ProcessorData:
        if isinstance(value, str):  # an unexpanded reference
            return cls(unique_string_name=value, name=value, type="", native=value == "native", subtype="")
        data = as_dict(value)
        # `rehive_subtype`, or `subtype` in older documents: docs/reference/wire-format.md#rehive-processor-subtype
        subtype = data.get("rehive_subtype") or data.get("subtype") or ""
        return cls(
            unique_string_name=as_str(data.get("unique_string_name")),
            name=as_str(data.get("name")),
            type=as_str(data.get("type")),
            native=bool(data.get("native")),
            subtype=as_str(subtype),
        )


@dataclass(frozen=True)
class QuoteData:
    id: int
    reference: str
    status: str
    processor: ProcessorData
    deposit_details: dict
    currency: Currency
    amount: int
    total_paid: int
    total_pending: int
    expires_at: datetime | None
    updated: datetime | None
    raw: dict = field(repr=False)

    @classmethod
    def parse(cls, value: Any) -> QuoteData:
        data = as_dict(value)
        if data.get("id") is None:
            raise bad("a quote has no id")
        return cls(
            id=as_int(data.get("id"), "quote id"),
            reference=as_str(data.get("reference")),
            status=status_of(data.get("status")),
            processor=ProcessorData.parse(data.get("payment_processor")),
            deposit_details=as_dict(data.get("deposit_details")),
            currency=Currency.parse(data.get("currency")),
            amount=as_int(data.get("amount"), "quote amount"),
            total_paid=as_int(data.get("total_paid"), "total_paid"),
            total_pending=as_int(data.get("total_pending"), "total_pending"),
            expires_at=timestamp(data.get("expiration_date")),
            updated=timestamp(data.get("updated")),
            raw=data,
        )


@dataclass(frozen=True)
class InvoiceData:
    id: str
    reference: str
    request_reference: str
    status: str
    amount: int
    currency: Currency
    user_id: str
    primary_processor: str
    payer_email: str
    payer_mobile_number: str
    description: str
    return_url: str
    redirect_url: str
    expires_at: datetime | None
    due_at: datetime | None
    created: datetime | None
    updated: datetime | None
    metadata: dict
    quotes: tuple[QuoteData, ...]
    raw: dict = field(repr=False)

    @classmethod
    def parse(cls, value: Any) -> InvoiceData:
        data = as_dict(value)
        if not data.get("id"):
            raise bad("an invoice has no id")
        user = data.get("user")
        user_id = as_str(user.get("id")) if isinstance(user, dict) else as_str(user)
        processor = data.get("primary_payment_processor")
        if isinstance(processor, dict):
            processor = processor.get("unique_string_name")
        quotes = data.get("payment_processor_quotes") or []
        if not isinstance(quotes, list):
            raise bad("payment_processor_quotes is not a list")
        return cls(
            id=as_str(data["id"]),
            reference=as_str(data.get("reference")),
            request_reference=as_str(data.get("request_reference")),
            status=status_of(data.get("status")),
            amount=as_int(data.get("request_amount"), "request_amount"),
            currency=Currency.parse(data.get("request_currency")),
            user_id=user_id,
            primary_processor=as_str(processor),
            payer_email=as_str(data.get("payer_email")),
            payer_mobile_number=as_str(data.get("payer_mobile_number")),
            description=as_str(data.get("description")),
            return_url=as_str(data.get("return_url")),
            redirect_url=as_str(data.get("redirect_url")),
            expires_at=timestamp(data.get("expiration_date")),
            due_at=timestamp(data.get("due_date")),
            created=timestamp(data.get("created")),
            updated=timestamp(data.get("updated")),
            metadata=as_dict(data.get("metadata")),
            quotes=tuple(QuoteData.parse(q) for q in quotes),
            raw=data,
        )


@dataclass(frozen=True)
class TransactionData:
    code: str
    settled: bool
    quote_id: int | None
    status: str
    tx_type: str
    subtype: str
    amount: int
    fee: int
    total_amount: int
    currency: Currency
    service: str
    confirmations: int | None
    tx_hash: str
    created: datetime | None
    updated: datetime | None
    raw: dict = field(repr=False)

    @classmethod
    def parse(cls, value: Any) -> TransactionData:
        data = as_dict(value)
        details = as_dict(data.get("details"))
        # `rehive_code`, or `transaction_code` (Plue): docs/reference/wire-format.md#rehive-transaction-code
        code = data.get("rehive_code") or data.get("transaction_code") or details.get("id")
        if not code:
            raise bad("a transaction has no code")
        service, block = "", {}
        # Processor-specific blocks are `service_<name>`; `service_payment_requests` is ours.
        for key, candidate in as_dict(details.get("metadata")).items():
            if key.startswith("service_") and key != "service_payment_requests":
                service, block = key.removeprefix("service_"), as_dict(candidate)
                break
        confirmations = block.get("confirmations")
        return cls(
            code=as_str(code),
            settled=bool(data.get("settled")),
            quote_id=as_int(data.get("payment_processor_quote"), "quote id", default=None),
            status=status_of(details.get("status")),
            tx_type=as_str(details.get("tx_type")),
            subtype=as_str(details.get("subtype")),
            amount=as_int(details.get("amount"), "amount"),
            fee=as_int(details.get("fee"), "fee"),
            total_amount=as_int(details.get("total_amount"), "total_amount"),
            currency=Currency.parse(details.get("currency")),
            service=service,
            confirmations=as_int(confirmations, "confirmations", default=None),
            tx_hash=as_str(block.get("tx_hash")),
            created=timestamp(details.get("created")),
            updated=timestamp(details.get("updated")),
            raw=data,
        )
