import pytest


@pytest.fixture(autouse=True)
def _sandbox(invoicepay_sandbox):
    """Every test of the shop gets its own empty sandbox provider (django_invoicepay.testing's plugin)."""
    return invoicepay_sandbox
