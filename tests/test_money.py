from decimal import Decimal

import pytest

from django_invoicepay.money import Money, format_amount, to_decimal, to_minor


@pytest.mark.parametrize(
    ("minor", "divisibility", "text"),
    [
        (101, 2, "1.01"),
        (100, 2, "1.00"),
        (5, 0, "5"),
        (1, 8, "0.00000001"),
        (123456789, 8, "1.23456789"),
        (-250, 2, "-2.50"),
        (0, 2, "0.00"),
        (10**20 + 1, 2, "1000000000000000000.01"),
    ],
)
def test_minor_units_format_with_exactly_the_currency_decimals(minor, divisibility, text):
    assert format_amount(minor, divisibility) == text
    assert to_minor(text, divisibility) == minor
    assert to_minor(to_decimal(minor, divisibility), divisibility) == minor


def test_floats_are_refused_everywhere():
    with pytest.raises(TypeError):
        to_minor(1.01, 2)
    with pytest.raises(TypeError):
        to_decimal(1.5, 2)
    with pytest.raises(TypeError):
        Money(1.5, "USD", 2)


def test_amounts_finer_than_the_currency_are_refused_not_rounded():
    with pytest.raises(ValueError, match="more than 2 decimal places"):
        to_minor("1.005", 2)
    with pytest.raises(ValueError):
        to_minor("1.5", 0)
    with pytest.raises(ValueError):
        to_minor("NaN", 2)


def test_money_displays_amount_and_currency():
    assert str(Money(1250, "USD", 2)) == "12.50 USD"
    assert Money(25000, "BTC", 8).decimal == Decimal("0.00025000")
