"""The payer API's OpenAPI schema: the committed file is the generated one, and the API answers what
the schema says (schemathesis, in process through Django's WSGI handler: status codes, content types,
bodies), with real invoice and consent tokens so the success paths are exercised too."""

from __future__ import annotations

from pathlib import Path

import pytest
import schemathesis  # in the test extra: a missing one fails the run, it never skips the schema's checks
from django.core.wsgi import get_wsgi_application
from django.test import override_settings
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from django_invoicepay.api.schema import openapi, openapi_yaml
from django_invoicepay.services import holds, payments

SCHEMA_FILE = Path(__file__).resolve().parent.parent / "docs" / "reference" / "openapi.yaml"
CUSTOMER = {"firstname": "Uju", "surname": "Usmanu", "email": "uju@example.com", "mobile_no": "2348022222208"}
CREDENTIALS = {"account_number": "0123456789", "bank_code": "058"}
#: Generous limits, so most calls reach the view (a few 429s are still answered and checked).
RELAXED = {"SANDBOX": True, "HOLDS_ALLOW_ANONYMOUS": True,
           "THROTTLE_RATES": {"otp": "100000/min", "payer": "100000/min", "read": "100000/min"}}

#: Seeded and bounded. Schema-valid requests only: the path converter answers Django's HTML 404 to a token
#: outside the documented pattern, before the API is reached. The checks are the response's: documented
#: status code, content type, headers and body, and never a 500 (a schema-valid request may still be refused:
#: the provider decides which processor or code is right, so "positive data is accepted" is not one of them).
CONFIG = SchemathesisConfig.from_dict({
    "seed": 20261122,
    "generation": {"mode": "positive", "max-examples": 12, "deterministic": True, "database": "none"},
    "phases": {"examples": {"enabled": True}, "coverage": {"enabled": False}, "stateful": {"enabled": False}},
    "checks": {
        "enabled": False,
        **{name: {"enabled": True} for name in (
            "not_a_server_error", "status_code_conformance", "content_type_conformance",
            "response_schema_conformance", "response_headers_conformance")},
    },
})
schema = schemathesis.openapi.from_dict(openapi(), config=CONFIG)
schema.app = get_wsgi_application()


def test_the_committed_schema_is_up_to_date():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == openapi_yaml(), (
        f"{SCHEMA_FILE.relative_to(SCHEMA_FILE.parents[2])} is out of date with the API: run make schema")


@pytest.fixture(autouse=True)
def connection_kept_across_requests():
    """A WSGI request ends with Django closing the database connection (close_old_connections): inside the
    test's transaction that would lose it on PostgreSQL and MariaDB. Django's test client does the same."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(invoice):
    """A real invoice, ready for the OTP, and a consent waiting for its OTP, so that most cases reach past the
    404 (the rest keep their generated token) and the schema's examples succeed."""
    invoice = payments.set_processor(invoice, "native")
    payments.set_payer(invoice, email="ann@example.com", mobile_number="+27821234567")
    consent = holds.request_consent(auth_type="bank.account", credentials=CREDENTIALS, customer=CUSTOMER)
    return {"invoices": invoice.public_token, "consents": consent.public_token}


@pytest.mark.django_db
@schema.parametrize()
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])  # the tokens stay valid: no reset needed
def test_the_api_answers_what_its_schema_says(case, tokens):
    token = case.path_parameters.get("token") if case.path_parameters else None
    if token is not None and len(token) % 4:  # three in four cases: a real object
        kind = "consents" if "/consents/" in case.path else "invoices"
        case.path_parameters["token"] = tokens[kind]
    with override_settings(INVOICEPAY=RELAXED):
        case.call_and_validate()
