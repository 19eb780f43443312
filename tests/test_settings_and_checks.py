"""Settings are read lazily, and system checks say clearly what is missing or wrong.

Every check has a failing and a passing case here; the ids are the ones in docs/settings.md.
"""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
from django.core.checks import Error, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import override_settings
from rest_framework.test import APIClient

from django_invoicepay.checks import check_settings
from django_invoicepay.conf import DEFAULTS, invoicepay_settings
from django_invoicepay.services import holds

#: A URLconf without the app (ROOT_URLCONF of the "API not mounted" case).
urlpatterns: list = []

PRODUCTION = {
    "REHIVE": {"API_KEY": "key", "BUSINESS_ID": "biz", "WEBHOOK_SECRET": "whsec", "QR_NAME": "Example Shop"},
    "ONEPIPE": {"API_KEY": "op-key", "CLIENT_SECRET": "op-secret"},
}
CONSENTS = "/invoicepay/api/holds/consents/"
CUSTOMER = {"firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com", "mobile_no": "2348022222208"}
BODY = {"auth_type": "bank.account", "credentials": {"account_number": "0123456789", "bank_code": "058"},
        "customer": CUSTOMER}


def production(**changes) -> dict:
    """PRODUCTION with top-level keys replaced and REHIVE / ONEPIPE keys changed one by one."""
    config = copy.deepcopy(PRODUCTION)
    for name in ("REHIVE", "ONEPIPE"):
        config[name].update(changes.pop(name, {}))
    return {**config, **changes}


def messages(config, **django_settings) -> list:
    with override_settings(INVOICEPAY=config, **django_settings):
        return check_settings()


def ids(config, **django_settings) -> list[str]:
    return sorted(message.id for message in messages(config, **django_settings))


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


def test_a_partial_throttle_rates_keeps_the_other_defaults():
    with override_settings(INVOICEPAY={"THROTTLE_RATES": {"otp": "3/min"}}):
        assert invoicepay_settings.THROTTLE_RATES == {"otp": "3/min", "payer": "10/min", "read": "120/min",
                                                      "webhook": "120/min"}
    assert DEFAULTS["THROTTLE_RATES"]["otp"] == "10/min"  # the defaults themselves are untouched


def test_a_complete_production_configuration_passes():
    assert ids(PRODUCTION) == []


def test_plue_only_changes_the_base_urls():
    plue = production(REHIVE={"BUSINESS_URL": "https://api.business.plue.io/api/",
                              "PAYMENT_REQUESTS_URL": "https://api.invoices.plue.io/api/"})
    assert ids(plue) == []


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        # E001 / W001: the shape
        ([("SANDBOX", True)], ["invoicepay.E001"]),
        ({**PRODUCTION, "REHIVE": "key"}, ["invoicepay.E001"]),
        (production(SANDBOXX=True), ["invoicepay.W001"]),
        (production(REHIVE={"APIKEY": "x"}), ["invoicepay.W001"]),
        ({**PRODUCTION, 1: True}, ["invoicepay.W001"]),
        # E002, E003, E017, W004, W008: credentials
        ({}, ["invoicepay.E002", "invoicepay.E003", "invoicepay.W004", "invoicepay.W006", "invoicepay.W008"]),
        (production(ONEPIPE={"CLIENT_SECRET": ""}), ["invoicepay.E017", "invoicepay.W008"]),
        # E004 / W002: base URLs, Rehive and OnePipe alike
        (production(REHIVE={"BUSINESS_URL": "business.plue.io/api/"}), ["invoicepay.E004"]),
        (production(REHIVE={"PAYMENT_REQUESTS_URL": None}), ["invoicepay.E004"]),
        (production(REHIVE={"BUSINESS_URL": "http://business.example.com/api/"}), ["invoicepay.W002"]),
        (production(ONEPIPE={"BASE_URL": None}), ["invoicepay.E004", "invoicepay.W008"]),
        (production(ONEPIPE={"BASE_URL": "ftp://api.onepipe.io/v2/"}), ["invoicepay.E004", "invoicepay.W008"]),
        (production(ONEPIPE={"BASE_URL": "https://[::1/v2/"}), ["invoicepay.E004", "invoicepay.W008"]),
        (production(REHIVE={"BUSINESS_URL": "https://:443/api/"}), ["invoicepay.E004"]),
        (production(ONEPIPE={"BASE_URL": "http://api.onepipe.io/v2/"}), ["invoicepay.W002"]),
        # orders
        (production(ORDER_STATES={"payed": "completed"}), ["invoicepay.E006"]),
        (production(ORDER_STATES={"paid": 3}), ["invoicepay.E007"]),
        (production(ORDER_STATES=["paid"]), ["invoicepay.E005"]),
        (production(ORDER_ADAPTER="shop.nowhere.Adapter"), ["invoicepay.E008"]),
        (production(ORDER_ADAPTER=None), ["invoicepay.E008"]),
        (production(ORDER_STATUS_FIELD=""), ["invoicepay.E009"]),
        # numbers
        (production(HTTP_TIMEOUT=0), ["invoicepay.E011"]),
        (production(HTTP_TIMEOUT="10"), ["invoicepay.E011"]),
        (production(HTTP_TIMEOUT=float("nan")), ["invoicepay.E011"]),
        (production(HTTP_MAX_RETRIES=50), ["invoicepay.E012"]),
        (production(OTP_MAX_ATTEMPTS=0), ["invoicepay.E015"]),
        (production(OTP_COOLDOWN="900"), ["invoicepay.E015"]),
        (production(WEBHOOK_MAX_BYTES=True), ["invoicepay.E015"]),
        (production(WEBHOOK_RETENTION_DAYS="90"), ["invoicepay.E015"]),
        # QR
        (production(REHIVE={"QR_SCHEME": "Rehive Pay"}), ["invoicepay.E010"]),
        (production(REHIVE={"QR_NAME": ""}), ["invoicepay.W006"]),
        (production(REHIVE={"QR_NAME": "   "}), ["invoicepay.W006"]),
        # OnePipe
        (production(ONEPIPE={"MOCK_MODE": "LIVE!"}), ["invoicepay.E013"]),
        (production(ONEPIPE={"SECURE_ENCODING": "latin-1"}), ["invoicepay.E014"]),
        (production(ONEPIPE={"ALLOWED_AUTH_TYPES": ["cash"]}), ["invoicepay.E018"]),
        (production(ONEPIPE={"ALLOWED_AUTH_TYPES": [["bank.account"]]}), ["invoicepay.E018"]),
        (production(ONEPIPE={"ALLOWED_AUTH_TYPES": ["bank.account", "card"]}), ["invoicepay.W005"]),
        # E016: throttle rates
        (production(THROTTLE_RATES={"otp": "ten a minute"}), ["invoicepay.E016"]),
        (production(THROTTLE_RATES={"otp": "10/fortnight"}), ["invoicepay.E016"]),
        (production(THROTTLE_RATES={"OTP": "10/min"}), ["invoicepay.E016"]),
        (production(THROTTLE_RATES=["10/min"]), ["invoicepay.E016"]),
        # E019: booleans
        (production(SANDBOX="False"), ["invoicepay.E019"]),
        (production(AUTO_RENEW_EXPIRED=1), ["invoicepay.E019"]),
        (production(AUTO_REFUND_OVERPAYMENT="yes"), ["invoicepay.E019"]),
        (production(ONEPIPE={"OTP_OVERRIDE": "False"}), ["invoicepay.E019"]),
        # E020: trusted proxies
        (production(TRUSTED_PROXIES=1), ["invoicepay.E020"]),
        (production(TRUSTED_PROXIES="10.0.0.7"), ["invoicepay.E020"]),
        (production(TRUSTED_PROXIES=["10.0.0.300"]), ["invoicepay.E020"]),
        (production(TRUSTED_PROXIES=["10.0.0.7", "0.0.0.0/0"]), ["invoicepay.E020"]),
        (production(TRUSTED_PROXIES=["::/0"]), ["invoicepay.E020"]),
        (production(TRUSTED_PROXIES={"proxy": "10.0.0.7"}), ["invoicepay.E020"]),
        # E021: text
        (production(REHIVE={"API_KEY": 12345}), ["invoicepay.E021"]),
        (production(ONEPIPE={"AUTH_PROVIDER": ["Beeceptor"]}), ["invoicepay.E021"]),
        # E022 / E023 / E024
        (production(PHONE_REGION="za"), ["invoicepay.E022"]),
        (production(PHONE_REGION=27), ["invoicepay.E022"]),
        (production(SANDBOX_STATE_FILE=5), ["invoicepay.E023"]),
        (production(ONEPIPE={"WEBHOOK_ALLOWED_IPS": ["onepipe.io"]}), ["invoicepay.E024"]),
        (production(ONEPIPE={"WEBHOOK_ALLOWED_IPS": "203.0.113.0/24"}), ["invoicepay.E024"]),
    ],
)
def test_each_mistake_gets_its_own_clear_message(config, expected):
    assert ids(config) == expected


@pytest.mark.parametrize(
    "config",
    [
        production(SANDBOX=False, AUTO_RENEW_EXPIRED=True, AUTO_REFUND_OVERPAYMENT=False,
                   ONEPIPE={"OTP_OVERRIDE": True}),
        production(REHIVE={"WEBHOOK_SECRET": "s"}, ONEPIPE={"AUTH_PROVIDER": "Beeceptor", "WEBHOOK_TOKEN": None}),
        production(REHIVE={"BUSINESS_URL": "http://127.0.0.1:8000/api/"}),  # a local test server
        production(ONEPIPE={"BASE_URL": "https://api.onepipe.io/v2"}),
        production(THROTTLE_RATES={"otp": "3/min"}),
        production(THROTTLE_RATES={"otp": None, "payer": "100/hour", "read": "5/s"}),
        production(TRUSTED_PROXIES=["10.0.0.7", "10.1.0.0/16", "2001:db8::/48", "unix"]),
        production(TRUSTED_PROXIES=None),
        production(TRUSTED_PROXIES=("10.0.0.7",)),
        production(PHONE_REGION="ZA", SANDBOX_STATE_FILE=Path("state.json")),
        production(OTP_COOLDOWN=60, WEBHOOK_RETENTION_DAYS=None, WEBHOOK_MAX_BYTES=1024),
        production(ONEPIPE={"WEBHOOK_ALLOWED_IPS": ["203.0.113.0/24", "198.51.100.7", "2001:db8::/32"]}),
    ],
)
def test_correct_settings_pass_every_check(config):
    assert ids(config) == []


def test_a_string_sandbox_is_an_error_and_checked_as_off():
    """SANDBOX = "False" (from an environment variable) is true in Python: the sandbox would be on."""
    found = messages({"SANDBOX": "False"})
    assert [m.id for m in found if m.id == "invoicepay.E019"] == ["invoicepay.E019"]
    assert "'False'" in next(m.msg for m in found if m.id == "invoicepay.E019")
    assert {"invoicepay.E002", "invoicepay.E003"} <= {m.id for m in found}  # the credentials it meant to need


def test_http_urls_are_fine_in_debug_and_in_the_sandbox():
    http = production(ONEPIPE={"BASE_URL": "http://onepipe.internal/v2/"},
                      REHIVE={"BUSINESS_URL": "http://rehive.internal/api/"})
    assert ids(http) == ["invoicepay.W002", "invoicepay.W002"]
    assert ids(http, DEBUG=True) == []
    assert ids({**http, "SANDBOX": True}, DEBUG=True) == []


def test_throttle_messages_name_the_scope_and_the_rate():
    found = messages(production(THROTTLE_RATES={"otp": "ten a minute", "payr": "10/min"}))
    text = " ".join(m.msg for m in found)
    assert "'ten a minute'" in text and "'otp'" in text and "'payr'" in text
    assert all(m.hint for m in found)


@pytest.mark.parametrize(
    ("rates", "expected"),
    [
        ({"invoicepay_otp": "ten"}, ["invoicepay.E016"]),
        ({"invoicepay_otpp": "10/min"}, ["invoicepay.E016"]),
        ({"invoicepay_otp_invoice": "3/min", "invoicepay_read": None, "anon": "whatever"}, []),
    ],
)
def test_drf_throttle_rates_for_our_scopes_are_checked_too(rates, expected):
    assert ids(PRODUCTION, REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": rates}) == expected


def test_drf_num_proxies_is_ignored_and_the_check_says_so():
    assert ids(PRODUCTION, REST_FRAMEWORK={"NUM_PROXIES": 1}) == ["invoicepay.W009"]
    assert ids(PRODUCTION, REST_FRAMEWORK={"NUM_PROXIES": None}) == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
@pytest.mark.parametrize(
    ("database", "expected"),
    [
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3"}, ["invoicepay.W007"]),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3", "OPTIONS": {"timeout": 20}},
         ["invoicepay.W007"]),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3", "OPTIONS": {"transaction_mode": "DEFERRED"}},
         ["invoicepay.W007"]),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "db.sqlite3", "OPTIONS": {"transaction_mode": "immediate"}},
         []),
        ({"ENGINE": "django.db.backends.postgresql", "NAME": "shop"}, []),
    ],
)
def test_sqlite_without_immediate_transactions_is_a_warning(database, expected):
    assert ids(PRODUCTION, DATABASES={"default": database}) == expected


def test_the_consent_api_warning_only_when_it_is_mounted():
    unconfigured = production(ONEPIPE={"API_KEY": "", "CLIENT_SECRET": ""})
    warning = next(m for m in messages(unconfigured) if m.id == "invoicepay.W008")
    assert CONSENTS in warning.msg and "SILENCED_SYSTEM_CHECKS" in warning.hint
    assert ids(unconfigured, ROOT_URLCONF="tests.test_settings_and_checks") == []
    assert ids({**unconfigured, "SANDBOX": True}, DEBUG=True) == []  # the sandbox stands in for OnePipe


@pytest.mark.parametrize(("path", "key"), [((), key) for key in DEFAULTS if key not in ("REHIVE", "ONEPIPE")]
                         + [((name,), key) for name in ("REHIVE", "ONEPIPE") for key in DEFAULTS[name]])
def test_every_setting_is_type_checked(path, key):
    """A value of no sensible type, in any setting, is an error that names the setting (and nothing raises)."""
    config = production()
    target = config.setdefault(path[0], {}) if path else config
    target[key] = object()
    errors = [m for m in messages(config) if isinstance(m, Error)]
    assert errors, f"nothing checks the type of {path} {key}"
    assert any(key in m.msg for m in errors)


@pytest.mark.django_db  # Django 6.1's run_checks() hands model checks every database alias (JSONField asks SQLite)
def test_checks_are_registered_with_django_and_stop_manage_py_check():
    with override_settings(INVOICEPAY=production(SANDBOX="False")):
        assert "invoicepay.E019" in {m.id for m in run_checks()}
    with override_settings(INVOICEPAY={}), pytest.raises(SystemCheckError, match="API_KEY"):
        call_command("check")


def test_checks_asked_for_another_app_say_nothing():
    from django.apps import apps

    with override_settings(INVOICEPAY={}):
        assert check_settings(app_configs=[apps.get_app_config("shop")]) == []
        assert check_settings(app_configs=[apps.get_app_config("invoicepay")]) != []


def test_the_sandbox_needs_no_credentials_but_warns_outside_debug():
    assert ids({"SANDBOX": True}, DEBUG=True) == []
    assert ids({"SANDBOX": True}, DEBUG=False) == ["invoicepay.W003"]


# The consent API when OnePipe is not configured: 503 not_configured, never a 500.

NOT_CONFIGURED = {"detail": "Hold funds is not configured.", "code": "not_configured"}
#: Consents from guests, so that the consent endpoints answer without a login.
GUESTS = {"HOLDS_ALLOW_ANONYMOUS": True}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "config",
    [
        production(ONEPIPE={"API_KEY": "", "CLIENT_SECRET": ""}),  # no credentials, sandbox off
        production(ONEPIPE={"CLIENT_SECRET": None}),  # half configured
        production(ONEPIPE={"BASE_URL": None}),  # was a 500 ('NoneType' has no attribute 'endswith')
        {"SANDBOX": True, "ONEPIPE": {"BASE_URL": "not a url"}},  # the sandbox needs a base URL too
    ],
)
def test_the_consent_api_answers_503_when_onepipe_is_not_configured(config, fresh_sandbox, caplog):
    consent = holds.request_consent(auth_type="bank.account", credentials=BODY["credentials"], customer=CUSTOMER)
    before = len(fresh_sandbox.requests)
    api = APIClient()
    with override_settings(INVOICEPAY={**config, **GUESTS}):
        created = api.post(CONSENTS, BODY, format="json")
        detail = api.get(f"{CONSENTS}{consent.public_token}/")
        otp = api.post(f"{CONSENTS}{consent.public_token}/otp/", {"otp": "123456"}, format="json")
    for response in (created, detail, otp):
        assert (response.status_code, response.json()) == (503, NOT_CONFIGURED)
    assert len(fresh_sandbox.requests) == before  # nothing reached a provider
    assert "not configured" in caplog.text


@pytest.mark.django_db
def test_the_consent_api_works_once_configured(fresh_sandbox):
    """The passing case: the sandbox (credentials of its own, default base URL) takes consents."""
    with override_settings(INVOICEPAY={"SANDBOX": True, **GUESTS}):
        created = APIClient().post(CONSENTS, BODY, format="json")
    assert (created.status_code, created.json()["status"]) == (201, "waiting_for_otp")


# THROTTLE_RATES at run time: merged, and a mistake never turns into a 500 or into no limit.

def throttled_after(config, calls: int = 12) -> int | None:
    """How many POSTs to the consent endpoint (a bad body: 400, no provider call) pass before a 429."""
    api = APIClient(REMOTE_ADDR="198.51.100.7")
    with override_settings(INVOICEPAY=config):
        for n in range(calls):
            status = api.post(CONSENTS, {}, format="json").status_code
            assert status in (400, 429)
            if status == 429:
                return n
    return None


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("rates", "passed"),
    [
        ({"otp": "1000/min"}, 10),  # partial: payer keeps its default 10/min (it was unlimited)
        ({"payer": "3/min"}, 3),
        ({"payer": "ten a minute"}, 10),  # a mistake (check E016) keeps the default limit
        ({"payer": None}, None),  # None turns the limit off, on purpose
    ],
)
def test_throttle_rates_are_merged_at_run_time(rates, passed):
    assert throttled_after({"SANDBOX": True, **GUESTS, "THROTTLE_RATES": rates}) == passed


def test_a_string_sandbox_never_turns_the_sandbox_on_at_run_time():
    from django_invoicepay.clients import RehiveConfig

    with override_settings(INVOICEPAY={"SANDBOX": "False"}):
        assert RehiveConfig.from_settings().sandbox is False
    with override_settings(INVOICEPAY={"SANDBOX": True}):
        assert RehiveConfig.from_settings().sandbox is True
