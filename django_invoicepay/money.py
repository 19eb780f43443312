"""Money as integers in minor units plus divisibility; Decimal only for display.

Providers send amounts in the currency's lowest denomination together with a
divisibility (USD 2, BTC 8, JPY 0). Keeping the integer and converting only at
the edges means no rounding ever happens inside the app.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal


def _check_divisibility(divisibility: int) -> None:
    if isinstance(divisibility, bool) or not isinstance(divisibility, int) or divisibility < 0:
        raise ValueError(f"divisibility must be a non-negative integer, got {divisibility!r}")


def whole_minor_units(value: object, name: str = "amount", *, minimum: int = 0) -> int:
    """`value` itself when it is an int of at least `minimum`: amounts the shop passes in are minor units,
    never a float or Decimal (TypeError), and never below what the caller accepts (ValueError)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int in minor units (never a float or Decimal), got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be at least {minimum}, got {value}")
    return value


def to_decimal(minor: int, divisibility: int) -> Decimal:
    """101, 2 -> Decimal('1.01'); always exactly `divisibility` decimal places."""
    _check_divisibility(divisibility)
    if isinstance(minor, bool) or not isinstance(minor, int):
        raise TypeError(f"minor units must be an int, got {type(minor).__name__}")
    return Decimal(minor).scaleb(-divisibility).quantize(Decimal(1).scaleb(-divisibility))


def format_amount(minor: int, divisibility: int) -> str:
    """The amount as a plain string with exactly `divisibility` decimals: '1.01', '100', '0.00000001'."""
    return f"{to_decimal(minor, divisibility):f}"


def to_minor(value: Decimal | str | int, divisibility: int) -> int:
    """Decimal('1.01'), 2 -> 101. Refuses floats and values finer than the currency allows."""
    _check_divisibility(divisibility)
    if isinstance(value, float) or isinstance(value, bool):
        raise TypeError("money is never a float: pass a Decimal, a str or an int")
    amount = Decimal(value)
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not a finite amount")
    scaled = amount.scaleb(divisibility)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{value} has more than {divisibility} decimal places")
    return int(scaled)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in minor units with its currency, for display and arithmetic without floats."""

    amount: int
    currency: str
    divisibility: int

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise TypeError(f"Money.amount must be an int in minor units, got {self.amount!r}")
        _check_divisibility(self.divisibility)

    @property
    def decimal(self) -> Decimal:
        return to_decimal(self.amount, self.divisibility)

    def __str__(self) -> str:
        return f"{format_amount(self.amount, self.divisibility)} {self.currency}".strip()
