"""Normalising every payload variant the documents disagree on (see rehive/payloads.py)."""

from datetime import UTC, datetime

import pytest

from django_invoicepay.errors import ProviderBadResponse
from django_invoicepay.rehive.payloads import (
    InvoiceData,
    ProcessorData,
    TransactionData,
    list_results,
    to_ms,
)

SEED_001_TRANSACTION = {
    "rehive_code": "459b3407-3009-4f77-bbbf-5d6e12788958",
    "settled": False,
    "payment_processor_quote": 14,
    "details": {
        "id": "459b3407-3009-4f77-bbbf-5d6e12788958",
        "tx_type": "credit",
        "subtype": "deposit_crypto",
        "metadata": {
            "service_payment_requests": {"request_id": "deb62287", "payer_email": "a@example.com"},
            "service_bitcoin": {"confirmations": "0", "tx_hash": "<BITCOIN_TRANSACTION_HASH>"},
        },
        "status": "Pending",
        "amount": 200,
        "fee": 0,
        "total_amount": 200,
        "created": 1596795344112,
        "updated": 1596795346496,
    },
}


def test_seed_transaction_shapes_both_parse():
    seed_001 = TransactionData.parse(SEED_001_TRANSACTION)
    seed_003 = dict(SEED_001_TRANSACTION)
    seed_003["transaction_code"] = seed_003.pop("rehive_code")
    for tx in (seed_001, TransactionData.parse(seed_003)):
        assert tx.code == "459b3407-3009-4f77-bbbf-5d6e12788958"
        assert tx.status == "pending"
        assert tx.confirmations == 0
        assert tx.tx_hash == "<BITCOIN_TRANSACTION_HASH>"
        assert tx.service == "bitcoin"
        assert tx.quote_id == 14
        assert tx.updated == datetime(2020, 8, 7, 10, 15, 46, 496000, tzinfo=UTC)


def test_any_service_block_is_read():
    raw = {"rehive_code": "x", "details": {"status": "Pending", "amount": 1,
           "metadata": {"service_ethereum": {"confirmations": "7", "tx_hash": "0xabc"}}}}
    tx = TransactionData.parse(raw)
    assert (tx.service, tx.confirmations, tx.tx_hash) == ("ethereum", 7, "0xabc")


def test_both_list_shapes():
    assert list_results([{"a": 1}]) == ([{"a": 1}], None)
    page = {"count": 2, "next": "https://x/api/?page=2", "previous": None, "results": [{"a": 1}]}
    assert list_results(page) == ([{"a": 1}], "https://x/api/?page=2")
    with pytest.raises(ProviderBadResponse):
        list_results({"unexpected": True})


def test_subtype_from_the_schema_or_the_seed():
    assert ProcessorData.parse({"unique_string_name": "x", "rehive_subtype": "card"}).subtype == "card"
    assert ProcessorData.parse({"unique_string_name": "x", "subtype": "legacy"}).subtype == "legacy"
    assert ProcessorData.parse({"unique_string_name": "x", "rehive_subtype": None}).subtype == ""


def test_statuses_compare_case_insensitively_and_amounts_stay_integers(caplog):
    data = InvoiceData.parse({"id": "i", "status": "Paid", "request_amount": "1250",
                              "request_currency": {"code": "JPY", "divisibility": 0}})
    assert (data.status, data.amount, data.currency.divisibility) == ("paid", 1250, 0)
    with pytest.raises(ProviderBadResponse, match="could not read"):
        InvoiceData.parse({"id": "i", "status": "paid", "request_amount": 12.5})
    assert "request_amount is not a whole number of minor units" in caplog.text  # the detail is for the shop
    with pytest.raises(ProviderBadResponse):
        InvoiceData.parse({"status": "paid"})
    assert "an invoice has no id" in caplog.text


def test_datetimes_round_trip_through_epoch_milliseconds_exactly():
    moment = datetime(2026, 11, 21, 8, 30, 15, 123000, tzinfo=UTC)
    assert to_ms(moment) == 1795249815123  # date -u -d "2026-11-21 08:30:15" +%s
    with pytest.raises(ValueError, match="naive"):
        to_ms(datetime(2026, 1, 1))  # noqa: DTZ001
