"""Settings are read lazily, and system checks say clearly what is missing or wrong."""

from __future__ import annotations

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings

from django_invoicepay.checks import check_settings
from django_invoicepay.conf import invoicepay_settings

PRODUCTION = {
    "REHIVE": {"API_KEY": "key", "BUSINESS_ID": "biz", "WEBHOOK_SECRET": "whsec"},
}


def ids(config, **django_settings) -> list[str]:
    with override_settings(INVOICEPAY=config, **django_settings):
        return sorted(message.id for message in check_settings())


def test_settings_are_read_when_used_not_at_import():
    assert invoicepay_settings.SANDBOX is True
    with override_settings(INVOICEPAY={"REHIVE": {"QR_SCHEME": "plue"}}):
        assert invoicepay_settings.SANDBOX is False
        rehive = invoicepay_settings.REHIVE
        assert rehive["QR_SCHEME"] == "plue"
        assert rehive["BUSINESS_URL"] == "https://business.services.rehive.com/api/"  # merged default
    assert invoicepay_settings.REHIVE["QR_SCHEME"] == "rehive"
    with pytest.raises(AttributeError):
        invoicepay_settings.NOT_A_SETTING  # noqa: B018


def test_a_complete_production_configuration_passes():
    assert ids(PRODUCTION) == []


def test_plue_only_changes_the_base_urls():
    plue = {"REHIVE": {**PRODUCTION["REHIVE"], "BUSINESS_URL": "https://api.business.plue.io/api/",
                       "PAYMENT_REQUESTS_URL": "https://api.invoices.plue.io/api/"}}
    assert ids(plue) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, ["invoicepay.E002", "invoicepay.E003", "invoicepay.W004"]),
        ({"REHIVE": {**PRODUCTION["REHIVE"], "BUSINESS_URL": "business.plue.io/api/"}}, ["invoicepay.E004"]),
        ({"REHIVE": {**PRODUCTION["REHIVE"], "BUSINESS_URL": "http://business.example.com/api/"}},
         ["invoicepay.W002"]),
        ({**PRODUCTION, "ORDER_STATES": {"payed": "completed"}}, ["invoicepay.E006"]),
        ({**PRODUCTION, "ORDER_STATES": {"paid": 3}}, ["invoicepay.E007"]),
        ({**PRODUCTION, "ORDER_STATES": ["paid"]}, ["invoicepay.E005"]),
        ({**PRODUCTION, "ORDER_ADAPTER": "shop.nowhere.Adapter"}, ["invoicepay.E008"]),
        ({**PRODUCTION, "HTTP_TIMEOUT": 0}, ["invoicepay.E011"]),
        ({**PRODUCTION, "HTTP_MAX_RETRIES": 50}, ["invoicepay.E012"]),
        ({**PRODUCTION, "SANDBOXX": True}, ["invoicepay.W001"]),
        ({"REHIVE": {**PRODUCTION["REHIVE"], "APIKEY": "x"}}, ["invoicepay.W001"]),
        ({"REHIVE": {**PRODUCTION["REHIVE"], "QR_SCHEME": "Rehive Pay"}}, ["invoicepay.E010"]),
        ({**PRODUCTION, "ONEPIPE": {"MOCK_MODE": "LIVE!"}}, ["invoicepay.E013"]),
        ({**PRODUCTION, "OTP_MAX_ATTEMPTS": 0}, ["invoicepay.E015"]),
        ({**PRODUCTION, "ONEPIPE": {"API_KEY": "k"}}, ["invoicepay.E017"]),
        ({**PRODUCTION, "ONEPIPE": {"ALLOWED_AUTH_TYPES": ["cash"]}}, ["invoicepay.E018"]),
        ({**PRODUCTION, "ONEPIPE": {"ALLOWED_AUTH_TYPES": ["bank.account", "card"]}}, ["invoicepay.W005"]),
        ({**PRODUCTION, "THROTTLE_RATES": {"otp": "ten a minute"}}, ["invoicepay.E016"]),
        ({**PRODUCTION, "ONEPIPE": {"SECURE_ENCODING": "latin-1"}}, ["invoicepay.E014"]),
    ],
)
def test_each_mistake_gets_its_own_clear_message(config, expected):
    assert ids(config) == expected


def test_the_sandbox_needs_no_credentials_but_warns_outside_debug():
    assert ids({"SANDBOX": True}, DEBUG=True) == []
    assert ids({"SANDBOX": True}, DEBUG=False) == ["invoicepay.W003"]


def test_a_wrong_setting_stops_manage_py_check():
    with override_settings(INVOICEPAY={}), pytest.raises(SystemCheckError, match="API_KEY"):
        call_command("check")
